"""The background-job cache (diskcache: pickles) lives in a private folder of the instance."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from dashboard.app import background_manager
from dashboard.config import ConfigError, load_config

BACKGROUND_FOLDER = "background-jobs"


def private_folder(path):
    from dashboard.app import private_folder as checked

    return checked(path)


def _cfg(database_url: str | None):
    cfg = load_config({"SECRET_KEY": "k" * 32, "DATABASE_URL": database_url})
    return dataclasses.replace(cfg, testing=False, redis_url=None)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _folder_of(manager) -> str:
    return manager.handle.directory


def test_cache_is_a_private_folder_next_to_the_sqlite_file(tmp_path):
    db_file = tmp_path / "instance" / "loyalty.sqlite3"
    manager, celery_app = background_manager(_cfg(f"sqlite:///{db_file}"))
    try:
        assert celery_app is None
        folder = tmp_path / "instance" / BACKGROUND_FOLDER
        assert _folder_of(manager) == str(folder)
        assert _mode(folder) == 0o700
        assert os.lstat(folder).st_uid == os.geteuid()
    finally:
        manager.handle.close()


def test_without_a_sqlite_file_the_cache_is_under_instance_of_the_working_dir(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    manager, _ = background_manager(_cfg("postgresql+psycopg://u@127.0.0.1:1/x"))
    try:
        assert _folder_of(manager) == str(tmp_path / "instance" / BACKGROUND_FOLDER)
        assert _mode(tmp_path / "instance" / BACKGROUND_FOLDER) == 0o700
    finally:
        manager.handle.close()


def test_a_readable_folder_is_made_private(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    os.chmod(folder, 0o755)
    assert private_folder(folder) == folder
    assert _mode(folder) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_folder_others_can_write_is_refused(tmp_path, mode):
    folder = tmp_path / "jobs"
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(ConfigError, match="writable by other users"):
        private_folder(folder)
    assert _mode(folder) == mode  # left for the operator to look at


def test_a_link_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "jobs").symlink_to(target)
    with pytest.raises(ConfigError, match="must be a directory"):
        private_folder(tmp_path / "jobs")


def test_a_folder_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to user id 65534"):
        private_folder(folder)
