"""Serving settings (``TWITCH_TRIAGE_*``), parsed strictly like :mod:`api.config`.

Kept apart from the app's :class:`api.config.Settings`: these configure the
server around the app (gunicorn, metrics port), not what the app answers.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from api.config import ENV_PREFIX, ConfigError, parse_int

#: The serving models ``twitch-triage serve`` knows: the default, and the old one
#: kept only so benchmarks can compare against it (never behind a proxy-less port).
MODELS = ("gevent", "sync")


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """How ``twitch-triage serve`` runs gunicorn."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Worker processes (one per core is right for this CPU-bound app).
    workers: int = 2
    #: Open connections per worker (gevent greenlets); more wait in the backlog.
    connections: int = 1000
    #: Seconds for a request's line and headers to arrive, and for an idle
    #: keep-alive connection to send its next request (then it is closed).
    header_timeout: int = 5
    #: Seconds any one read of the body may wait for data (then 400).
    body_timeout: int = 5
    #: 1: keep connections open between requests (idle ones closed after
    #: ``header_timeout``); 0 (default): close after every answer, so connections
    #: spread evenly over the workers (measured; see api/serving/worker.py).
    keep_alive: int = 0
    #: ``gevent`` (default) or ``sync`` (the old model; only behind a buffering proxy).
    model: str = "gevent"
    #: Loopback port of the Prometheus ``/metrics`` endpoint; 0 = no endpoint.
    metrics_port: int = 0
    #: Address the metrics endpoint binds to (loopback unless an operator says otherwise).
    metrics_host: str = "127.0.0.1"
    #: Addresses or networks of the proxy in front (comma-separated): only a request
    #: from them may say it came over https (``X-Forwarded-Proto``), so ``Location``
    #: headers name https behind a TLS-terminating proxy. gunicorn's own default.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> ServingSettings:
        """Defaults, then ``TWITCH_TRIAGE_*`` variables, then ``overrides`` (flags)."""
        env = os.environ if environ is None else environ
        raw: dict[str, tuple[str, Any]] = {}
        names = {f.name for f in fields(cls)}
        for name in names:
            var = ENV_PREFIX + name.upper()
            if var in env:
                raw[name] = (var, env[var])
        for key, value in (overrides or {}).items():
            if key in names and value is not None:
                raw[key] = (f"--{key.replace('_', '-')}", value)
        bounds = {
            "port": (1, 65535),
            "workers": (1, 64),
            "connections": (10, 100_000),
            "header_timeout": (1, 300),
            "body_timeout": (1, 300),
            "metrics_port": (0, 65535),
            "keep_alive": (0, 1),
        }
        values: dict[str, Any] = {}
        for name, (label, value) in raw.items():
            if name in bounds:
                low, high = bounds[name]
                values[name] = parse_int(label, value, minimum=low, maximum=high)
            else:
                text = str(value).strip()
                if not text:
                    raise ConfigError(f"{label} must not be empty")
                if name == "model" and text not in MODELS:
                    raise ConfigError(f"{label} must be one of {', '.join(MODELS)}, got {text!r}")
                if name == "forwarded_allow_ips":
                    text = parse_networks(label, text)
                values[name] = text
        settings = cls(**values)
        if settings.metrics_port and settings.metrics_port == settings.port:
            raise ConfigError("the metrics port must differ from the API port")
        return settings


def parse_networks(label: str, text: str) -> str:
    """A comma-separated list of IP addresses or networks, normalised.

    ``*`` (gunicorn's "trust anyone") is refused: any client reaching a node
    directly could then claim https.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{label} must list the proxy's IP addresses or networks")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{label} must list IP addresses or networks (10.0.0.10, 10.0.0.0/24), got {item!r}"
            ) from None
    return ",".join(items)


__all__ = ["MODELS", "ServingSettings", "parse_networks"]
