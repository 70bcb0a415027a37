"""Request ⇄ QuestionnaireResponse (PROTOCOL.md §9): layout, none vs unknown, round trip."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.fhir import (
    FhirSettings,
    QuestionnaireResponseError,
    map_questionnaire_response,
    questionnaire_response_to_request,
    render_triage_bundle,
)
from api.fhir import codesystems as cs
from api.fhir.questionnaire_response import GATE_OF, GATES
from triage.result import Level, TriageResult
from triage.vocabulary import ITEMS, SECTIONS, TOP_LEVEL_ITEMS, Item, Kind
from triage.wording import question

BASE = cs.DEFAULT_CANONICAL_BASE
RESULT = TriageResult(Level.SELF_CARE, (), (), (), (), "1.0.0")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
#: Vocabulary order, each list's yes/no question (not a vocabulary path) right before it.
VOCABULARY_ORDER = {
    link_id: index
    for index, link_id in enumerate(
        id_ for path in ITEMS for id_ in ([GATE_OF[path]] if path in GATE_OF else []) + [path]
    )
}


def _qr(request: dict[str, Any]) -> dict[str, Any]:
    bundle = render_triage_bundle(request, RESULT, settings=FhirSettings(), now=NOW)
    return orjson.loads(orjson.dumps(bundle["entry"][0]["resource"]))


def _items(qr: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in qr.get("item", []):
        out.setdefault(item["linkId"], []).append(item)
    return out


FULL = {
    "patient": {"reference": "Patient/123", "age_years": 11, "sex": "female"},
    "activity": {"type": "artistic roller skating", "session_minutes": 120, "warm_up": False},
    "twitching": {"body_sites": ["neck", "face"], "episode_minutes": 2.5, "onset": "sudden"},
    "symptoms": {"confusion": False, "headache": True},
    "history": {
        "head_impact": True,
        "hours_since_head_impact": 30,
        "medications": [{"class": "statin", "days_since_start": 3}, {"class": "other"}],
        "conditions": ["asthma"],
    },
    "blood_glucose_mmol_l": 5.4,
    "notes": "free text",
}


def test_header_and_subject():
    qr = _qr(FULL)
    assert qr["status"] == "completed"
    assert qr["questionnaire"] == f"{BASE}/Questionnaire/twitch-triage-intake|1.0.0"
    assert qr["authored"] == "2025-01-02T03:04:05.000Z"
    assert qr["subject"] == {"reference": "Patient/123"}
    QuestionnaireResponse.model_validate(qr)


def test_items_are_flat_in_vocabulary_order_with_typed_answers():
    qr = _qr(FULL)
    link_ids = [item["linkId"] for item in qr["item"]]
    assert link_ids == sorted(link_ids, key=VOCABULARY_ORDER.__getitem__)
    items = {k: v[0] for k, v in _items(qr).items()}
    assert items["patient.age_years"]["answer"] == [{"valueInteger": 11}]
    assert items["patient.reference"]["answer"] == [{"valueString": "Patient/123"}]
    assert items["patient.sex"]["answer"] == [
        {
            "valueCoding": {
                "system": f"{BASE}/CodeSystem/patient-sex",
                "code": "female",
                "display": "Female",
            }
        }
    ]
    assert items["activity.warm_up"]["answer"] == [{"valueBoolean": False}]
    assert items["twitching.episode_minutes"]["answer"] == [{"valueDecimal": 2.5}]
    assert items["history.hours_since_head_impact"]["answer"] == [{"valueDecimal": 30}]
    assert items["blood_glucose_mmol_l"]["answer"] == [{"valueDecimal": 5.4}]
    sites = items["twitching.body_sites"]["answer"]
    assert [a["valueCoding"]["code"] for a in sites] == ["neck", "face"]
    assert {a["valueCoding"]["system"] for a in sites} == {
        f"{BASE}/CodeSystem/twitching-body-sites"
    }
    assert "symptoms.fatigue" not in items  # unknown = no item
    for item in qr["item"]:
        assert item["text"] == question(item["linkId"])


def test_medications_are_one_group_item_per_medication():
    groups = _items(_qr(FULL))["history.medications"]
    assert len(groups) == 2
    assert all("answer" not in g for g in groups)
    assert [c["linkId"] for c in groups[0]["item"]] == [
        "history.medications.class",
        "history.medications.days_since_start",
    ]
    assert groups[0]["item"][0]["answer"][0]["valueCoding"] == {
        "system": f"{BASE}/CodeSystem/history-medications-class",
        "code": "statin",
        "display": "Statin",
    }
    assert groups[0]["item"][1]["answer"] == [{"valueInteger": 3}]
    assert [c["linkId"] for c in groups[1]["item"]] == ["history.medications.class"]


def test_null_and_omitted_answers_have_no_item():
    request = {
        "patient": {"age_years": 30, "sex": None},
        "activity": None,
        "twitching": {"body_sites": ["calf"], "side": None},
        "symptoms": {"headache": None},
        "history": {"medications": None, "conditions": None},
        "notes": None,
    }
    qr = _qr(request)
    assert [item["linkId"] for item in qr["item"]] == ["patient.age_years", "twitching.body_sites"]
    assert "subject" not in qr
    assert questionnaire_response_to_request(qr) == {
        "patient": {"age_years": 30},
        "twitching": {"body_sites": ["calf"]},
    }


def test_empty_list_stays_distinct_from_omitted():
    base = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    none = copy.deepcopy(base) | {"history": {"medications": [], "conditions": []}}
    unknown = copy.deepcopy(base) | {"history": {"head_impact": False}}
    none_items = _items(_qr(none))
    # "none" is the yes/no question of each list answered no, and no list item.
    for gate, listed in GATES.items():
        assert none_items[gate] == [
            {"linkId": gate, "text": question(gate), "answer": [{"valueBoolean": False}]}
        ]
        assert listed not in none_items
    listed_items = _items(_qr(FULL))
    for gate, listed in GATES.items():  # a listed member follows a yes
        assert listed_items[gate][0]["answer"] == [{"valueBoolean": True}], gate
        assert listed in listed_items
    unknown_items = _items(_qr(unknown))
    assert "history.conditions" not in unknown_items
    assert "history.medications" not in unknown_items
    assert questionnaire_response_to_request(_qr(none)) == none
    assert questionnaire_response_to_request(_qr(unknown)) == unknown
    div = _qr(none)["text"]["div"]
    assert div.count("<td>none</td>") == 2  # answered "none", shown as such


def test_round_trip_of_a_full_request():
    assert questionnaire_response_to_request(_qr(FULL)) == FULL
    assert questionnaire_response_to_request(_qr(FULL), canonical_base=BASE) == FULL


def test_expressions_name_the_item_of_every_json_path():
    mapped = map_questionnaire_response(_qr(FULL))
    link_ids = [item["linkId"] for item in _qr(FULL)["item"]]
    assert mapped.expressions["patient.age_years"] == (
        f"QuestionnaireResponse.item[{link_ids.index('patient.age_years')}]"
    )
    first_med = link_ids.index("history.medications")
    assert mapped.expressions["history.medications[1]"] == (
        f"QuestionnaireResponse.item[{first_med + 1}]"
    )
    assert mapped.expressions["history.medications[0].days_since_start"] == (
        f"QuestionnaireResponse.item[{first_med}].item[1]"
    )


def test_subject_stands_in_for_patient_reference():
    qr = _qr({"patient": {"age_years": 40}, "twitching": {"body_sites": ["calf"]}})
    qr["subject"] = {"reference": "Patient/from-subject"}
    assert questionnaire_response_to_request(qr)["patient"] == {
        "age_years": 40,
        "reference": "Patient/from-subject",
    }


def _bad(qr: dict[str, Any], *, expression: str, **kw: Any) -> QuestionnaireResponseError:
    with pytest.raises(QuestionnaireResponseError) as info:
        map_questionnaire_response(qr, **kw)
    assert info.value.expression == expression
    return info.value


def test_errors_name_the_offending_item():
    qr = _qr(FULL)
    assert _bad({"resourceType": "Patient"}, expression="QuestionnaireResponse")

    unknown = copy.deepcopy(qr)
    unknown["item"][2]["linkId"] = "patient.shoe_size"
    assert _bad(unknown, expression="QuestionnaireResponse.item[2]").link_id == "patient.shoe_size"

    wrong_type = copy.deepcopy(qr)
    wrong_type["item"][1]["answer"] = [{"valueString": "11"}]  # age_years
    _bad(wrong_type, expression="QuestionnaireResponse.item[1].answer[0]")

    not_int = copy.deepcopy(qr)
    not_int["item"][1]["answer"] = [{"valueInteger": True}]
    _bad(not_int, expression="QuestionnaireResponse.item[1].answer[0].valueInteger")

    twice = copy.deepcopy(qr)
    twice["item"].append(copy.deepcopy(twice["item"][1]))
    _bad(twice, expression=f"QuestionnaireResponse.item[{len(twice['item']) - 1}]")

    two_answers = copy.deepcopy(qr)
    two_answers["item"][1]["answer"].append({"valueInteger": 12})
    _bad(two_answers, expression="QuestionnaireResponse.item[1].answer[1]")

    foreign_system = copy.deepcopy(qr)
    foreign_system["item"][2]["answer"][0]["valueCoding"]["system"] = "http://example.org/sex"
    _bad(
        foreign_system,
        expression="QuestionnaireResponse.item[2].answer[0].valueCoding",
        canonical_base=BASE,
    )
    assert questionnaire_response_to_request(foreign_system)["patient"]["sex"] == "female"

    link_ids = [item["linkId"] for item in qr["item"]]
    med = link_ids.index("history.medications")
    bad_child = copy.deepcopy(qr)
    bad_child["item"][med]["item"][0]["linkId"] = "symptoms.headache"
    _bad(bad_child, expression=f"QuestionnaireResponse.item[{med}].item[0]")

    empty_and_full = copy.deepcopy(qr)
    empty_and_full["item"].insert(med, {"linkId": "history.medications"})
    _bad(empty_and_full, expression=f"QuestionnaireResponse.item[{med + 1}]")

    child_at_top = copy.deepcopy(qr)
    child_at_top["item"].append({"linkId": "history.medications.class"})
    _bad(child_at_top, expression=f"QuestionnaireResponse.item[{len(child_at_top['item']) - 1}]")


def test_an_item_without_answer_is_unknown_except_for_lists():
    qr = _qr({"patient": {"age_years": 40}, "twitching": {"body_sites": ["calf"]}})
    qr["item"].append({"linkId": "symptoms.headache"})
    assert "symptoms" not in questionnaire_response_to_request(qr)


# --- property: the round trip keeps every request -------------------------------------

_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\x7f"],
    ),
    min_size=1,
    max_size=40,
)


def _value(item: Item) -> st.SearchStrategy[Any]:
    low = item.minimum if item.minimum is not None else 0
    high = item.maximum if item.maximum is not None else 1000
    if item.kind is Kind.BOOLEAN:
        return st.booleans()
    if item.kind is Kind.INTEGER:
        return st.integers(int(low), int(high))
    if item.kind is Kind.DECIMAL:
        return st.integers(int(low), int(high)) | st.floats(low, high, allow_nan=False)
    if item.kind is Kind.CODE:
        return st.sampled_from(sorted(item.code_values))
    if item.kind is Kind.CODES:
        return st.lists(
            st.sampled_from(sorted(item.code_values)),
            unique=True,
            min_size=item.min_items or 0,
            max_size=item.max_items or len(item.codes),
        )
    if item.kind is Kind.REFERENCE:
        return st.from_regex(r"Patient/[A-Za-z0-9\-.]{1,64}", fullmatch=True)
    if item.kind is Kind.GROUP:
        medication = st.fixed_dictionaries(
            {"class": _value(item.children[0])},
            optional={child.name: _value(child) | st.none() for child in item.children[1:]},
        )
        return st.lists(medication, max_size=4)
    return _TEXT


def _section(items: tuple[Item, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {item.name: _value(item) for item in items if item.required},
        optional={item.name: _value(item) | st.none() for item in items if not item.required},
    )


REQUESTS = st.fixed_dictionaries(
    {s.name: _section(s.items) for s in SECTIONS if s.required},
    optional={
        **{s.name: _section(s.items) | st.none() for s in SECTIONS if not s.required},
        **{item.name: _value(item) | st.none() for item in TOP_LEVEL_ITEMS},
    },
)


def _without_nulls(request: dict[str, Any]) -> dict[str, Any]:
    """What the request means: nulls are unknown, an all-unknown section is no section."""
    out: dict[str, Any] = {}
    for key, value in request.items():
        if isinstance(value, dict):
            cleaned = _without_nulls(value)
            if cleaned:
                out[key] = cleaned
        elif isinstance(value, list):
            out[key] = [_without_nulls(v) if isinstance(v, dict) else v for v in value]
        elif value is not None:
            out[key] = value
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_round_trip_property(request):
    qr = _qr(request)
    assert questionnaire_response_to_request(qr, canonical_base=BASE) == _without_nulls(request)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_generated_questionnaire_responses_validate(request):
    QuestionnaireResponse.model_validate(_qr(request))
