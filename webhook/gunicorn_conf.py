"""gunicorn settings for the web dyno: ``gunicorn -c python:webhook.gunicorn_conf webhook.wsgi:app`` (the Procfile).

Every value comes from ``config.settings.Settings`` (``WEB_CONCURRENCY``, ``GUNICORN_ACCESSLOG``, ``PORT``, ...).

* 2 worker processes (``WEB_CONCURRENCY``) of ``webhook.gunicorn_worker.BufferingThreadWorker`` with 4 threads
  each (``WEB_THREADS``): each worker's event loop buffers a connection until its whole request has arrived (at
  most ``WEB_READ_TIMEOUT``, 10 s, after the connect) and only then lends it a thread, so idle and slow clients
  cost a buffer, never a worker. Sync workers (the endpoint is public, nothing buffers in front of it) let two
  idle connections stop every webhook until the 30 s worker timeout; gunicorn's own gthread still gives each new
  connection a thread for its first read and reads headers with no time limit. gevent would also do, but
  monkey-patches Redis, kombu and prometheus_client in the web process and is one more compiled dependency.
  Measured with ``bench/ingress.py --embedded`` on the 2-core machine (load average 2-5 from other work):

  ========================================  ==========================================================
  sync x2, as before                        1,154 req/s (ratio 0.69 to the bare endpoint), 1,073 us CPU
  sync x2, 2 idle connections held          30 req/s; requests wait 10 s and more (first 200 after 31 s)
  gthread x2x4, 20 idle + 20 slow held      ~0 req/s: every request waits past the 10 s client limit
  this worker x2x4                          805-834 req/s, 1,290-1,350 us CPU (stock gthread: 759-817)
  this worker, 20 idle + 20 slow held       764 req/s, p50 4.6 ms, p99 16 ms, no errors
  ========================================  ==========================================================

  So the fix costs no throughput beyond the machine's noise.
* ``graceful_timeout`` 20 s, under Heroku's 30 s between SIGTERM and SIGKILL, so in-flight webhooks finish.
* the access log goes through a logger class that masks ``/webhooks/<token>``; each line ends with
  ``request_id=<id>``, the ``X-Request-Id`` the app answered with (the id its own log lines carry).
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
from webhook.gunicorn_logging import ACCESS_LOG_FORMAT

_settings = Settings.from_env()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "webhook.gunicorn_worker.BufferingThreadWorker"
threads = _settings.web_threads
worker_connections = 1000  # connections per worker, most of them only waiting for their request to arrive
timeout = 30
graceful_timeout = 20
keepalive = 0  # every request on a new connection, read by the event loop (webhook/gunicorn_worker.py)
preload_app = False  # each worker builds its own app and Redis pool after the fork
accesslog = _settings.gunicorn_accesslog
access_log_format = ACCESS_LOG_FORMAT  # gunicorn's default line, then request_id=<X-Request-Id of the answer>
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
