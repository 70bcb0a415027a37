"""Small request builders shared by the engine tests."""

from __future__ import annotations

import copy
from typing import Any

#: The smallest valid request: everything but age and one site unknown.
MINIMAL: dict[str, Any] = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}

#: Every §5 screen item answered false (no head impact, no fainting, no insulin).
SCREENED_SYMPTOMS = dict.fromkeys(
    (
        "confusion", "drowsiness", "loss_of_consciousness", "fainting", "exertional_collapse",
        "chest_pain", "palpitations", "breathing_difficulty", "seizure", "slurred_speech",
        "one_sided_weakness", "cola_urine", "muscle_weakness", "severe_muscle_pain",
    ),
    False,
)  # fmt: skip


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``overlay`` merged in (dicts merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def request(**overlay: Any) -> dict[str, Any]:
    """MINIMAL with sections overlaid: ``request(symptoms={"confusion": True})``."""
    return merge(MINIMAL, overlay)


def screened(**overlay: Any) -> dict[str, Any]:
    """A request whose red-flag screen is complete and negative, with the overlay."""
    base = merge(MINIMAL, {"symptoms": SCREENED_SYMPTOMS, "history": {"head_impact": False}})
    return merge(base, overlay)
