"""Prometheus metrics, multi-process aware, never on the public port.

Defined here once; the app records requests and triage levels, storage and
identity record their errors through :data:`DATABASE_ERRORS` and
:data:`RATE_LIMIT_REJECTIONS`. Under gunicorn each worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (set by ``twitch-triage serve`` before the app is
imported); the master serves the merged view on a loopback port only when
``TWITCH_TRIAGE_METRICS_PORT`` is set (:func:`start_metrics_server`).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

#: Labels are bounded: the route is the URL rule (``/fhir/CodeSystem/<id>``), never
#: the raw path, and ``<unmatched>`` for 404s.
HTTP_REQUESTS = Counter(
    "twitch_triage_http_requests_total",
    "HTTP requests answered by the app, by method, route and status.",
    ("method", "route", "status"),
)
HTTP_LATENCY = Histogram(
    "twitch_triage_http_request_duration_seconds",
    "Time the app took per request, by method, route and status.",
    ("method", "route", "status"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TRIAGE_LEVELS = Counter(
    "twitch_triage_levels_issued_total",
    "Triage results issued, by level and source endpoint.",
    ("level", "source"),
)
DATABASE_ERRORS = Counter(
    "twitch_triage_database_errors_total",
    "Storage operations that failed (recorded by api/storage).",
    ("operation",),
)
RATE_LIMIT_REJECTIONS = Counter(
    "twitch_triage_rate_limit_rejections_total",
    "Requests refused by the rate limiter (recorded by api/auth).",
    ("route",),
)


def multiprocess_registry() -> CollectorRegistry:
    """A registry merging every worker's samples from ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def start_metrics_server(host: str, port: int) -> None:
    """Serve ``/metrics`` (merged across workers) on host:port in a daemon thread."""
    registry = multiprocess_registry() if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None
    if registry is None:
        start_http_server(port, addr=host)
    else:
        start_http_server(port, addr=host, registry=registry)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn ``child_exit``); counters are kept."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


__all__ = [
    "DATABASE_ERRORS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "RATE_LIMIT_REJECTIONS",
    "TRIAGE_LEVELS",
    "start_metrics_server",
    "worker_exited",
]
