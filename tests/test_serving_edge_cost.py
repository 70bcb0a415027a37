"""The request edge's cached pieces answer exactly what they replaced (issue 9 and 10).

Each cache of the request path (the host URL per scheme and host, the metric series
per label set, the rate-limit policy) is checked against the uncached computation it
stands for, on real requests or a real request context.
"""

from __future__ import annotations

import json
import logging
import os
import re

from flask import Flask, request
from hypothesis import given, settings
from hypothesis import strategies as st

from api.serving import metrics
from api.serving.logs import JsonFormatter
from api.serving.worker import skip_unlogged_record_fields
from api.storage_http import host_base_url

_app = Flask(__name__)

#: Host headers a client may send: names (ASCII, punycode, non-ASCII), IPv4 and IPv6
#: literals, ports, and junk werkzeug refuses (it then reads the host as empty).
_HOSTS = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,30}(:[0-9]{1,5})?", fullmatch=True),
    st.sampled_from(["xn--n3h.net", "☃.net:8443", "[::1]:8000", "127.0.0.1", "a b", "x%41y"]),
    st.text(min_size=1, max_size=20).filter(lambda text: "\n" not in text and "\r" not in text),
)


@settings(max_examples=300)
@given(scheme=st.sampled_from(["http", "https"]), host=_HOSTS)
def test_the_cached_host_url_is_werkzeugs(scheme: str, host: str) -> None:
    environ = {"wsgi.url_scheme": scheme, "HTTP_HOST": host}
    for _ in range(2):  # computed, then served from the cache
        with _app.test_request_context("/v1/triage", environ_overrides=environ):
            assert host_base_url() == request.host_url.rstrip("/")


def _requests_counted(labels: tuple[str, str, str]) -> float:
    return metrics.HTTP_REQUESTS.labels(*labels)._value.get()


def _latency_count(labels: tuple[str, str, str]) -> float:
    wanted = dict(zip(("method", "route", "status"), labels, strict=True))
    return sum(
        sample.value
        for metric in metrics.HTTP_LATENCY.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels == wanted
    )


def test_every_request_is_counted_once_in_its_own_series(client):
    """The per-label-set cache never merges two series nor skips a request."""
    ok, missing = ("POST", "/v1/triage", "200"), ("GET", "<unmatched>", "404")
    before = {
        labels: (_requests_counted(labels), _latency_count(labels)) for labels in (ok, missing)
    }
    body = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    for _ in range(3):
        assert client.post("/v1/triage", json=body).status_code == 200
    assert client.get("/no/such/path").status_code == 404
    assert _requests_counted(ok) == before[ok][0] + 3
    assert _latency_count(ok) == before[ok][1] + 3
    assert _requests_counted(missing) == before[missing][0] + 1
    assert _latency_count(missing) == before[missing][1] + 1


def test_report_and_bundle_urls_name_the_host_the_client_used(client):
    body = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    for host in ("api.example:8443", "other.example"):
        response = client.post("/v1/triage", json=body, headers={"Host": host})
        assert response.status_code == 200
        bundle_id = response.get_json()["id"]
        assert response.headers["Location"] == f"http://{host}/fhir/Bundle/{bundle_id}"
        assert response.headers["Content-Location"] == response.headers["Location"]
        link = re.fullmatch(
            r"<([^>]+)>; rel=\"[^\"]+\"; type=\"text/html\"", response.headers["Link"]
        )
        assert link is not None
        assert link.group(1).startswith(f"http://{host}/reports/{bundle_id}?expires=")


def _access_line(logger: logging.Logger, created: float) -> str:
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "%s %s %s",
        ("POST", "/v1/triage", 200),
        None,
        extra={"request_id": "abcdefgh", "method": "POST", "path": "/v1/triage", "status": 200},
    )
    record.created = created
    return JsonFormatter().format(record)


def test_the_worker_skips_only_record_fields_no_json_line_holds(monkeypatch):
    """skip_unlogged_record_fields (run in each gevent worker) leaves every line as it was."""
    for name in ("logThreads", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored after the test
    logger = logging.getLogger("gunicorn.access")
    before = _access_line(logger, 1_800_000_000.123)
    skip_unlogged_record_fields()
    assert _access_line(logger, 1_800_000_000.123) == before
    assert json.loads(before)["pid"] == os.getpid()
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "x", (), None)
    assert record.threadName is None  # no thread lookup (a dummy Thread per greenlet)
