"""The deciding answer of a decisive question is worded once, for the report and the CDS card.

``triage.wording.decisive_condition`` replaced two copies (the clinician report's
and the card's); the card's put a medication class as its code ("anticoagulant")
where the report and the FHIR narrative said "Anticoagulant".
"""

from __future__ import annotations

import copy

from examples import EXAMPLES

from api.services.cds import cards
from triage import DecisiveQuestion, Level, evaluate, wording

MEDICATION = DecisiveQuestion(
    "history.medications", ({"class": "anticoagulant"},), Level.EMERGENCY, ("RF-X",)
)


def test_each_kind_of_deciding_answer_in_words():
    assert wording.decisive_condition("symptoms.confusion", True) == "If yes"
    assert wording.decisive_condition("symptoms.confusion", False) == "If no"
    assert wording.decisive_condition("twitching.body_sites", ()) == "If none"
    shown = wording.answer_text("history.medications.class", "anticoagulant")
    assert wording.decisive_condition("history.medications", MEDICATION.answer) == (
        f"If the answer includes {shown}"
    )
    assert "anticoagulant" not in wording.decisive_condition(
        "history.medications", MEDICATION.answer
    )
    assert wording.decisive_condition("activity.session_minutes", 180) == (
        f"If the answer is {wording.answer_text('activity.session_minutes', 180)}"
    )


def test_the_card_words_a_medication_condition_as_the_report_does():
    request = copy.deepcopy(dict(EXAMPLES)["skater-head-impact-concussion"]["request"])
    result = evaluate(request)._replace(decisive=(MEDICATION,))
    text = cards.detail(result, request, None)
    shown = wording.answer_text("history.medications.class", "anticoagulant")
    assert f"If the answer includes {shown}" in text
    assert "includes anticoagulant" not in text
