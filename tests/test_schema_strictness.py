"""Strictness rules of PROTOCOL.md §3, field by field, on the loaded schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import ValidationError

from schemas import field_issues, load_triage_request

BASE: dict[str, Any] = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """BASE with one dotted path set (sections are created as needed)."""
    request = copy.deepcopy(BASE)
    *parents, name = path.split(".")
    node = request
    for parent in parents:
        node = node.setdefault(parent, {})
    node[name] = value
    return request


def issues(request: Any) -> dict[str, str]:
    """{path: code} of every issue; fails if the request loads."""
    with pytest.raises(ValidationError) as info:
        load_triage_request(request)
    return {issue.path: issue.code for issue in field_issues(info.value.messages)}


def loads(request: dict[str, Any]) -> dict[str, Any]:
    return load_triage_request(request)


# --- integers ----------------------------------------------------------------------------


def test_integral_float_is_loaded_as_int():
    loaded = loads(with_value("patient.age_years", 3.0))
    assert loaded["patient"]["age_years"] == 3
    assert type(loaded["patient"]["age_years"]) is int


@pytest.mark.parametrize("value", [3.5, True, False, "3", [3], {"v": 3}, 1e300, -1, 121])
def test_integer_rejects_fractions_bools_strings_and_out_of_range(value):
    assert issues(with_value("patient.age_years", value)) == {"patient.age_years": "value"}


def test_integer_nan_and_infinity_are_rejected_even_when_built_in_python():
    for value in (float("nan"), float("inf")):
        assert issues(with_value("twitching.duration_days", value)) == {
            "twitching.duration_days": "value"
        }


# --- decimals ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 2, 2.5, 168, 168.0])
def test_decimal_accepts_ints_and_floats_as_sent(value):
    loaded = loads(with_value("twitching.hours_after_exercise", value))
    assert loaded["twitching"]["hours_after_exercise"] == value
    assert type(loaded["twitching"]["hours_after_exercise"]) is type(value)


@pytest.mark.parametrize("value", [True, "2.5", float("nan"), float("inf"), -0.001, 168.0001])
def test_decimal_rejects_bools_strings_non_finite_and_out_of_range(value):
    assert issues(with_value("twitching.hours_after_exercise", value)) == {
        "twitching.hours_after_exercise": "value"
    }


# --- booleans ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 0, "true", "false", "yes", [], {}])
def test_boolean_accepts_only_true_and_false(value):
    assert issues(with_value("symptoms.headache", value)) == {"symptoms.headache": "value"}


def test_null_means_unknown_and_is_dropped():
    request = with_value("symptoms.headache", None)
    request["symptoms"]["fatigue"] = False
    request["activity"] = None
    request["notes"] = None
    request["patient"]["sex"] = None
    assert loads(request) == {
        "patient": {"age_years": 30},
        "twitching": {"body_sites": ["calf"]},
        "symptoms": {"fatigue": False},
    }


def test_no_default_is_injected():
    assert loads(BASE) == BASE  # patient.sex stays omitted although its default is unknown


# --- strings -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\tb", "line 1\nline 2\r\n", "é ≥ 40 °C", "😀"])
def test_strings_allow_tab_newlines_and_any_printable_unicode(text):
    assert loads(with_value("notes", text))["notes"] == text


@pytest.mark.parametrize(
    "text",
    ["", "a\x00b", "\x1b[31m", "del\x7f", "c1\x85", "\ud800", "x\udfff", 7, ["a"]],
    ids=["empty", "nul", "escape", "del", "c1-control", "high-surrogate", "low-surrogate",
         "number", "list"],
)  # fmt: skip
def test_strings_reject_empty_control_characters_lone_surrogates_and_non_strings(text):
    assert issues(with_value("notes", text)) == {"notes": "value"}


def test_string_max_length_counts_characters():
    assert loads(with_value("activity.type", "é" * 80))["activity"]["type"] == "é" * 80
    assert issues(with_value("activity.type", "é" * 81)) == {"activity.type": "value"}


@pytest.mark.parametrize("reference", ["Patient/123", "Patient/a-b.C", "Patient/" + "x" * 64])
def test_patient_reference_pattern_accepts(reference):
    assert loads(with_value("patient.reference", reference))["patient"]["reference"] == reference


@pytest.mark.parametrize(
    "reference",
    [
        "patient/1",
        "Patient/",
        "Patient/a b",
        "Patient/1\n",
        "Practitioner/1",
        "Patient/" + "x" * 65,
    ],
)
def test_patient_reference_pattern_rejects(reference):
    assert issues(with_value("patient.reference", reference)) == {"patient.reference": "value"}


# --- codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Female", "female ", "f", ""])
def test_enum_is_an_exact_match(value):
    assert issues(with_value("patient.sex", value)) == {"patient.sex": "code-invalid"}


def test_enum_of_wrong_type_is_a_value_error():
    assert issues(with_value("patient.sex", 1)) == {"patient.sex": "value"}


# --- lists -------------------------------------------------------------------------------


def test_unique_lists_reject_duplicates_at_the_repeated_member():
    assert issues(with_value("twitching.body_sites", ["calf", "thigh", "calf"])) == {
        "twitching.body_sites[2]": "value"
    }
    assert issues(with_value("history.conditions", ["asthma", "asthma"])) == {
        "history.conditions[1]": "value"
    }


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([], "twitching.body_sites"),
        ("calf", "twitching.body_sites"),
        (["calf", None], "twitching.body_sites[1]"),
        (["calf", 3], "twitching.body_sites[1]"),
    ],
)
def test_code_list_shape(value, path):
    assert issues(with_value("twitching.body_sites", value)) == {path: "value"}


def test_code_list_unknown_member_is_code_invalid():
    assert issues(with_value("twitching.body_sites", ["calf", "tail"])) == {
        "twitching.body_sites[1]": "code-invalid"
    }


def test_too_many_items_is_reported_on_the_list():
    codes = ["thigh"] * 15
    assert issues(with_value("twitching.body_sites", codes)) == {"twitching.body_sites": "value"}


def test_given_empty_lists_are_kept_as_none():
    loaded = loads(with_value("history.medications", []))
    assert loaded["history"] == {"medications": []}
    assert loads(with_value("history.conditions", []))["history"] == {"conditions": []}


def test_medications_may_repeat_a_class_and_drop_null_fields():
    meds = [
        {"class": "statin"},
        {"class": "statin", "days_since_start": 3.0, "doses_per_day": None},
    ]
    loaded = loads(with_value("history.medications", meds))
    assert loaded["history"]["medications"] == [
        {"class": "statin"},
        {"class": "statin", "days_since_start": 3},
    ]


def test_medication_problems_are_reported_per_member():
    meds = [
        {"class": "statin"},
        {"class": None},
        {},
        "statin",
        None,
        {"class": "aspirin"},
        {"class": "statin", "days_since_start": 1.5},
    ]
    assert issues(with_value("history.medications", meds)) == {
        "history.medications[1].class": "required",
        "history.medications[2].class": "required",
        "history.medications[3]": "value",
        "history.medications[4]": "value",
        "history.medications[5].class": "code-invalid",
        "history.medications[6].days_since_start": "value",
    }


def test_at_most_twenty_medications():
    assert loads(with_value("history.medications", [{"class": "other"}] * 20))
    assert issues(with_value("history.medications", [{"class": "other"}] * 21)) == {
        "history.medications": "value"
    }


# --- unknown keys, at every level -----------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "sympotms",
        "patient.name",
        "activity.kind",
        "twitching.sites",
        "symptoms.confsion",
        "history.medication",
        "history.medications[0].dose",
    ],
)
def test_unknown_keys_are_rejected_at_every_level(path):
    request = copy.deepcopy(BASE)
    request["history"] = {"medications": [{"class": "statin"}]}
    if path.startswith("history.medications[0]."):
        request["history"]["medications"][0][path.rsplit(".", 1)[1]] = 1
    elif "." in path:
        section, name = path.split(".")
        request.setdefault(section, {})[name] = True
    else:
        request[path] = True
    assert issues(request) == {path: "invalid"}


# --- sections ------------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["patient", "twitching"])
def test_required_sections_may_not_be_null_or_omitted(section):
    assert issues({**BASE, section: None}) == {section: "required"}
    request = copy.deepcopy(BASE)
    del request[section]
    assert issues(request) == {section: "required"}


def test_required_fields_may_not_be_null():
    assert issues(with_value("patient.age_years", None)) == {"patient.age_years": "required"}
    assert issues(with_value("twitching.body_sites", None)) == {"twitching.body_sites": "required"}


@pytest.mark.parametrize("value", [[], "yes", 1, True])
def test_a_section_must_be_an_object(value):
    assert issues({**BASE, "symptoms": value}) == {"symptoms": "value"}


def test_the_top_level_must_be_an_object():
    for value in ([], "x", None):
        assert issues(value) == {"": "value"}


def test_every_problem_is_reported_at_once():
    request = {
        "patient": {"age_years": -1, "sex": "x"},
        "twitching": {"body_sites": ["calf"], "onset": "slow"},
        "symptoms": {"headache": "yes"},
        "notes": "",
    }
    assert issues(request) == {
        "patient.age_years": "value",
        "patient.sex": "code-invalid",
        "twitching.onset": "code-invalid",
        "symptoms.headache": "value",
        "notes": "value",
    }
