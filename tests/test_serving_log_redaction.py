"""The pieces that keep request text out of the log, without a server (s8 F1, F2).

The server tests (``test_serving_log_privacy``) send real requests to gunicorn;
these check the same rules for every input: every route of the real app with any
value in its variable parts, every refusal gunicorn can raise with any text in
it, and the app's own 500 line.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from gunicorn.http import errors as http_errors
from hypothesis import given
from hypothesis import strategies as st

from api import create_app
from api.serving.logs import (
    KNOWN_METHODS,
    UNMATCHED,
    JsonFormatter,
    RequestTextRedactor,
    loggable_method,
    loggable_path,
)

MARKER = "ZQXJVWK"
#: Values a client could put in a path segment: the marker with anything around it.
CLIENT_VALUES = st.builds(
    lambda before, after: before + MARKER + after,
    st.text(max_size=8),
    st.text(max_size=8),
)


def app_rules() -> list[tuple[str, tuple[str, ...]]]:
    """Every rule of the real app with its variable names."""
    app = create_app({"TESTING": True})
    return [(rule.rule, tuple(sorted(rule.arguments))) for rule in app.url_map.iter_rules()]


RULES = app_rules()


@given(st.sampled_from(RULES), st.data())
def test_no_client_value_of_any_route_reaches_the_logged_path(rule_and_names, data):
    rule, names = rule_and_names
    values = {name: data.draw(CLIENT_VALUES, label=name) for name in names}
    logged = loggable_path(rule, values)
    assert MARKER not in logged
    assert logged == rule  # nothing filled in: each part stays the rule's <name>


@given(st.sampled_from([(rule, names) for rule, names in RULES if "<" in rule]))
def test_minted_ids_are_filled_in_and_nothing_else(rule_and_names):
    rule, names = rule_and_names
    minted = {name: str(uuid.uuid4()) for name in names}
    logged = loggable_path(rule, minted)
    for value in minted.values():
        assert value in logged
    assert "<" not in logged  # every part was an id of ours (or a fixed choice)
    assert loggable_path(rule, {name: value.upper() for name, value in minted.items()}) == rule


def test_an_any_rule_keeps_its_own_choices_only():
    rule = "/fhir/<any(QuestionnaireResponse, Observation):resource_type>/<fhir_id:resource_id>"
    assert loggable_path(rule, {"resource_type": "Observation", "resource_id": "x"}) == (
        "/fhir/Observation/<fhir_id:resource_id>"
    )
    assert loggable_path(rule, {"resource_type": "Patient", "resource_id": "x"}) == rule
    assert loggable_path(None, None) == UNMATCHED


@given(st.text(max_size=30))
def test_only_standard_methods_are_logged_as_sent(method):
    logged = loggable_method(method)
    assert logged == (method if method in KNOWN_METHODS else "<other>")


# --- gunicorn's error lines -----------------------------------------------------------------------


@contextlib.contextmanager
def error_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger like gunicorn's error log: the redactor, JSON lines into a buffer."""
    logger = logging.getLogger(f"test.gunicorn.error.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # gunicorn logs the unread bytes at debug
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.addFilter(RequestTextRedactor())
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


#: Every refusal gunicorn raises that holds request text (bytes for the two that read raw).
REFUSALS = [
    http_errors.InvalidRequestLine,
    http_errors.InvalidRequestMethod,
    http_errors.InvalidHTTPVersion,
    http_errors.InvalidHeader,
    http_errors.InvalidHeaderName,
    http_errors.ObsoleteFolding,
    http_errors.ExpectationFailed,
    http_errors.UnsupportedTransferCoding,
    http_errors.InvalidChunkExtension,
    http_errors.InvalidProxyLine,
    http_errors.LimitRequestHeaders,
    http_errors.InvalidH2CPreface,
    http_errors.NoMoreData,
]


@pytest.mark.parametrize("kind", REFUSALS, ids=lambda kind: kind.__name__)
@given(text=CLIENT_VALUES)
def test_a_refusal_line_is_rebuilt_without_the_request_text(kind, text):
    raw = text.encode() if kind in (http_errors.InvalidH2CPreface, http_errors.NoMoreData) else text
    with error_log() as (logger, stream):
        try:
            raise kind(raw)
        except Exception as caught:  # as gunicorn's worker does, then handle_error logs
            logger.warning(f"Invalid request from ip=127.0.0.1: {caught}")
            logger.debug("Ignored premature client disconnection. %s", caught)
            logger.exception("Error handling request %s %s", "GET", "/x?" + text)
    assert MARKER not in stream.getvalue()
    got = lines(stream)
    assert len(got) == 3
    for line in got:
        assert line["refusal"] == kind.__name__
        assert "exception" not in line
    assert got[0]["message"].startswith("Invalid request from ip=127.0.0.1: ")


def test_a_failed_request_line_keeps_the_method_and_the_traceback_not_the_uri():
    with error_log() as (logger, stream):
        try:
            raise RuntimeError("a bug of ours")
        except RuntimeError:
            logger.exception("Error handling request %s %s", "GET", f"/fhir/Patient/{MARKER}?q")
            logger.exception("Error handling request %s %s", f"JANE{MARKER}", "/x")
            logger.exception("Error handling request %s", f"/fhir/Patient/{MARKER}")
    got = lines(stream)
    assert [line["message"] for line in got] == [
        "Error handling request GET <uri omitted>",
        "Error handling request <other> <uri omitted>",
        "Error handling request <other> <uri omitted>",
    ]
    assert all("a bug of ours" in line["exception"] for line in got)
    assert MARKER not in stream.getvalue()


def test_any_other_line_loses_everything_after_a_question_mark():
    with error_log() as (logger, stream):
        logger.warning("request %s failed", f"/x?subject=Patient/1&note=Jane {MARKER}-Doe 'O'Brien")
    (line,) = lines(stream)
    assert line["message"] == "request /x?<query omitted>"


# --- the app's own 500 line -----------------------------------------------------------------------


def test_a_500_is_logged_with_the_route_never_the_path_as_sent(monkeypatch, caplog):
    monkeypatch.delenv("TWITCH_TRIAGE_MAX_BODY_BYTES", raising=False)
    app: Flask = create_app({"TESTING": False})

    @app.get("/boom/<name>")
    def boom(name: str) -> str:  # noqa: ARG001 (Flask passes the part; the bug ignores it)
        raise RuntimeError("an unexpected failure")

    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = app.test_client().get(f"/boom/Jane-{MARKER}")
    assert response.status_code == 500
    (record,) = [r for r in caplog.records if r.name == "api.errors"]
    assert record.getMessage().endswith(" on GET /boom/<name>")
    assert MARKER not in JsonFormatter().format(record)


def test_a_method_no_standard_names_is_neither_logged_nor_a_metrics_label(client):
    from api.serving import metrics  # noqa: PLC0415 (the app imports it on the first request)

    response = client.open("/v1/triage", method=f"JANE{MARKER}")
    assert response.status_code == 405
    labels = [
        sample.labels["method"]
        for family in metrics.HTTP_REQUESTS.collect()
        for sample in family.samples
    ]
    assert "<other>" in labels
    assert not [label for label in labels if MARKER in label]


def test_a_line_that_cannot_be_formatted_is_withheld_not_raised():
    with error_log() as (logger, stream):
        # One argument short, on purpose: the filter must not raise into its caller.
        logger.warning("two values %s %s", f"/x/{MARKER}")  # noqa: PLE1206
    (line,) = lines(stream)
    assert line["message"] == "log line withheld: it could not be checked"
