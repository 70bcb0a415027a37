"""CDS Hooks 2.0 feedback entries, held to the specification (review finding, session 9).

CDS Hooks 2.0, "Feedback": ``card`` and ``outcome`` REQUIRED; ``acceptedSuggestions``
"Required for ``accepted`` outcomes" (one or more, each with an ``id``);
``overrideReason`` a Coding (``code`` and ``system`` REQUIRED, "Coding") and/or a
``userComment``; ``outcomeTimestamp`` REQUIRED, "ISO8601 ... as profiled in section 5.6
of RFC3339". The service took a missing or date-only timestamp and ``accepted`` without
suggestions; every case below was a 200 before.
"""

from __future__ import annotations

import calendar
import functools
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from cds_support import (
    FEEDBACK,
    TENANT,
    Ehr,
    call,
    feedback_entry,
    hook_request,
    intake_for,
    registered_ehr,  # noqa: F401 (the ehr fixture)
)
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from api.config import EXTENSION
from api.services.cds.request import MAX_INSTANT_CHARS, parse_feedback, parse_instant
from api.services.errors import InvalidCdsRequestError
from tools.openapi import OPENAPI_PATH

VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def _card(client: FlaskClient, ehr: Ehr, patient: str) -> str:
    intake = intake_for(client, VALID, patient)
    response = call(client, ehr, hook_request(patient, intake))
    assert response.status_code == 200, response.data[:800]
    return response.json["cards"][0]["uuid"]


def _refused(response: Any) -> list[dict[str, Any]]:
    """The issues of a 400 OperationOutcome (the style of every bad CDS request)."""
    assert response.status_code == 400, response.data[:800]
    assert response.content_type.startswith("application/fhir+json")
    assert response.json["resourceType"] == "OperationOutcome"
    return response.json["issue"]


@functools.cache
def _contract() -> Draft202012Validator:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/CdsFeedbackRequest", **document}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _off_contract(body: dict[str, Any]) -> list[str]:
    """What ``openapi.yaml``'s CdsFeedbackRequest finds wrong with ``body``."""
    return [error.message for error in _contract().iter_errors(body)]


# --- each rule, over HTTP, on a card the tenant was given -------------------------------------

TIMESTAMP = "feedback[0].outcomeTimestamp"
SUGGESTIONS = "feedback[0].acceptedSuggestions"
REASON = "feedback[0].overrideReason.reason"


@pytest.mark.parametrize(
    "case",
    [
        ({"outcomeTimestamp": None}, "overridden", TIMESTAMP, "required"),
        ({"outcomeTimestamp": "2026-11-27"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": "2026-11-27T12:01"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": "2026-11-27T12:01:00"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": "2026-11-27 12:01:00Z"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": "2026-11-27T12:01:00+0100"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": "2026-02-29T12:01:00Z"}, "overridden", TIMESTAMP, "value"),
        ({"outcomeTimestamp": 1795780800}, "overridden", TIMESTAMP, "value"),
        ({"acceptedSuggestions": None}, "accepted", SUGGESTIONS, "required"),
        ({"acceptedSuggestions": []}, "accepted", SUGGESTIONS, "required"),
        ({"acceptedSuggestions": [{}]}, "accepted", SUGGESTIONS + "[0].id", "required"),
        ({"overrideReason": {"reason": {"code": "x"}}}, "overridden", REASON + ".system",
         "required"),
        ({"overrideReason": {"reason": {"system": "s"}}}, "overridden", REASON + ".code",
         "required"),
    ],
)  # fmt: skip
def test_each_departure_from_the_2_0_feedback_entry_is_400_naming_it(
    app: Flask, client: FlaskClient, ehr: Ehr, case: tuple[dict[str, Any], str, str, str]
) -> None:
    changes, outcome, expression, code = case
    card = _card(client, ehr, "p-fb-1")
    entry = feedback_entry(card, outcome, **changes)
    issues = _refused(call(client, ehr, {"feedback": [entry]}, path=FEEDBACK))
    assert [(issue["expression"], issue["code"]) for issue in issues] == [([expression], code)]
    # The contract says so too, and takes the entry as it should have been.
    assert _off_contract({"feedback": [entry]}) != []
    assert _off_contract({"feedback": [feedback_entry(card, outcome)]}) == []
    assert issues[0]["diagnostics"].startswith(f"{expression}: ")
    assert app.extensions[EXTENSION].cds.feedback(card, tenant=TENANT) == []


def test_every_problem_of_every_entry_is_reported_at_once(
    app: Flask, client: FlaskClient, ehr: Ehr
) -> None:
    card = _card(client, ehr, "p-fb-2")
    body = {
        "feedback": [
            feedback_entry(card),  # the one good entry: nothing is stored all the same
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-27"},
            {"outcome": "overridden", "overrideReason": {"reason": {"display": "Seen"}}},
            {"card": card, "outcome": "maybe", "outcomeTimestamp": "2026-11-27T12:00:00"},
        ]
    }
    issues = _refused(call(client, ehr, body, path=FEEDBACK))
    assert [issue["expression"][0] for issue in issues] == [
        "feedback[1].acceptedSuggestions",
        "feedback[1].outcomeTimestamp",
        "feedback[2].card",
        "feedback[2].overrideReason.reason.system",
        "feedback[2].overrideReason.reason.code",
        "feedback[2].outcomeTimestamp",
        "feedback[3].outcome",
        "feedback[3].outcomeTimestamp",
    ]
    assert app.extensions[EXTENSION].cds.feedback(card, tenant=TENANT) == []


def test_a_bad_entry_on_an_unknown_card_is_400_and_a_good_one_404(
    client: FlaskClient, ehr: Ehr
) -> None:
    """The shape is checked before any card is looked up (as before); an unknown card in a
    well-formed body is still the 404 naming it."""
    never = str(uuid.uuid4())
    bad = feedback_entry(never, outcomeTimestamp="2026-11-27")
    assert [i["expression"] for i in _refused(call(client, ehr, bad, path=FEEDBACK))] == [
        [TIMESTAMP]
    ]
    unknown = call(client, ehr, {"feedback": [feedback_entry(never)]}, path=FEEDBACK)
    assert unknown.status_code == 404
    assert unknown.json["issue"][0]["expression"] == ["feedback[0].card"]


def test_the_timestamp_stored_is_the_instant_sent(app: Flask, client: FlaskClient, ehr: Ehr):
    card = _card(client, ehr, "p-fb-3")
    sent = ["2026-11-27T13:00:00.5+01:00", "2026-11-27T07:00:00-05:00"]
    body = {"feedback": [feedback_entry(card, "overridden", outcomeTimestamp=t) for t in sent]}
    assert call(client, ehr, body, path=FEEDBACK).json == {"stored": 2}
    stored = app.extensions[EXTENSION].cds.feedback(card, tenant=TENANT)
    noon = int(datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()) * 1_000_000
    assert sorted(record.outcome_us for record in stored) == [noon, noon + 500_000]


# --- the timestamp rule for every string (hypothesis) -------------------------------------------

# RFC 3339 §5.6, rule by rule (the oracle; the product reads it with one regex and datetime).
_ABNF = {
    "date-fullyear": "[0-9]{4}",
    "date-month": "[0-9]{2}",
    "date-mday": "[0-9]{2}",
    "time-hour": "[0-9]{2}",
    "time-minute": "[0-9]{2}",
    "time-second": "[0-9]{2}",
    "time-secfrac": r"\.[0-9]+",
}
_DATE_TIME = re.compile(
    "({date-fullyear})-({date-month})-({date-mday})[Tt]({time-hour}):({time-minute}):"
    "({time-second})({time-secfrac})?(?:[Zz]|([+-])({time-hour}):({time-minute}))".format_map(_ABNF)
)


def _instant_us(text: str) -> int | None:
    """The oracle: microseconds of ``text`` if it is a full instant this service keeps, by
    RFC 3339 §5.6 and §5.7 (month days, 00-23 hours, 00-59 minutes, seconds up to 60 at
    23:59 UTC), within the limits the README states (64 characters, years 0001-9999 in
    UTC); None otherwise."""
    found = _DATE_TIME.fullmatch(text)
    if found is None or len(text) > MAX_INSTANT_CHARS:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = found.groups()
    if not 1 <= int(month) <= 12 or int(year) == 0:
        return None
    if not 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]:
        return None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return None
    if sign is not None and (int(off_h) > 23 or int(off_m) > 59):
        return None
    offset = 0 if sign is None else (-1 if sign == "-" else 1) * (int(off_h) * 60 + int(off_m))
    try:  # OverflowError: before year 1 or after 9999 once in UTC
        whole = datetime(int(year), int(month), int(day), tzinfo=UTC) + timedelta(
            hours=int(hour), minutes=int(minute) - offset, seconds=min(int(second), 59)
        )
    except OverflowError:
        return None
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    if int(second) == 60:
        if (whole.hour, whole.minute) != (23, 59):
            return None
        micro = 999_999
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (whole - epoch) // timedelta(microseconds=1) + micro


def _pieces(*choices: list[str]) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from(c) for c in choices)).map("".join)


#: Strings shaped like timestamps, most of them a piece off a full instant.
NEAR_INSTANTS = _pieces(
    ["2026", "2024", "1985", "0000", "0001", "9999", "202", "20260", "２０２６"],
    ["-", "", "/"],
    ["01", "02", "11", "12", "00", "13", "1", "٠١"],
    ["-", ""],
    ["01", "28", "29", "30", "31", "32", "00", "1"],
    ["T", "t", " ", "", "_"],
    ["00", "12", "23", "24", "1"],
    [":", ""],
    ["00", "59", "60"],
    [":00", ":59", ":60", ":61", "", ":5"],
    ["", ".5", ".123456789", ".", ".x", ",5"],
    ["Z", "z", "", "+02:00", "-05:30", "-00:00", "+0200", "+24:00", "+02:60", "+2:00", "UTC",
     "Z\n", " Z", "+23:59"],
)  # fmt: skip


@given(st.one_of(NEAR_INSTANTS, st.text(max_size=80)))
@example("2016-12-31T23:59:60Z")  # a leap second, read as the last microsecond of the day
@example("2016-12-31T22:59:60Z")  # not 23:59 UTC: no leap second there
@example("0001-01-01T00:30:00+01:00")  # year 0 in UTC
@example("2026-11-27T12:00:00." + "1" * 60 + "Z")  # beyond 64 characters
def test_any_string_that_is_not_a_full_instant_is_refused(text: str) -> None:
    expected = _instant_us(text)
    assert parse_instant(text) == expected
    entry = {"card": "c", "outcome": "overridden", "outcomeTimestamp": text}
    if expected is None:
        with pytest.raises(InvalidCdsRequestError) as refused:
            parse_feedback({"feedback": [entry]})
        assert {issue.expression for issue in refused.value.issues} == {(TIMESTAMP,)}
    else:
        assert [e.outcome_us for e in parse_feedback({"feedback": [entry]})] == [expected]


OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@given(
    st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=OFFSETS),
    st.integers(0, 9),
    st.sampled_from(["T", "t"]),
    st.booleans(),
)
def test_every_full_instant_is_read_to_its_microsecond(
    moment: datetime, digits: int, separator: str, lower_z: bool
) -> None:
    """Any offset in minutes, 0 to 9 fraction digits (cut to microseconds), Z for UTC."""
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    zone = (
        ("z" if lower_z else "Z")
        if minutes == 0
        else f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    fraction = f"{moment.microsecond:06d}000"[:digits]
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        f"{'.' + fraction if digits else ''}{zone}"
    )
    kept = moment.replace(microsecond=int(fraction.ljust(6, "0")[:6]))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_instant(text) == (kept - epoch) // timedelta(microseconds=1)
