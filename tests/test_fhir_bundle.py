"""The result Bundle: FHIR validity (fhir.resources R4B/R5), PROTOCOL.md §9 layout, narratives.

Results here are built by hand so every value kind and edge (unknown evidence,
medication members, SNOMED mapping, several rules and factors) is covered
independently of the engine; test_fhir_examples.py runs the real engine.
"""

from __future__ import annotations

import copy
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhir.resources.R4B.observation import Observation as R4BObservation
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse as R4BQuestionnaireResponse,
)
from pydantic import ValidationError

from api.fhir import LAYOUT_DESCRIPTION, FhirSettings, as_transaction, render_triage_bundle
from api.fhir import codesystems as cs
from api.fhir.bundle import format_instant
from api.fhir.ids import time_ordered_ids
from tests.support.conformance import bundle_problems, iter_nodes, narrative_problems
from triage.result import (
    Answer,
    Concept,
    FactorPoint,
    FiredRule,
    GivenAdvice,
    Level,
    Likelihood,
    ReportedFactor,
    TriageResult,
)

BASE = cs.DEFAULT_CANONICAL_BASE
SETTINGS = FhirSettings()
NOW = datetime(2025, 5, 17, 9, 30, 12, 345678, tzinfo=UTC)
XHTML = "{http://www.w3.org/1999/xhtml}"
HOSTILE = "<script>alert(1)</script> & \"quoted\" 'single' ß 日本語 — ok"


def _request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "patient": {"reference": "Patient/p-1.a", "age_years": 34, "sex": "male"},
        "activity": {
            "type": 'trail <b onmouseover="x">running</b>',
            "intensity": "high",
            "session_minutes": 240,
            "fluid_intake": "excessive",
            "hot_or_humid": True,
        },
        "twitching": {
            "body_sites": ["calf", "thigh"],
            "timing": "after_exercise",
            "hours_after_exercise": 1.5,
            "duration_days": 3,
        },
        "symptoms": {"confusion": True, "headache": True, "fatigue": False, "palpitations": None},
        "body_temperature_c": 39.2,
        "history": {
            "head_impact": False,
            "medications": [
                {"class": "statin", "days_since_start": 30, "doses_per_day": 1},
                {"class": "beta_agonist", "doses_per_day": 4.5},
            ],
            "conditions": [],
        },
        "notes": HOSTILE,
    }
    request.update(overrides)
    return request


SNOMED_WEAKNESS = Concept(cs.SNOMED, "26544005", "Muscle weakness")


def _result() -> TriageResult:
    """Two rules, two factors, advice and unanswered items; every evidence kind."""
    ambulance = FiredRule(
        "RF-EAH-SEVERE",
        Level.EMERGENCY_AMBULANCE,
        "Severe exercise-associated hyponatraemia",
        "Severe hyponatraemia <cannot> be excluded",
        "Third EAH Consensus Statement",
        None,
        (
            Answer("activity.fluid_intake", "excessive", "activity.fluid_intake"),
            Answer("activity.session_minutes", 240, "activity.session_minutes"),
            Answer("symptoms.confusion", True, "symptoms.confusion"),
        ),
    )
    statin = FiredRule(
        "RF-STATIN-MUSCLE",
        Level.CONSULTATION_24,
        "Muscle symptoms on a statin",
        "Statin myopathy",
        "NHS",
        SNOMED_WEAKNESS,
        (
            Answer("history.medications.class", "statin", "history.medications[0].class"),
            Answer("body_temperature_c", 39.2, "body_temperature_c"),
            Answer("twitching.body_sites", "calf", "twitching.body_sites"),
        ),
    )
    screen = FiredRule(
        "RF-SCREEN-INCOMPLETE",
        Level.CONSULTATION,
        "Red-flag screen incomplete",
        "Red flags not excluded",
        "PROTOCOL.md §5",
        None,
        (
            Answer("symptoms.palpitations", None, "symptoms.palpitations"),
            Answer("symptoms.drowsiness", None, "symptoms.drowsiness"),
        ),
    )
    load = ReportedFactor(
        "CF-TRAINING-LOAD",
        "Training load",
        "Long, intense sessions",
        2,
        Likelihood.MODERATE,
        (
            FactorPoint(
                1,
                "session_minutes ≥ 90",
                (Answer("activity.session_minutes", 240, "activity.session_minutes"),),
            ),
            FactorPoint(
                1, "intensity high", (Answer("activity.intensity", "high", "activity.intensity"),)
            ),
        ),
        None,
    )
    meds = ReportedFactor(
        "CF-MEDICATION-EFFECT",
        "Medication effect",
        "Recently started medication",
        3,
        Likelihood.HIGH,
        (
            FactorPoint(
                2,
                "statin started ≤ 90 days ago",
                (
                    Answer("history.medications.class", "statin", "history.medications[0].class"),
                    Answer(
                        "history.medications.days_since_start",
                        30,
                        "history.medications[0].days_since_start",
                    ),
                ),
            ),
            FactorPoint(
                1,
                "beta agonist",
                (
                    Answer(
                        "history.medications.class",
                        "beta_agonist",
                        "history.medications[1].class",
                    ),
                    Answer(
                        "history.medications.doses_per_day",
                        4.5,
                        "history.medications[1].doses_per_day",
                    ),
                ),
            ),
        ),
        None,
    )
    advice = (
        GivenAdvice("ADV-CALL-AMBULANCE", "Call an ambulance", "Call 999 now.", ("level",)),
        GivenAdvice("ADV-DO-NOT-DRINK-MORE", "Do not drink more", "No more water.", ("RF",)),
        GivenAdvice("ADV-SAFETY-NET", "Safety net", "Escalate if worse.", ("always",)),
    )
    return TriageResult(
        Level.EMERGENCY_AMBULANCE,
        (ambulance, statin, screen),
        (meds, load),
        advice,
        ("symptoms.drowsiness", "symptoms.palpitations"),
        "1.0.0",
    )


def _minimal_result() -> TriageResult:
    return TriageResult(
        Level.SELF_CARE,
        (),
        (),
        (GivenAdvice("ADV-SAFETY-NET", "Safety net", "Escalate if worse.", ("always",)),),
        (),
        "1.0.0",
    )


def _render(request: dict[str, Any] | None = None, result: TriageResult | None = None, **kw: Any):
    return render_triage_bundle(
        request if request is not None else _request(),
        result if result is not None else _result(),
        settings=kw.pop("settings", SETTINGS),
        now=kw.pop("now", NOW),
        **kw,
    )


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def _codes(concept: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in concept["coding"]]


def _url(cs_id: str) -> str:
    return cs.codesystem_url(BASE, cs_id)


# --- validity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "result"),
    [
        (_request(), _result()),
        (_request(), _minimal_result()),
        ({"patient": {"age_years": 9}, "twitching": {"body_sites": ["eyelid"]}}, _minimal_result()),
    ],
    ids=["rich", "rich-request-self-care", "minimal"],
)
def test_bundle_and_every_resource_validate_against_r4b(request_, result):
    bundle = _render(request_, result)
    data = orjson.loads(orjson.dumps(bundle))  # exactly what goes on the wire
    R4BBundle.model_validate(data)
    for resource in _resources(data):
        model = {"QuestionnaireResponse": R4BQuestionnaireResponse, "Observation": R4BObservation}
        model[resource["resourceType"]].model_validate(resource)
    assert bundle_problems(data, canonical_base=BASE) == []


def test_r5_variant_validates_against_r5_models():
    from fhir.resources.bundle import Bundle as R5Bundle  # noqa: PLC0415 - R5 only here

    data = orjson.loads(orjson.dumps(_render(fhir_version="5.0")))
    R5Bundle.model_validate(data)


def test_the_r4b_validator_used_here_can_fail():
    """Guard against a vacuous validator: broken output must be rejected."""
    data = orjson.loads(orjson.dumps(_render()))
    broken = copy.deepcopy(data)
    broken["entry"][1]["resource"]["component"][0]["valueDecimal"] = 1.5  # no such element in R4
    with pytest.raises(ValidationError):
        R4BBundle.model_validate(broken)
    broken = copy.deepcopy(data)
    del broken["entry"][2]["resource"]["status"]  # 1..1
    with pytest.raises(ValidationError):
        R4BBundle.model_validate(broken)
    broken = copy.deepcopy(data)
    broken["entry"][0]["resource"]["item"][0]["answer"][0]["valueInteger"] = 3  # two value[x]
    with pytest.raises(ValidationError):
        R4BBundle.model_validate(broken)


def test_required_binding_codes_are_the_fhir_ones():
    """fhir.resources does not check required bindings; check the few codes we emit."""
    bundle = _render()
    assert bundle["type"] == "collection"
    qr, *observations = _resources(bundle)
    assert qr["status"] == "completed"
    assert {o["status"] for o in observations} == {"final"}
    assert bundle["entry"][0]["resource"]["text"]["status"] == "generated"


def test_a_request_without_answers_still_gives_valid_fhir():
    """Defensive: no empty arrays or empty tables even if nothing was answered."""
    bundle = orjson.loads(orjson.dumps(_render({}, _minimal_result())))
    R4BBundle.model_validate(bundle)
    assert "item" not in bundle["entry"][0]["resource"]
    assert bundle_problems(bundle, canonical_base=BASE) == []
    for _, node in iter_nodes(bundle):
        assert node != []
        assert node != {}


def test_unsupported_fhir_version_is_refused():
    with pytest.raises(ValueError, match="fhirVersion"):
        _render(fhir_version="3.0")


# --- §9 layout, asserted directly -------------------------------------------------


def test_entry_order_and_counts():
    bundle = _render()
    resources = _resources(bundle)
    assert bundle["type"] == "collection"
    assert [r["resourceType"] for r in resources] == ["QuestionnaireResponse"] + ["Observation"] * 6
    level_obs = [
        r
        for r in resources
        if r["resourceType"] == "Observation" and (cs.LOINC, "11283-9") in _codes(r["code"])
    ]
    assert level_obs == [resources[1]]
    rule_codes = [_codes(r["code"])[0] for r in resources[2:5]]
    assert rule_codes == [
        (_url("red-flag-rule"), "RF-EAH-SEVERE"),
        (_url("red-flag-rule"), "RF-STATIN-MUSCLE"),
        (_url("red-flag-rule"), "RF-SCREEN-INCOMPLETE"),
    ]
    factor_codes = [_codes(r["code"])[0] for r in resources[5:]]
    assert factor_codes == [
        (_url("contributing-factor"), "CF-MEDICATION-EFFECT"),
        (_url("contributing-factor"), "CF-TRAINING-LOAD"),
    ]


def test_references_are_fullurls_that_resolve():
    bundle = _render()
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    for url in urls:
        assert url.startswith("urn:uuid:")
        assert uuid.UUID(url[9:]).version == 7
    level = bundle["entry"][1]["resource"]
    assert [m["reference"] for m in level["hasMember"]] == urls[2:]
    for resource in _resources(bundle)[1:]:
        assert resource["derivedFrom"] == [{"reference": urls[0]}]
    for path, node in iter_nodes(bundle):
        if path.endswith(".reference"):
            assert node in urls or node == "Patient/p-1.a", path


def test_every_coding_has_system_and_code():
    seen = 0
    for path, node in iter_nodes(_render()):
        if path.endswith(".coding"):
            for coding in node:
                assert coding.get("system")
                assert coding.get("code")
                seen += 1
        if path.endswith("valueCoding"):
            assert node.get("system")
            assert node.get("code")
            seen += 1
    assert seen > 50


def test_subject_on_every_resource_only_when_reference_given():
    with_ref = _render()
    for resource in _resources(with_ref):
        assert resource["subject"] == {"reference": "Patient/p-1.a"}
    request = _request()
    del request["patient"]["reference"]
    without = _render(request)
    assert all("subject" not in r for r in _resources(without))
    assert bundle_problems(without, canonical_base=BASE) == []


def test_timestamps_carry_a_time_zone():
    bundle = _render()
    assert bundle["timestamp"] == "2025-05-17T09:30:12.345Z"
    qr, *observations = _resources(bundle)
    assert qr["authored"] == bundle["timestamp"]
    for obs in observations:
        assert obs["issued"] == obs["effectiveDateTime"] == bundle["timestamp"]
    plus_two = datetime(2025, 5, 17, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_instant(plus_two) == "2025-05-17T11:00:00.000+02:00"
    assert _render(now=None)["timestamp"].endswith("Z")
    with pytest.raises(ValueError, match="timezone"):
        _render(now=datetime(2025, 5, 17, 9, 30))


def test_ids_default_to_time_ordered_uuid7_and_new_id_makes_output_deterministic():
    before = time.time_ns() // 1_000_000
    ids = time_ordered_ids(50) + time_ordered_ids(50)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 100
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value
        assert before <= parsed.int >> 80 <= after  # the Unix-millisecond field
    # Minted later sorts later: the index locality the ids exist for.
    assert ids == sorted(ids)
    many = [value for _ in range(40) for value in time_ordered_ids(100)]
    assert many == sorted(many)
    assert len(set(many)) == 4000
    rendered = _render()
    assert uuid.UUID(rendered["id"]).version == 7
    counter = iter(range(1000))

    def new_id() -> str:
        return str(uuid.UUID(int=next(counter)))

    first = _render(new_id=new_id)
    counter = iter(range(1000))
    assert orjson.dumps(_render(new_id=new_id)) == orjson.dumps(first)
    assert first["id"] == str(uuid.UUID(int=0))
    assert first["entry"][0]["fullUrl"] == f"urn:uuid:{uuid.UUID(int=1)}"


# --- level Observation ------------------------------------------------------------


def test_level_observation_value_advice_unanswered_and_kb_version():
    level = _render()["entry"][1]["resource"]
    assert level["status"] == "final"
    assert _codes(level["code"]) == [
        (cs.LOINC, "11283-9"),
        (_url("triage-observation"), "triage-level"),
    ]
    assert level["category"][0]["coding"][0]["code"] == "survey"
    assert _codes(level["valueCodeableConcept"]) == [(_url("triage-level"), "emergency_ambulance")]
    assert level["valueCodeableConcept"]["coding"][0]["display"] == "Call an ambulance"
    assert level["method"]["coding"][0] == {
        "system": _url("knowledge-base"),
        "version": "1.0.0",
        "code": "twitch-triage-protocol",
        "display": cs.KNOWLEDGE_BASE_DISPLAY,
    }
    by_code: dict[str, list[dict[str, Any]]] = {}
    for component in level["component"]:
        (system, code) = _codes(component["code"])[0]
        assert system == _url("triage-observation")
        by_code.setdefault(code, []).append(component)
    advice = [c["valueCodeableConcept"] for c in by_code["advice"]]
    assert [_codes(a)[0] for a in advice] == [
        (_url("advice"), "ADV-CALL-AMBULANCE"),
        (_url("advice"), "ADV-DO-NOT-DRINK-MORE"),
        (_url("advice"), "ADV-SAFETY-NET"),
    ]
    assert advice[0]["text"] == "Call 999 now."
    unanswered = [_codes(c["valueCodeableConcept"])[0] for c in by_code["unanswered-screen-item"]]
    assert unanswered == [
        (_url("intake-item"), "symptoms.drowsiness"),
        (_url("intake-item"), "symptoms.palpitations"),
    ]
    assert [c["valueString"] for c in by_code["knowledge-base-version"]] == ["1.0.0"]


def test_self_care_level_without_findings_has_no_hasmember():
    level = _render(result=_minimal_result())["entry"][1]["resource"]
    assert "hasMember" not in level
    assert _codes(level["valueCodeableConcept"]) == [(_url("triage-level"), "self_care")]


# --- finding Observations ---------------------------------------------------------


def _component_for(resource: dict[str, Any], path: str) -> dict[str, Any]:
    matches = [c for c in resource.get("component", []) if c["code"].get("text") == path]
    assert len(matches) == 1, path
    return matches[0]


def test_rule_observation_code_value_note_method():
    resources = _resources(_render())
    eah, statin, screen = resources[2:5]
    assert _codes(statin["code"]) == [
        (_url("red-flag-rule"), "RF-STATIN-MUSCLE"),
        (cs.SNOMED, "26544005"),
    ]
    assert _codes(eah["code"]) == [(_url("red-flag-rule"), "RF-EAH-SEVERE")]
    assert _codes(statin["valueCodeableConcept"]) == [(_url("triage-level"), "consultation_24")]
    assert [_codes(c)[0] for c in statin["category"]] == [
        (cs.OBSERVATION_CATEGORY, "survey"),
        (_url("triage-observation"), "red-flag"),
    ]
    assert statin["note"] == [{"text": "Statin myopathy"}, {"text": "Source: NHS"}]
    for rule in (eah, statin, screen):
        assert rule["method"]["coding"][0]["version"] == "1.0.0"


def test_evidence_components_carry_linkid_and_typed_value():
    eah, statin, screen = _resources(_render())[2:5]
    intake = _url("intake-item")
    fluid = _component_for(eah, "activity.fluid_intake")
    assert _codes(fluid["code"]) == [(intake, "activity.fluid_intake")]
    assert _codes(fluid["valueCodeableConcept"]) == [(_url("activity-fluid-intake"), "excessive")]
    assert _component_for(eah, "activity.session_minutes")["valueInteger"] == 240
    assert _component_for(eah, "symptoms.confusion")["valueBoolean"] is True
    temperature = _component_for(statin, "body_temperature_c")
    assert temperature["valueQuantity"] == {
        "value": 39.2,
        "unit": "°C",
        "system": cs.UCUM,
        "code": "Cel",
    }
    med = _component_for(statin, "history.medications[0].class")
    assert _codes(med["code"]) == [(intake, "history.medications.class")]
    assert _codes(med["valueCodeableConcept"]) == [(_url("history-medications-class"), "statin")]
    site = _component_for(statin, "twitching.body_sites")
    assert _codes(site["valueCodeableConcept"]) == [(_url("twitching-body-sites"), "calf")]
    unknown = _component_for(screen, "symptoms.palpitations")
    assert not any(key.startswith("value") for key in unknown)
    assert _codes(unknown["dataAbsentReason"]) == [
        ("http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown")
    ]


def test_factor_observation_likelihood_points_and_evidence():
    meds, load = _resources(_render())[5:]
    assert _codes(meds["valueCodeableConcept"]) == [(_url("likelihood"), "high")]
    assert _codes(load["valueCodeableConcept"]) == [(_url("likelihood"), "moderate")]
    points = meds["component"][0]
    assert _codes(points["code"]) == [(_url("triage-observation"), "points")]
    assert points["valueInteger"] == 3
    assert [c["code"]["text"] for c in meds["component"][1:]] == [
        "history.medications[0].class",
        "history.medications[0].days_since_start",
        "history.medications[1].class",
        "history.medications[1].doses_per_day",
    ]
    doses = _component_for(meds, "history.medications[1].doses_per_day")
    assert doses["valueQuantity"] == {
        "value": 4.5,
        "unit": "per day",
        "system": cs.UCUM,
        "code": "/d",
    }
    assert [_codes(c)[0] for c in meds["category"]] == [
        (cs.OBSERVATION_CATEGORY, "survey"),
        (_url("triage-observation"), "contributing-factor"),
    ]
    assert meds["note"] == [{"text": "Recently started medication"}]
    div = meds["text"]["div"]
    assert "statin started ≤ 90 days ago" in div
    assert "+2" in div


# --- narratives ---------------------------------------------------------------------


def _divs(bundle: dict[str, Any]) -> list[str]:
    return [r["text"]["div"] for r in _resources(bundle)]


def test_every_narrative_is_wellformed_allowed_xhtml():
    for div in _divs(_render()) + _divs(_render(result=_minimal_result())):
        assert narrative_problems(div) == []
        root = ET.fromstring(div)  # noqa: S314 - our own output
        assert root.tag == f"{XHTML}div"


def test_request_text_is_escaped_never_injected():
    bundle = _render()
    divs = _divs(bundle)
    joined = "".join(divs)
    assert "<script" not in joined.lower()
    assert "<b onmouseover" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quoted&#34; &#39;single&#39;" in joined
    assert "ß 日本語 — ok" in joined
    qr_div = ET.fromstring(divs[0])  # noqa: S314 - our own output
    texts = ["".join(td.itertext()) for td in qr_div.iter(f"{XHTML}td")]
    assert HOSTILE in texts  # the parsed text is the original, byte for byte
    assert 'trail <b onmouseover="x">running</b>' in texts
    for div in divs:
        for element in ET.fromstring(div).iter():  # noqa: S314 - our own output
            assert element.tag != f"{XHTML}script"
            assert not any(name.lower().startswith("on") for name in element.attrib)


def test_characters_xml_cannot_carry_do_not_break_the_narrative():
    bundle = _render(_request(notes="bell \x07 surrogate \ud800 end"))
    assert narrative_problems(bundle["entry"][0]["resource"]["text"]["div"]) == []


def test_narrative_checker_catches_what_it_must():
    wrap = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'
    assert narrative_problems(wrap.format("<p>ok</p>")) == []
    assert narrative_problems(wrap.format("<script>x</script>"))
    assert narrative_problems(wrap.format('<p onclick="x">a</p>'))
    assert narrative_problems(wrap.format('<a href=" javascript:alert(1)">a</a>'))
    assert narrative_problems("<div>no namespace</div>")
    assert narrative_problems(wrap.format("<p>unclosed"))
    assert narrative_problems(wrap.format("  "))


def test_level_narrative_puts_red_flags_first():
    div = _render()["entry"][1]["resource"]["text"]["div"]
    order = [
        div.index("Triage level: Call an ambulance"),
        div.index("Red flags"),
        div.index("Severe exercise-associated hyponatraemia"),
        div.index("Muscle symptoms on a statin"),
        div.index("Contributing factors"),
        div.index("Advice"),
        div.index("Next questions"),
    ]
    assert order == sorted(order)
    assert "Severe hyponatraemia &lt;cannot&gt; be excluded" in _divs(_render())[2]


# --- configuration, sharing, documentation -----------------------------------------


def test_canonical_base_is_configuration():
    settings = FhirSettings("https://fhir.example.org/triage/")
    assert settings.canonical_base == "https://fhir.example.org/triage"
    bundle = _render(settings=settings)
    assert bundle_problems(bundle, canonical_base=settings.canonical_base) == []
    external = (cs.SNOMED, cs.LOINC, cs.UCUM, "http://terminology.hl7.org/")
    systems = {node for path, node in iter_nodes(bundle) if path.endswith(".system")}
    product_systems = {s for s in systems if not s.startswith(external)}
    assert len(product_systems) > 10
    assert all(s.startswith("https://fhir.example.org/triage/CodeSystem/") for s in product_systems)
    assert "twitch-triage.org" not in orjson.dumps(bundle).decode()
    qr = bundle["entry"][0]["resource"]
    assert qr["questionnaire"] == (
        "https://fhir.example.org/triage/Questionnaire/twitch-triage-intake|1.0.0"
    )
    with pytest.raises(ValueError, match="canonical base"):
        FhirSettings("not a url")


def test_bundles_share_no_mutable_state_between_requests():
    first = _render()
    before = orjson.dumps(first)
    other = _request(notes="different", symptoms={"confusion": False})
    _render(other, _minimal_result())
    _render(other, _result(), settings=FhirSettings("https://other.example/fhir"))
    assert orjson.dumps(first) == before


def test_layout_description_documents_where_things_sit():
    for phrase in (
        "collection",
        "urn:uuid",
        "11283-9",
        "advice",
        "unanswered-screen-item",
        "knowledge-base-version",
        "history.medications.any",
        "dataAbsentReason",
        cs.DEFAULT_CANONICAL_BASE,
    ):
        assert phrase in LAYOUT_DESCRIPTION, phrase


def test_transaction_variant_posts_every_entry_and_keeps_references():
    collection = _render()
    before = orjson.dumps(collection)
    transaction = orjson.loads(orjson.dumps(as_transaction(collection)))
    assert orjson.dumps(collection) == before  # input untouched
    R4BBundle.model_validate(transaction)
    assert transaction["type"] == "transaction"
    assert [e["request"] for e in transaction["entry"]] == [
        {"method": "POST", "url": e["resource"]["resourceType"]} for e in transaction["entry"]
    ]
    assert [e["fullUrl"] for e in transaction["entry"]] == [
        e["fullUrl"] for e in collection["entry"]
    ]
    collection_again = {**transaction, "type": "collection"}
    for entry in collection_again["entry"]:
        del entry["request"]
    assert bundle_problems(collection_again, canonical_base=BASE) == []
