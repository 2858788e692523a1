"""WSGI entry point: ``gunicorn dashboard.wsgi:server``.

Configuration comes from the environment (DATABASE_URL, SECRET_KEY,
REDIS_URL, LOYALTY_ENV, SESSION_IDLE_MINUTES); see dashboard.config.
"""

from __future__ import annotations

import logging

from dashboard.app import CELERY_EXTENSION, create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app()
server = app.server
# the Celery app of the background callbacks (REDIS_URL set), for the
# Procfile's ``worker: celery --app dashboard.wsgi:celery_app worker``
celery_app = server.extensions.get(CELERY_EXTENSION)
