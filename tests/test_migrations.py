"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.models import Base


def test_models_match_migrations(any_db):
    with warnings.catch_warnings():
        # expression indexes (lower(name), COLLATE "C") are migration-only by design
        warnings.simplefilter("ignore")
        with any_db.engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    # the member-search expression indexes of migration 0002 live only there
    diff = [d for d in diff if not (d[0] == "remove_index" and "_search_" in d[1].name)]
    assert diff == []


def test_downgrade_and_upgrade_again(tmp_path):
    from alembic import command

    from db.migrate import alembic_config, upgrade
    from db.session import Database

    d = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(d.engine)
    cfg = alembic_config()
    with d.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    upgrade(d.engine)
    with d.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM accounts").scalar() == 4
