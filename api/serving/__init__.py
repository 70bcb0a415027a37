"""Serving: the gunicorn model, request ids, JSON logs and Prometheus metrics (issue 12).

Nothing here is clinical. :func:`api.serving.install.install` hooks request ids,
metrics and body read errors into an app; :mod:`api.serving.gunicorn_conf` is the
one gunicorn configuration (``twitch-triage serve`` and ``gunicorn.conf.py``);
:func:`api.serving.requestid.current_request_id` gives services the request id.

This package imports nothing on its own: ``prometheus_client`` must not be
imported before ``PROMETHEUS_MULTIPROC_DIR`` is set (see ``gunicorn_conf``).
"""
