"""A search answer that is present but malformed is never "no intake" (bad-input battery,
session 9, HIGH).

Before, ``entry: [{"resources": <QR>}]``, ``search.mode: "Match"``, a resource without
``resourceType``, ``entry: [null]``, ``entry: {}``, ``total: 1`` with no entry … all
answered ``{"cards": []}``, exactly like "this patient has no intake": the clinician
got no card and no error. Now each is a 412 naming the element, prefetched
(``prefetch.intake.…``) or fetched from the EHR's FHIR server (``Bundle.…``); only a
well-formed FHIR R4 ``searchset`` without a matching QuestionnaireResponse is "no
intake". The rule is also checked for every corruption hypothesis makes of a searchset
that holds the intake.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from cds_support import (
    TENANT,
    LoopbackServer,
    authorized,
    call,
    hook_request,
    intake_for,
    register,
    registered_ehr,  # noqa: F401 (the ehr fixture)
    searchset,
)
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.services.cds.searchset import read_search_answer
from api.services.errors import PreconditionFailedError

VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
#: An intake as the tests' EHR would hold it (``intake_for`` renders one per patient).
PATIENT = "p-ss"
TOKEN = "ehr-token-" + uuid.uuid4().hex


@pytest.fixture(name="intake")
def intake_fixture(client: FlaskClient) -> dict[str, Any]:
    return intake_for(client, VALID, PATIENT)


def _bundle(*entries: Any, **members: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": list(entries), **members}


def _outcome(severity: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "x"}]}


def _without(resource: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in resource.items() if name != key}


#: (id, the answer made from the intake, the element named, relative to the answer).
MALFORMED = [
    ("resources-misspelt", lambda qr: _bundle({"resources": qr}), ".entry[0].resources"),
    ("mode-Match", lambda qr: _bundle({"resource": qr, "search": {"mode": "Match"}}),
     ".entry[0].search.mode"),
    ("mode-5", lambda qr: _bundle({"resource": qr, "search": {"mode": 5}}),
     ".entry[0].search.mode"),
    ("mode-null", lambda qr: _bundle({"resource": qr, "search": {"mode": None}}),
     ".entry[0].search.mode"),
    ("search-a-string", lambda qr: _bundle({"resource": qr, "search": "match"}),
     ".entry[0].search"),
    ("search-misspelt", lambda qr: _bundle({"resource": qr, "search": {"mod": "match"}}),
     ".entry[0].search.mod"),
    ("no-resourceType", lambda qr: _bundle({"resource": _without(qr, "resourceType")}),
     ".entry[0].resource.resourceType"),
    ("resourceType-lower-case",
     lambda qr: _bundle({"resource": {**qr, "resourceType": "questionnaireresponse"}}),
     ".entry[0].resource.resourceType"),
    ("resource-a-string", lambda _qr: _bundle({"resource": "QuestionnaireResponse/1"}),
     ".entry[0].resource"),
    ("entry-null-item", lambda _qr: _bundle(None), ".entry[0]"),
    ("entry-an-object", lambda qr: {**_bundle(), "entry": {"resource": qr}}, ".entry"),
    ("entry-null", lambda _qr: {**_bundle(), "entry": None}, ".entry"),
    ("entries-misspelt", lambda qr: {**_without(_bundle(), "entry"), "entries": [qr]},
     ".entries"),
    ("total-1-no-entry", lambda _qr: {**_without(_bundle(), "entry"), "total": 1}, ".total"),
    ("total-not-a-count", lambda qr: _bundle({"resource": qr}, total="1"), ".total"),
    ("no-type", lambda qr: _without(_bundle({"resource": qr}), "type"), ".type"),
    ("type-collection", lambda qr: _bundle({"resource": qr}, type="collection"), ".type"),
    ("implicitRules", lambda qr: _bundle({"resource": qr}, implicitRules="https://x.example"),
     ".implicitRules"),
    ("modifierExtension", lambda qr: _bundle({"resource": qr, "modifierExtension": [{}]}),
     ".entry[0].modifierExtension"),
    ("request-in-a-searchset",
     lambda qr: _bundle({"resource": qr, "request": {"method": "GET", "url": "x"}}),
     ".entry[0].request"),
    ("match-that-is-no-intake",
     lambda _qr: _bundle({"resource": {"resourceType": "Patient"}, "search": {"mode": "match"}}),
     ".entry[0].resource.resourceType"),
    ("outcome-that-is-no-outcome",
     lambda qr: _bundle({"resource": qr, "search": {"mode": "outcome"}}),
     ".entry[0].resource.resourceType"),
    ("outcome-severity-unknown", lambda _qr: _bundle({"resource": _outcome("Error")}),
     ".entry[0].resource.issue[0].severity"),
    ("outcome-without-issue",
     lambda _qr: _bundle({"resource": {"resourceType": "OperationOutcome"},
                         "search": {"mode": "outcome"}}),
     ".entry[0].resource.issue"),
    # A good entry does not excuse a bad one: whether the bad one is the newer intake is
    # unknown.
    ("a-bad-entry-beside-a-good-one",
     lambda qr: _bundle({"resource": qr}, {"resource": {**qr, "resourceType": "qr"}}),
     ".entry[1].resource.resourceType"),
]  # fmt: skip
MALFORMED_IDS = [case[0] for case in MALFORMED]


def _named(response: Any) -> list[str]:
    """The elements a 412 names (one issue each, the path also leads its diagnostics)."""
    assert response.status_code == 412, response.data[:800]
    assert response.json["resourceType"] == "OperationOutcome"
    issues = response.json["issue"]
    for issue in issues:
        assert issue["diagnostics"].startswith(issue["expression"][0] + ": ")
    return [issue["expression"][0] for issue in issues]


@pytest.mark.parametrize("case", MALFORMED, ids=MALFORMED_IDS)
def test_a_malformed_prefetch_is_412_naming_its_element(client, ehr, intake, case):
    name, make, element = case
    response = call(client, ehr, hook_request(PATIENT, make(intake)))
    named = _named(response)
    assert f"prefetch.intake{element}" in named, (name, named)
    assert all(path.startswith("prefetch.intake") for path in named)


@pytest.mark.parametrize("case", MALFORMED, ids=MALFORMED_IDS)
def test_a_malformed_search_answer_is_412_naming_its_element(app: Flask, client, ehr, intake, case):
    name, make, element = case
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, make(intake))}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url,))
        body = hook_request(PATIENT, prefetch=False, **authorized(fhir.url, TOKEN))
        response = call(client, ehr, body)
        assert len(fhir.calls) == 1
    named = _named(response)
    assert f"Bundle{element}" in named, (name, named)
    assert all(path.startswith("Bundle") for path in named)
    assert TOKEN not in response.get_data(as_text=True)


def test_a_server_answering_null_is_412_not_no_intake(app: Flask, client, ehr):
    """A prefetch of null is "no intake" (the EHR says so); a server answering JSON null
    has not answered the search."""
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, b"null")}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url,))
        body = hook_request(PATIENT, prefetch=False, **authorized(fhir.url, TOKEN))
        response = call(client, ehr, body)
    assert response.status_code == 412, response.data[:500]
    assert response.json["issue"][0]["expression"] == ["fhirServer"]


def test_many_bad_entries_are_named_ten_at_most(client, ehr):
    response = call(client, ehr, hook_request(PATIENT, _bundle(*[None] * 500)))
    assert _named(response) == [f"prefetch.intake.entry[{index}]" for index in range(10)]


# --- what stays accepted ---------------------------------------------------------------------

#: Well-formed searchsets without a matching QuestionnaireResponse: "no intake".
NO_INTAKE = [
    ("total-0", lambda _qr: {"resourceType": "Bundle", "type": "searchset", "total": 0}),
    ("no-entry", lambda _qr: {"resourceType": "Bundle", "type": "searchset"}),
    ("entry-empty", lambda _qr: _bundle()),
    ("only-an-include", lambda _qr: _bundle(
        {"resource": {"resourceType": "Patient", "id": PATIENT}, "search": {"mode": "include"}})),
    ("an-included-intake-is-no-match", lambda qr: _bundle(
        {"resource": qr, "search": {"mode": "include"}}, total=0)),
    ("a-warning-outcome", lambda _qr: _bundle(
        {"resource": _outcome("warning"), "search": {"mode": "outcome"}}, total=0)),
    ("an-unmarked-information-outcome", lambda _qr: _bundle({"resource": _outcome("information")})),
    ("every-r4-member", lambda _qr: {
        "resourceType": "Bundle", "id": "s1", "meta": {"lastUpdated": "2026-11-27T10:00:00Z"},
        "language": "en", "identifier": {"value": "1"}, "type": "searchset",
        "_type": {"extension": []}, "timestamp": "2026-11-27T10:00:00Z", "total": 0,
        "link": [{"relation": "self", "url": "https://ehr.example/fhir/QuestionnaireResponse"}],
        "signature": {}, "entry": []}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make"), NO_INTAKE, ids=[case[0] for case in NO_INTAKE])
def test_a_well_formed_search_without_a_match_is_no_intake(client, ehr, intake, name, make):
    response = call(client, ehr, hook_request(PATIENT, make(intake)))
    assert response.status_code == 200, (name, response.data[:800])
    assert response.json == {"cards": []}


#: Well-formed answers holding the intake: a card.
WITH_INTAKE = [
    ("bare-intake", lambda qr: qr),
    ("helper-searchset", searchset),
    ("unmarked-match", lambda qr: _bundle({"resource": qr})),
    ("match-and-include-and-warning", lambda qr: _bundle(
        {"fullUrl": "https://ehr.example/fhir/QuestionnaireResponse/1", "resource": qr,
         "search": {"mode": "match", "score": 1}},
        {"resource": {"resourceType": "Patient", "id": PATIENT}, "search": {"mode": "include"}},
        {"resource": _outcome("warning"), "search": {"mode": "outcome"}},
        total=1)),
    # Paging: _count=1 of several matches gives one match and a total above it.
    ("one-page-of-several", lambda qr: _bundle({"resource": qr, "search": {"mode": "match"}},
                                               total=4)),
    # An error outcome beside a match: the intake is there, it is triaged.
    ("match-beside-an-error-outcome", lambda qr: _bundle(
        {"resource": qr}, {"resource": _outcome("error"), "search": {"mode": "outcome"}})),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make"), WITH_INTAKE, ids=[case[0] for case in WITH_INTAKE])
def test_a_well_formed_answer_holding_the_intake_gives_its_card(client, ehr, intake, name, make):
    response = call(client, ehr, hook_request(PATIENT, make(intake)))
    assert response.status_code == 200, (name, response.data[:800])
    assert len(response.json["cards"]) == 1


# --- the rule for every corruption of a searchset holding the intake (hypothesis) ----------


def _corruptions(intake: dict[str, Any]) -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    """(a searchset holding ``intake`` among other well-formed entries, one element of
    it corrupted; the path of the element corrupted)."""
    other_text = st.text(max_size=8).filter(
        lambda text: text not in ("match", "include", "outcome")
    )
    not_an_object = st.one_of(
        st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)
    )

    @st.composite
    def build(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
        before = draw(st.integers(min_value=0, max_value=2))
        entries: list[Any] = [
            {"resource": {"resourceType": "Patient", "id": f"x{i}"}, "search": {"mode": "include"}}
            for i in range(before)
        ]
        entry = {"resource": copy.deepcopy(intake), "search": {"mode": "match"}}
        entries.append(entry)
        at = f".entry[{before}]"
        kind = draw(
            st.sampled_from(
                ["entry", "key", "resource", "resourceType", "mode", "search", "entries"]
            )
        )
        if kind == "entry":
            entries[before] = draw(not_an_object)
            path = at
        elif kind == "key":  # the entry's resource under another member name
            name = draw(st.text(min_size=1, max_size=12).filter(lambda t: t not in _ENTRY_KEYS))
            entry[name] = entry.pop("resource")
            path = f"{at}.{name}"
        elif kind == "resource":
            entry["resource"] = draw(not_an_object.filter(lambda value: value is not None))
            path = f"{at}.resource"
        elif kind == "resourceType":
            entry["resource"]["resourceType"] = draw(
                st.one_of(not_an_object, st.sampled_from(["questionnaireresponse", ""]))
            )
            path = f"{at}.resource.resourceType"
        elif kind == "mode":
            entry["search"]["mode"] = draw(st.one_of(other_text, st.integers(), st.none()))
            path = f"{at}.search.mode"
        elif kind == "search":
            entry["search"] = draw(
                st.one_of(st.text(max_size=8), st.integers(), st.lists(st.none()))
            )
            path = f"{at}.search"
        else:
            path = ".entry"
            return {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": draw(
                    st.one_of(
                        st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
                    )
                ),
            }, path
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}, path

    return build()


_ENTRY_KEYS = {"id", "extension", "modifierExtension", "link", "fullUrl", "_fullUrl", "resource",
               "search", "request", "response"}  # fmt: skip
#: An intake as read from an EHR (its shape only matters here, not its answers).
_INTAKE = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "subject": {"reference": f"Patient/{PATIENT}"},
    "authored": "2026-11-27T10:00:00Z",
}


@settings(max_examples=400, deadline=None)
@given(case=_corruptions(_INTAKE))
def test_no_corruption_of_a_searchset_holding_the_intake_reads_as_no_intake(case):
    """Under-triage is the worst defect: a searchset that held the intake, one element of
    it corrupted, is a 412 naming that element, never "no intake", for both sources."""
    bundle, path = case
    for expression, inside in (("prefetch.intake", "prefetch.intake"), ("fhirServer", "Bundle")):
        with pytest.raises(PreconditionFailedError) as refused:
            read_search_answer(bundle, expression=expression, inside=inside)
        named = [issue.expression[0] for issue in refused.value.issues]
        assert f"{inside}{path}" in named


@settings(max_examples=200, deadline=None)
@given(
    roles=st.lists(
        st.sampled_from(["match", "include", "warning", "error", "unmarked"]), max_size=6
    ),
)
def test_a_well_formed_searchset_is_read_for_what_it_holds(roles):
    """Any mix of well-formed entries: the newest match is the intake; no match and an
    error outcome is a failed query; else no intake. Never a 412."""
    entries: list[dict[str, Any]] = []
    for index, role in enumerate(roles):
        authored = f"2026-11-{10 + index:02d}T10:00:00Z"
        if role in ("match", "unmarked"):
            resource = {**_INTAKE, "id": f"qr{index}", "authored": authored}
            entry: dict[str, Any] = {"resource": resource}
            if role == "match":
                entry["search"] = {"mode": "match"}
        elif role == "include":
            entry = {"resource": {"resourceType": "Patient"}, "search": {"mode": "include"}}
        else:
            entry = {"resource": _outcome(role), "search": {"mode": "outcome"}}
        entries.append(entry)
    answer = read_search_answer(
        _bundle(*entries), expression="prefetch.intake", inside="prefetch.intake"
    )
    matched = [i for i, role in enumerate(roles) if role in ("match", "unmarked")]
    if matched:
        assert answer.intake is not None
        assert answer.intake["id"] == f"qr{matched[-1]}"  # the newest by authored
        assert not answer.failed
    else:
        assert answer.intake is None
        assert answer.failed == ("error" in roles)


def test_a_failed_prefetch_still_falls_back_to_the_ehrs_server(app: Flask, client, ehr, intake):
    """A searchset of error outcomes is a failed query (not malformed, not "no intake"):
    the search is run on the registered server, as before."""
    failed = _bundle({"resource": _outcome("fatal"), "search": {"mode": "outcome"}}, total=0)
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url,))
        response = call(client, ehr, hook_request(PATIENT, failed, **authorized(fhir.url, TOKEN)))
        assert response.status_code == 200, response.data[:500]
        assert len(response.json["cards"]) == 1
        assert len(fhir.calls) == 1


def test_a_malformed_prefetch_is_412_even_with_a_server_to_ask(app: Flask, client, ehr, intake):
    """The EHR sent a prefetch it got wrong: named, not papered over by a fetch."""
    bad = _bundle({"resources": intake})
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url,))
        response = call(client, ehr, hook_request(PATIENT, bad, **authorized(fhir.url, TOKEN)))
        assert "prefetch.intake.entry[0].resources" in _named(response)
        assert fhir.calls == []


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        # orjson keeps the last of duplicate keys: this read as a search that found nothing.
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": '
         b'{"resourceType": "QuestionnaireResponse"}}], "entry": []}', "duplicate key"),
        # Deeper than the stdlib decoder's stack, within orjson's limit: not a 500.
        (b'{"resourceType": "Bundle", "type": "searchset", "link": '
         + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deeply"),
    ],
    ids=["duplicate-entry-member", "nested-1000-deep"],
)  # fmt: skip
def test_a_search_answer_that_is_no_strict_json_is_412(app: Flask, client, ehr, data, needle):
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, data)}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url,))
        body = hook_request(PATIENT, prefetch=False, **authorized(fhir.url, TOKEN))
        response = call(client, ehr, body)
    assert response.status_code == 412, response.data[:500]
    [issue] = response.json["issue"]
    assert issue["expression"] == ["fhirServer"]
    assert needle in issue["diagnostics"]
