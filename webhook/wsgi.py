"""WSGI entry point for gunicorn: ``gunicorn -c webhook/gunicorn_conf.py webhook.wsgi:app``.

Built at import in each worker (no preload), so every worker gets its own Redis pool after the fork.
"""
from __future__ import annotations

from webhook.app import create_app, warm_up

app = create_app()
warm_up(app)
