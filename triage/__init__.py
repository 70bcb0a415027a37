"""The triage engine: PROTOCOL.md 1.1 as a pure, explainable function.

Pure Python on purpose: it imports neither Flask nor FHIR, so it can be tested,
benchmarked and reviewed on its own. ``evaluate(request)`` takes a validated
request in the PROTOCOL.md §3 vocabulary and returns an immutable TriageResult.
"""

from triage.engine import RequestShapeError, evaluate
from triage.knowledge_base import KNOWLEDGE_BASE_VERSION
from triage.result import DecisiveQuestion, Level, TriageResult

__all__ = [
    "KNOWLEDGE_BASE_VERSION",
    "DecisiveQuestion",
    "Level",
    "RequestShapeError",
    "TriageResult",
    "evaluate",
]
