"""gunicorn settings for the web dyno: ``gunicorn -c python:webhook.gunicorn_conf webhook.wsgi:app`` (the Procfile).

Every value comes from ``config.settings.Settings`` (``WEB_CONCURRENCY``, ``GUNICORN_ACCESSLOG``, ``PORT``, ...).

* sync workers (2 by default, ``WEB_CONCURRENCY``): the steadiest figures on 2 cores; a webhook is a few ms of
  CPU plus one Redis round trip, so threads buy nothing.
* ``graceful_timeout`` 20 s, under Heroku's 30 s between SIGTERM and SIGKILL, so in-flight webhooks finish.
* the access log goes through a logger class that masks ``/webhooks/<token>``.
* ``forwarded_allow_ips`` follows ``TRUSTED_PROXIES``: behind a router (Heroku: 1) the peer is the router, whose
  addresses vary, so "*"; with no proxy only loopback may set X-Forwarded-* headers.
* with more than one worker, Prometheus counters go through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
  directory when unset) so any worker's ``/metrics`` reports the sum over workers.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from config.settings import Settings

_settings = Settings.from_env()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5  # ignored by sync workers (they close after each response); kept for other worker classes
preload_app = False  # each worker builds its own app and Redis pool after the fork
accesslog = _settings.gunicorn_accesslog
errorlog = "-"
loglevel = _settings.log_level.lower()
logger_class = "webhook.gunicorn_logging.RedactingLogger"
forwarded_allow_ips = "*" if _settings.trusted_proxies > 0 else "127.0.0.1,::1"
# gunicorn >= 25 opens a control socket at one fixed per-user path; several servers on one machine (tests,
# benchmarks, `otpflow run`) would fight over it, and the web dyno needs no runtime control.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat file off the (possibly slow) disk

_metrics_dir = _settings.prometheus_multiproc_dir
if _metrics_dir is None and workers > 1:
    _metrics_dir = tempfile.mkdtemp(prefix="otpflow-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir  # prometheus_client reads it in each worker


def on_starting(server: Any) -> None:
    """Start from empty metric files: counters left by a previous run would be summed into this one."""
    if _metrics_dir:
        os.makedirs(_metrics_dir, exist_ok=True)
        for name in os.listdir(_metrics_dir):
            path = os.path.join(_metrics_dir, name)
            if os.path.isfile(path) and name.endswith(".db"):
                os.unlink(path)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the aggregate (its counters stay, as Prometheus expects)."""
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics directory this config created (never one the user configured)."""
    if _metrics_dir and os.path.basename(_metrics_dir).startswith("otpflow-prometheus-"):
        shutil.rmtree(_metrics_dir, ignore_errors=True)
