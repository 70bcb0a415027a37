"""Clinician and patient wording (PROTOCOL.md §8, §9): questions, labels, answers, evidence."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage import wording
from triage.result import Answer
from triage.vocabulary import ITEMS, Kind

#: The 1.1 additions the vocabulary gains with the engine's 1.1 rewrite; worded already.
ADDITIONS_1_1 = ("respondent", "history.recreational_stimulants")
LINK_IDS = sorted(set(ITEMS) | set(ADDITIONS_1_1) | set(wording.GATES))
#: Field names and link ids look like this; people never read them.
_FIELD_NAME = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b|\b[a-z]+\.[a-z_]+\b")
_BAD_COUNT = re.compile(r"(?<![0-9.])1 (?:[a-z]+s)\b")
FORBIDDEN = ("PROTOCOL.md", "seed", "§", "RF-", "CF-", "ADV-")


def _representative(link_id: str) -> list[Any]:
    """Answers worth phrasing for an item: both yes/no, its range ends, every code."""
    item = ITEMS.get(link_id)
    if item is None:
        return [True, False, None] if link_id != "respondent" else ["patient", "parent_or_carer"]
    if item.kind is Kind.BOOLEAN:
        return [True, False, None]
    if item.is_numeric:
        values = [item.minimum or 0, 1, 2, item.maximum or 100]
        return [*values, 1.5] if item.kind is Kind.DECIMAL else values
    if item.kind is Kind.CODE:
        return [c.code for c in item.codes]
    if item.kind is Kind.CODES:
        return [[], [c.code for c in item.codes[:3]]]
    if item.kind is Kind.GROUP:
        return [[], [{"class": "diuretic", "days_since_start": 1, "doses_per_day": 2}]]
    return ["artistic roller skating"]


def _every_text() -> list[tuple[str, str]]:
    texts = []
    for link_id in LINK_IDS:
        texts += [(link_id, wording.question(link_id)), (link_id, wording.label(link_id))]
        help_text = wording.help_text(link_id)
        if help_text is not None:
            texts.append((link_id, help_text))
        for value in _representative(link_id):
            texts.append((link_id, wording.answer_text(link_id, value)))
    return texts


@pytest.mark.parametrize("link_id", LINK_IDS)
def test_every_item_has_a_question_a_label_and_answers(link_id):
    question = wording.question(link_id)
    assert question.endswith("?")
    assert question[0].isupper()
    label = wording.label(link_id)
    assert label
    assert not label.endswith(("?", "."))
    assert len(label) < len(question)
    for value in _representative(link_id):
        assert wording.answer_text(link_id, value)


@pytest.mark.parametrize(("link_id", "text"), _every_text())
def test_no_text_shows_syntax_references_or_bad_counts(link_id, text):
    for needle in FORBIDDEN:
        assert needle not in text, (link_id, text)
    assert not _FIELD_NAME.search(text), (link_id, text)
    assert link_id not in text
    assert not _BAD_COUNT.search(text), (link_id, text)


def test_symptoms_carry_the_time_window():
    for link_id in ITEMS:
        if link_id.startswith("symptoms.") and link_id != "symptoms.breathing_difficulty":
            assert wording.question(link_id).startswith("In the last 72 hours"), link_id
    # "now" is the window of breathing difficulty (§3: short of breath at rest, now).
    assert wording.question("symptoms.breathing_difficulty").endswith("now?")
    assert "since a head impact" in wording.question("symptoms.headache")
    assert "since a head impact" in wording.question("symptoms.loss_of_consciousness")
    assert wording.question("history.head_impact").startswith("In the last 30 days")
    assert wording.question("history.falls_last_7_days").startswith("In the last 7 days")
    assert wording.question("history.recreational_stimulants").startswith("In the last 72 hours")
    assert wording.question("activity.session_minutes").endswith("in minutes?")


@pytest.mark.parametrize(
    ("link_id", "needles"),
    [
        ("symptoms.hand_foot_spasm", ("both sides", "not a cramp")),
        ("symptoms.muscle_weakness", ("30 minutes of rest", "Not tiredness")),
        ("symptoms.chest_pain", ("neck, jaw", "exertion")),
        ("symptoms.palpitations", ("fluttering", "10 minutes")),
        ("symptoms.one_sided_weakness", ("drooping face",)),
        ("twitching.sustained_posture", ("eyes forced upward", "stretching")),
    ],
)
def test_help_carries_the_protocol_notes(link_id, needles):
    help_text = wording.help_text(link_id)
    assert help_text is not None
    for needle in needles:
        assert needle in help_text


def test_answers_in_words():
    assert wording.answer_text("symptoms.confusion", True) == "Yes"
    assert wording.answer_text("symptoms.confusion", False) == "No"
    assert wording.answer_text("symptoms.confusion", None) == "Not known"
    assert wording.answer_text("activity.session_minutes", 120) == "120 minutes"
    assert wording.answer_text("twitching.hours_after_exercise", 1.0) == "1 hour"
    assert wording.answer_text("twitching.duration_days", 1) == "1 day"
    assert wording.answer_text("body_temperature_c", 39.5) == "39.5 °C"
    assert wording.answer_text("blood_glucose_mmol_l", 3.2) == "3.2 mmol/L"
    assert wording.answer_text("history.falls_last_7_days", 1) == "1 fall"
    assert wording.answer_text("history.falls_last_7_days", 3) == "3 falls"
    assert wording.answer_text("activity.sessions_per_week", 1) == "1 session per week"
    assert wording.answer_text("twitching.body_sites", ["neck", "upper_arm"]) == "Neck, Upper arm"
    assert wording.answer_text("history.conditions", []) == "None"
    assert wording.answer_text("history.medications", []) == "None"
    assert wording.answer_text("activity.fluid_intake", "excessive") == "Excessive"
    assert wording.answer_text("respondent", "parent_or_carer") == "Parent or carer"
    assert wording.answer_text("notes", "free text") == "free text"
    assert (
        wording.answer_text("history.medications", [{"class": "statin", "days_since_start": 1}])
        == "Statin, started 1 day ago"
    )


def test_evidence_is_question_and_answer():
    assert (
        wording.evidence_text(Answer("activity.session_minutes", 120, "activity.session_minutes"))
        == "Session length: 120 minutes"
    )
    assert (
        wording.evidence_text(
            Answer("history.medications.class", "diuretic", "history.medications[0].class")
        )
        == "Medication: Diuretic"
    )
    assert (
        wording.evidence_text(
            Answer(
                "history.medications.days_since_start",
                10,
                "history.medications[0].days_since_start",
            )
        )
        == "Medication started: 10 days ago"
    )
    assert (
        wording.evidence_text(Answer("symptoms.confusion", None, "symptoms.confusion"))
        == "Confusion: Not known"
    )


def test_unknown_link_id_is_named():
    with pytest.raises(KeyError, match=re.escape("symptoms.nope")):
        wording.question("symptoms.nope")


@given(
    st.integers(min_value=0, max_value=10**6) | st.floats(min_value=0, max_value=1e6),
    st.sampled_from(["day", "hour", "point", "minute"]),
)
def test_counts_are_grammatical(n, singular):
    text = wording.count(n, singular)
    shown, word = text.split(" ")
    assert float(shown) == n
    assert word == (singular if n == 1 else f"{singular}s")
    assert not shown.endswith(".0")


@given(st.integers(min_value=0, max_value=36500))
def test_counted_answers_agree_with_the_number(n):
    text = wording.answer_text("twitching.duration_days", n)
    assert text == ("1 day" if n == 1 else f"{n} days")
    assert wording.count(n, "child", "children").endswith("child" if n == 1 else "children")
