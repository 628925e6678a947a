"""Worker signal handlers: configuration checks, logging redaction, fresh clients after fork, a last metrics flush,
and the publish-only broker transport in the processes that never consume (the beat, each pool child).

A setting that stops ``celery worker`` or ``celery beat`` from starting is one line on stderr and exit code 2 (as
the ``otpflow`` command's usage errors), not Celery's traceback: :func:`refuse_start`.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from celery import signals

from config.logging_setup import configure_logging, install_redaction_on_existing_handlers
from config.settings import ConfigError, Settings

log = logging.getLogger("otpflow.worker")
_connected = False
#: the exit code of a setting error, the same as ``otpflow``'s (docs in README.md, exit codes)
EXIT_SETTING = 2


def refuse_start(exc: ConfigError) -> NoReturn:
    """Print ``otpflow: <each problem>`` on one line and end the process with EXIT_SETTING.

    SystemExit is no Exception: neither Celery's app loader nor its signal dispatch (which logs and swallows what a
    handler raises, so a worker would start without its key) catches it.
    """
    print(f"otpflow: {'; '.join(exc.problems)}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_SETTING)


def connect(app: Any, settings: Settings, *, publish_only: dict[str, Any] | None = None) -> None:
    """Connect the handlers once per process (they act only for ``app``, the module-level worker app).

    ``publish_only``: the Celery settings of a process that never consumes (``worker.celery_app``,
    ``publish_only_options``), applied in the beat and in each pool child."""
    global _connected
    if _connected:
        return
    _connected = True

    def _publish_only() -> None:
        if publish_only:
            app.conf.update(publish_only)

    @signals.worker_init.connect(weak=False)
    def _worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is not app:
            return
        try:
            settings.require("worker")  # ConfigError names PROVIDER_API_KEY when it is missing
        except ConfigError as exc:
            refuse_start(exc)

    @signals.setup_logging.connect(weak=False)
    def _setup_logging(**_: Any) -> None:
        configure_logging(settings.log_level, settings.log_format)

    @signals.after_setup_logger.connect(weak=False)
    @signals.after_setup_task_logger.connect(weak=False)
    def _redact(**_: Any) -> None:
        install_redaction_on_existing_handlers()

    @signals.beat_init.connect(weak=False)
    def _beat_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is app:
            _publish_only()

    @signals.worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        # a pool child only publishes (its parent consumes): before its first publish builds its producer pool
        _publish_only()
        # Sockets inherited from the parent must not be shared: build Redis and provider clients anew.
        from tasks.runtime import reset_runtime

        reset_runtime(only_factory_built=True)
        install_redaction_on_existing_handlers()
        # counts inherited from the parent are the parent's to flush; the child starts from zero
        from telemetry.worker_counters import TASK_METRICS

        TASK_METRICS.reset()

    @signals.worker_process_shutdown.connect(weak=False)
    @signals.worker_shutdown.connect(weak=False)
    def _flush_metrics(**_: Any) -> None:
        # a pool child exiting (worker_process_shutdown), or a pool-less worker (solo/threads: worker_shutdown)
        # flushes what the throttle held back; a no-op without pending counts (the prefork parent)
        from tasks.base import flush_task_metrics

        flush_task_metrics(force=True)
