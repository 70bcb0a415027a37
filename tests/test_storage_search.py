"""FHIR search on stored resources: the strict parser and the searches it runs (both DBs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from api import create_app
from api.fhir.search import (
    MAX_COUNT,
    VALUE_PATTERNS,
    Cursor,
    SearchError,
    decode_cursor,
    format_us,
    instant_us,
    parse_date_range,
    parse_search,
)

SYSTEM = "https://twitch-triage.org/fhir/CodeSystem"


def request_for(patient: str, *, concussion: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {"age_years": 12, "reference": patient},
        "twitching": {"body_sites": ["calf"]},
    }
    if concussion:
        body["symptoms"] = {"headache": True, "loss_of_balance": True}
        body["history"] = {"head_impact": True}
    return body


@pytest.fixture
def client(database_url: str) -> FlaskClient:
    app: Flask = create_app({"TESTING": True, "DATABASE_URL": database_url})
    return app.test_client()


def post(client: FlaskClient, patient: str, *, concussion: bool = False) -> dict[str, Any]:
    response = client.post("/v1/triage", json=request_for(patient, concussion=concussion))
    assert response.status_code == 200
    return response.get_json()


def search(client: FlaskClient, url: str, status: int = 200) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def ids(page: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in page.get("entry", [])]


def link(page: dict[str, Any], relation: str) -> str | None:
    for item in page["link"]:
        if item["relation"] == relation:
            return item["url"].removeprefix("http://localhost")
    return None


# --- parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ([("patient", "Patient/1")], "patient"),
        ([("subject:Patient", "1")], "subject:Patient"),
        ([("code:text", "x")], "code:text"),
        ([("date", "ap2026-01-01")], "date"),
        ([("date", "2026-01-01,2026-01-02")], "date"),
        ([("date", "2026-13-01")], "date"),
        ([("date", "2026-01-01T10:00")], "date"),  # a time needs a zone
        ([("_count", str(MAX_COUNT + 1))], "_count"),
        ([("_count", "-1")], "_count"),
        ([("_count", "5"), ("_count", "6")], "_count"),
        ([("_cursor", "garbage!")], "_cursor"),
        ([("subject", "Group/1")], "subject"),
        ([("subject", "Patient/a b")], "subject"),
        ([("code", "")], "code"),
        ([("_sort", "date")], "_sort"),
        ([("_summary", "true")], "_summary"),
    ],
)
def test_the_parser_refuses_what_it_would_otherwise_ignore(query, parameter):
    with pytest.raises(SearchError) as raised:
        parse_search("Observation", query)
    assert raised.value.parameter == parameter


def test_tokens_references_and_dates_parse():
    query = parse_search(
        "Observation",
        [
            ("subject", "p-1,Patient/p-2"),
            ("code", "http://loinc.org|11283-9,|bare,any"),
            ("date", "ge2026-11"),
            ("date", "lt2026-11-27T10:00:00+01:00"),
            ("_count", "7"),
        ],
    )
    assert query.references["subject"] == (("Patient/p-1", "Patient/p-2"),)
    tokens = query.tokens["code"][0]
    assert [(t.system, t.code) for t in tokens] == [
        ("http://loinc.org", "11283-9"),
        ("", "bare"),
        (None, "any"),
    ]
    month, before = query.dates["date"]
    assert month.prefix == "ge"
    assert format_us(month.start_us) == "2026-11-01T00:00:00.000Z"
    assert format_us(month.end_us) == "2026-12-01T00:00:00.000Z"
    assert format_us(before.start_us) == "2026-11-27T09:00:00.000Z"
    assert query.count == 7


def test_cursor_round_trips():
    cursor = Cursor("before", 1_795_000_000_123_000, "abc-1")
    assert decode_cursor(cursor.encode()) == cursor


_MOMENTS = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(_MOMENTS, st.sampled_from([4, 7, 10, 16, 19, 23]))
def test_a_date_at_any_precision_is_the_range_that_contains_its_moments(moment, precision):
    """`2026-11` covers every instant of November and nothing else (FHIR date ranges)."""
    full = format_us(instant_us(moment.isoformat()))  # 2026-11-27T10:11:12.345Z
    written = full[:precision] + ("Z" if precision > 10 else "")
    start, end = parse_date_range("date", written)
    value = instant_us(full)
    assert start <= value < end
    # The range is exactly one unit of the precision written.
    unit = {
        16: timedelta(minutes=1),
        19: timedelta(seconds=1),
        23: timedelta(milliseconds=1),
        10: timedelta(days=1),
    }
    if precision in unit:
        assert end - start == unit[precision] // timedelta(microseconds=1)


# --- searches on both databases ---------------------------------------------------------


@pytest.fixture(params=["rare code: by carriers", "common code: row by row"])
def code_plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both plans of a code search: small test stores make every code rare, so the
    row-by-row plan of common codes is forced by a limit no code stays under."""
    if request.param.startswith("common"):
        monkeypatch.setattr("api.storage.repository.RARE_CODE_LIMIT", -1)
    return str(request.param)


@pytest.mark.usefixtures("code_plan")
def test_subject_code_and_date_select_exactly_the_matching_resources(client):
    first = post(client, "Patient/a", concussion=True)
    post(client, "Patient/a")
    post(client, "Patient/b", concussion=True)
    everything = search(client, "/fhir/Observation?_count=100")
    assert everything["type"] == "searchset"
    total = sum(
        1 for b in (first,) for e in b["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    assert total >= 2
    levels = search(client, "/fhir/Observation?code=http://loinc.org|11283-9")
    assert levels["total"] == 3
    mine = search(client, "/fhir/Observation?subject=Patient/a&code=11283-9")
    assert mine["total"] == 2
    assert all(e["resource"]["subject"]["reference"] == "Patient/a" for e in mine["entry"])
    bare_id = search(client, "/fhir/Observation?subject=a&code=11283-9")
    assert bare_id["total"] == 2
    concussion = search(
        client, f"/fhir/Observation?code={SYSTEM}/red-flag-rule|RF-CONCUSSION-SYMPTOMS"
    )
    assert concussion["total"] == 2
    both = search(client, "/fhir/Observation?subject=Patient/a,Patient/b&code=11283-9")
    assert both["total"] == 3
    wrong_system = search(client, "/fhir/Observation?code=http://snomed.info/sct|11283-9")
    assert wrong_system["total"] == 0
    day = first["timestamp"][:10]
    assert search(client, f"/fhir/Observation?code=11283-9&date={day}")["total"] == 3
    assert search(client, f"/fhir/Observation?code=11283-9&date=gt{day}")["total"] == 0
    assert search(client, f"/fhir/Observation?code=11283-9&date=lt{day}")["total"] == 0
    assert search(client, f"/fhir/Observation?code=11283-9&_lastUpdated=ge{day}")["total"] == 3
    both_codes = f"/fhir/Observation?code=11283-9,nothing&code={SYSTEM}/red-flag-rule|"
    assert search(client, both_codes + "RF-CONCUSSION-SYMPTOMS")["total"] == 0  # AND of codes
    assert search(client, "/fhir/Observation?code=no-such-code")["total"] == 0
    assert (
        search(client, "/fhir/Observation?code=no-such-code,RF-CONCUSSION-SYMPTOMS")["total"] == 2
    )
    qrs = search(client, f"/fhir/QuestionnaireResponse?subject=Patient/b&authored={day}")
    assert qrs["total"] == 1
    assert qrs["entry"][0]["resource"]["resourceType"] == "QuestionnaireResponse"
    assert qrs["entry"][0]["search"] == {"mode": "match"}
    assert qrs["entry"][0]["fullUrl"].startswith("http://localhost/fhir/QuestionnaireResponse/")


def test_paging_walks_every_match_once_in_a_stable_order_while_new_ones_arrive(client):
    for _ in range(5):
        post(client, "Patient/walk")
    url: str | None = "/fhir/QuestionnaireResponse?subject=Patient/walk&_count=2"
    seen: list[str] = []
    pages = []
    while url:
        page = search(client, url)
        pages.append(page)
        assert page["total"] >= 5
        seen.extend(ids(page))
        post(client, "Patient/walk")  # newer ones must not shift the pages being walked
        url = link(page, "next")
    assert len(seen) == len(set(seen)) == 5
    # Newest first, and "previous" leads back to exactly the page before.
    back = search(client, link(pages[1], "previous"))
    assert ids(back) == ids(pages[0])
    assert link(pages[0], "previous") is None


def test_count_zero_gives_the_total_only_and_large_counts_are_capped(client):
    post(client, "Patient/c")
    page = search(client, "/fhir/Observation?_count=0")
    assert page["total"] >= 1
    assert "entry" not in page
    refused = search(client, f"/fhir/Observation?_count={MAX_COUNT + 1}", status=400)
    assert refused["issue"][0]["expression"] == ["http._count"]


def test_unknown_parameters_are_a_400_operation_outcome(client):
    refused = search(client, "/fhir/Observation?patient=Patient/a", status=400)
    assert refused["resourceType"] == "OperationOutcome"
    assert refused["issue"][0]["expression"] == ["http.patient"]
    search(client, "/fhir/QuestionnaireResponse?code=x", status=400)
    search(client, "/fhir/AuditEvent?subject=Patient/a", status=400)


def test_search_etag_and_if_none_match(client):
    post(client, "Patient/e")
    first = client.get("/fhir/Observation?subject=Patient/e")
    etag = first.headers["ETag"]
    again = client.get("/fhir/Observation?subject=Patient/e", headers={"If-None-Match": etag})
    assert again.status_code == 304
    post(client, "Patient/e")
    changed = client.get("/fhir/Observation?subject=Patient/e", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_format_is_content_negotiation_not_a_filter(client):
    post(client, "Patient/f")
    page = search(client, "/fhir/Observation?subject=Patient/f&_format=json")
    assert page["total"] >= 1


@given(st.from_regex(VALUE_PATTERNS["date"], fullmatch=True))
def test_every_date_the_contract_allows_is_parsed(text):
    """The OpenAPI pattern and the parser agree (month lengths and leap years included)."""
    assert parse_search("Observation", [("date", text)]).dates["date"]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-02-29", True),
        ("2000-02-29", True),
        ("2023-02-29", False),
        ("1900-02-29", False),
        ("2026-11-31", False),
        ("2026-12-31T23:59:59.999Z", True),
        ("0000", False),
        ("0001-01-01T00:00+14:00", True),
        ("9999-12-31", True),
    ],
)
def test_the_date_pattern_knows_the_calendar(text, valid):
    import re  # noqa: PLC0415

    assert (re.fullmatch(VALUE_PATTERNS["date"], text) is not None) == valid
    if valid:
        parse_search("Observation", [("date", text)])
    else:
        with pytest.raises(SearchError):
            parse_search("Observation", [("date", text)])


@given(st.from_regex(VALUE_PATTERNS["token"], fullmatch=True).filter(lambda t: len(t) <= 1024))
def test_every_token_the_contract_allows_is_parsed(text):
    query = parse_search("Observation", [("code", text)])
    assert len(query.tokens["code"][0]) == text.count(",") + 1


def test_total_is_exact_up_to_the_count_limit_and_omitted_above(database_url):
    from api.config import EXTENSION  # noqa: PLC0415
    from api.fhir.audit import AuditFacts  # noqa: PLC0415
    from api.storage.records import audit_row, new_id  # noqa: PLC0415
    from api.storage.repository import COUNT_LIMIT  # noqa: PLC0415

    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    store = app.extensions[EXTENSION].store
    with store.unit_of_work() as work:
        for index in range(COUNT_LIMIT + 1):
            work.add_audit(
                audit_row(
                    AuditFacts(
                        id=new_id(),
                        recorded=format_us(1_700_000_000_000_000 + index * 1000),
                        interaction="read",
                        status=200,
                        request_id=new_id(),
                        client_address="127.0.0.1",
                        software_version="test",
                        entity=("Bundle", f"b-{index}"),
                        tenant="local",  # the tenant of the test client that searches
                    )
                )
            )
    client = app.test_client()
    many = search(client, "/fhir/AuditEvent?subtype=read&_count=5")
    assert "total" not in many
    assert len(many["entry"]) == 5
    assert link(many, "next") is not None
    few = search(client, "/fhir/AuditEvent?entity=Bundle/b-7")
    assert few["total"] == 1
    # 1_700_000_000 s is 2023-11-14T22:13:20Z, one event per ms: all but the last.
    exact = search(client, "/fhir/AuditEvent?subtype=read&date=lt2023-11-14T22:13:21.000Z")
    assert exact["total"] == COUNT_LIMIT


@given(st.integers(0, 10_000), st.integers(0, 3))
def test_the_count_pattern_is_exactly_zero_to_the_maximum(count, zeros):
    import re  # noqa: PLC0415

    text = "0" * zeros + str(count)
    assert (re.fullmatch(VALUE_PATTERNS["_count"], text) is not None) == (count <= MAX_COUNT)


def resource_search(statement: str) -> bool:
    """A statement of a resource search (its bounded count or its page)."""
    return "FROM resource " in statement and "assessment.tenant" in statement


def audit_search(statement: str) -> bool:
    """A statement of an AuditEvent search (its bounded count or its page)."""
    return "FROM audit_event" in statement and statement.lstrip().startswith("SELECT")


def sqlite_plans(
    tmp_path: Any, urls: tuple[str, ...], wanted: Callable[[str], bool] = resource_search
) -> dict[str, list[list[str]]]:
    """SQLite's query plans of the ``wanted`` statements each URL ran (after one stored
    triage)."""
    from sqlalchemy import event  # noqa: PLC0415 (only these tests listen to the engine)

    from api.config import EXTENSION  # noqa: PLC0415

    app: Flask = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"})
    client = app.test_client()
    post(client, "Patient/p-plan", concussion=True)
    engine = app.extensions[EXTENSION].store.engine
    ran: dict[str, list[tuple[str, Any]]] = {url: [] for url in urls}
    current: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if wanted(statement):
            ran[current[-1]].append((statement, parameters))

    for url in urls:
        current.append(url)
        assert search(client, url)["total"] >= 1
    event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as connection:
        return {
            url: [
                [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", args)]
                for sql, args in statements
            ]
            for url, statements in ran.items()
        }


def test_a_search_does_not_list_every_assessment_of_the_tenant(tmp_path) -> None:
    """The tenant check is made per candidate row, by primary key (SQLite's plan).

    As ``assessment_id IN (SELECT id … WHERE tenant = ?)`` SQLite listed all of the
    tenant's assessments before every search: 200 ms per search at 100,000 of them
    (``bench.seed_store``), growing with the store. The plan must not hold such a list.
    """
    urls = (
        "/fhir/Observation?subject=Patient/p-plan",
        "/fhir/Observation?code=RF-CONCUSSION-SYMPTOMS",
        "/fhir/QuestionnaireResponse?subject=Patient/p-plan",
    )
    for url, plans in sqlite_plans(tmp_path, urls).items():
        assert plans, url
        for details in plans:
            assert not any("LIST SUBQUERY" in detail for detail in details), details
            assert any("USING INDEX sqlite_autoindex_assessment_1 (id=?)" in d for d in details)


def test_a_rare_code_search_starts_from_the_resources_that_carry_the_code(tmp_path) -> None:
    """Led by the carriers' ids, not by a type index walked newest first.

    Walked by date, a search for a code few resources carry (or none) read every
    Observation: 4.3 s at 100,000 assessments (``bench.seed_store``).
    """
    url = "/fhir/Observation?code=RF-CONCUSSION-SYMPTOMS"
    plans = sqlite_plans(tmp_path, (url,))[url]
    assert len(plans) == 2  # the bounded count and the page
    for details in plans:  # the outermost loop over resource (the count wraps it)
        loop = next(d for d in details if d.startswith(("SEARCH resource ", "SCAN resource")))
        assert loop == "SEARCH resource USING INDEX sqlite_autoindex_resource_1 (id=?)"


def test_an_audit_event_search_walks_one_index_newest_first(tmp_path) -> None:
    """Tenant, date range, order and the subtype/action/outcome filters from one index.

    With the tenant index alone, every page read and sorted all of the tenant's
    AuditEvents, one more for every request: 310 ms at 300,000 events on SQLite.
    """
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    urls = (
        "/fhir/AuditEvent",
        f"/fhir/AuditEvent?date=ge{day}",
        "/fhir/AuditEvent?subtype=create&action=C&outcome=0",
    )
    for url, plans in sqlite_plans(tmp_path, urls, wanted=audit_search).items():
        assert len(plans) == 2, url  # a bounded count and a page per search
        for plan in plans:
            assert any("INDEX ix_audit_event_tenant_recorded (tenant=?" in d for d in plan), plan
            assert not any("TEMP B-TREE" in d for d in plan), plan


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [("+14:00", True), ("-14:00", True), ("+13:59", True), ("+14:30", False), ("+15:00", False),
     ("-23:00", False)],
)  # fmt: skip
def test_date_offsets_stop_at_fourteen_hours_as_fhir_says(offset, accepted):
    value = f"2026-01-01T01:00:00{offset}"
    if accepted:
        assert parse_search("Observation", [("date", value)]).dates["date"]
    else:
        with pytest.raises(SearchError):
            parse_search("Observation", [("date", value)])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ([("action", "Z")], "action"),
        ([("action", "R,Z")], "action"),
        ([("outcome", "abc")], "outcome"),
        ([("outcome", "-1")], "outcome"),
        ([("outcome", "http://hl7.org/fhir/audit-event-outcome|5")], "outcome"),
    ],
)
def test_a_code_outside_a_required_value_set_is_refused_not_searched(query, parameter):
    """AuditEvent.action and .outcome are bound (required) to closed value sets: ``Z`` is
    a malformed value (400), not a search that finds nothing (the bad-input battery)."""
    with pytest.raises(SearchError) as raised:
        parse_search("AuditEvent", query)
    assert raised.value.parameter == parameter
    assert parse_search("AuditEvent", [(parameter, "R" if parameter == "action" else "4")])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("code=%ff", "code"),
        ("code=%C0%AF", "code"),  # an overlong encoding of "/"
        ("subject=%ED%A0%80", "subject"),  # an encoded surrogate
        ("%ff=1", "query"),
    ],
)
def test_a_value_that_is_not_utf8_is_a_400_not_an_empty_search(client, query, parameter):
    """werkzeug read ``%ff`` as U+FFFD, so the search quietly found nothing (200)."""
    response = client.get(f"/fhir/Observation?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)
    (issue,) = response.get_json()["issue"]
    assert issue["expression"] == [f"http.{parameter}"]
    assert "UTF-8" in issue["diagnostics"]
    fine = client.get("/fhir/Observation?code=%C3%A9")  # é, well encoded: searched
    assert fine.status_code == 200
