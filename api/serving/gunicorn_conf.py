"""The one gunicorn configuration: ``twitch-triage serve`` and plain ``gunicorn`` alike.

``twitch-triage serve`` passes :func:`gunicorn_options` to gunicorn; the
repository's ``gunicorn.conf.py`` (which gunicorn reads from the working
directory by default) exports :func:`module_config`'s settings, so ``gunicorn
'api:create_app()'`` gets the same worker, timeouts, JSON logs and hooks.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from typing import Any

from api.serving.config import ServingSettings

WORKER_CLASS = "api.serving.worker.TriageGeventWorker"


def prepare_metrics_dir() -> str | None:
    """Give the workers a shared ``PROMETHEUS_MULTIPROC_DIR`` (before the app is imported).

    prometheus_client chooses its multi-process storage when it is first
    imported, so this must run before ``api.serving.metrics`` is imported in a
    process that forks workers. A fresh directory per server start (files of an
    earlier run would be counted again); returns it when this call created it.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    created = tempfile.mkdtemp(prefix="twitch-triage-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return created


def _child_exit(_server: Any, worker: Any) -> None:
    from api.serving.metrics import worker_exited  # noqa: PLC0415 (after the directory is set)

    worker_exited(worker.pid)


def _worker_exit(_server: Any, _worker: Any) -> None:
    """gunicorn's ``worker_exit`` hook: close the log handlers while gevent is whole.

    Why: at a graceful exit the interpreter frees the handlers during its teardown,
    and each one's weak-reference callback takes logging's lock, which gevent
    patched; gevent's ``get_ident`` is gone by then, so Python printed "Exception
    ignored in _removeHandlerRef" and a traceback: five lines that are not JSON,
    twice per restart of two workers. Nothing logs after this hook; the handlers are
    flushed and closed here (what the atexit shutdown would do), then forgotten, so
    the callbacks find no list to update and take no lock.
    """
    logging.shutdown()
    logging._handlerList.clear()  # private, but the only handle on those weak references


def freeze_preloaded_heap(_server: Any = None, _worker: Any = None) -> None:
    """gunicorn's ``pre_fork`` hook: hide the preloaded app's objects from the collector.

    Why: a worker's full (generation 2) collection walked the ~150,000 objects the
    master had loaded (the app, SQLAlchemy, marshmallow, the FHIR models): ~65 ms
    with the worker's event loop stopped, two or three times in 13 s of load
    (measured), so every request in flight there waited that long; it also wrote to
    every object's header, copying the pages the workers shared with the master.
    ``gc.freeze()`` in the master, right before each fork, is the remedy the ``gc``
    documentation gives: those objects move to the permanent generation, which no
    collection visits. Garbage is collected first so that none of it is frozen.
    """
    gc.collect()
    gc.freeze()


def _when_ready_for(settings: ServingSettings) -> Any:
    def when_ready(server: Any) -> None:
        if settings.metrics_port:
            from api.serving.metrics import start_metrics_server  # noqa: PLC0415 (as above)

            start_metrics_server(settings.metrics_host, settings.metrics_port)
            server.log.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
            )

    return when_ready


def _on_exit_for(metrics_dir: str | None) -> Any:
    def on_exit(_server: Any) -> None:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    return on_exit


def gunicorn_options(
    settings: ServingSettings, *, metrics_dir: str | None = None
) -> dict[str, Any]:
    """gunicorn settings for a serving model; both models log JSON lines alike.

    ``metrics_dir``: a metrics directory this server created (removed on exit).
    """
    common: dict[str, Any] = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "preload_app": True,
        # gunicorn ≥ 24 opens a control socket at one fixed path per user; two
        # servers side by side (the benchmark's echo app and this one) would clash.
        "control_socket_disable": True,
        "logger_class": "api.serving.logs.JsonGunicornLogger",
        "accesslog": "-",
        "errorlog": "-",
        "child_exit": _child_exit,
        "worker_exit": _worker_exit,
        "pre_fork": freeze_preloaded_heap,
        "when_ready": _when_ready_for(settings),
        "on_exit": _on_exit_for(metrics_dir),
        # X-Forwarded-Proto is believed only from the proxy (deploy/nginx sets it).
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
    if settings.model == "sync":
        # The old model, kept for comparison only: a slow client holds a worker.
        return {**common, "worker_class": "sync"}
    return {
        **common,
        "worker_class": WORKER_CLASS,
        "worker_connections": settings.connections,
        # The gevent worker bounds every request head (and every idle keep-alive
        # wait) by keepalive; it must not be 0, which would leave heads unbounded.
        "keepalive": settings.header_timeout,
    }


def module_config(settings: ServingSettings | None = None) -> dict[str, Any]:
    """The names a ``gunicorn.conf.py`` exports (metrics directory prepared first)."""
    chosen = settings or ServingSettings.load()
    created = prepare_metrics_dir() if chosen.metrics_port else None
    return gunicorn_options(chosen, metrics_dir=created)


__all__ = [
    "WORKER_CLASS",
    "freeze_preloaded_heap",
    "gunicorn_options",
    "module_config",
    "prepare_metrics_dir",
]
