"""The immutable result of one evaluation (PROTOCOL.md §8).

The types are NamedTuples rather than frozen dataclasses: equally immutable and
typed, and several times cheaper to build, which matters on the request path.

These types are the whole interface between the engine and whatever presents
it (the FHIR renderer, tests, the benchmark). Everything a clinician needs to
trace a level back to the answers is here; nothing here knows about FHIR.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, overload

#: A JSON scalar answer; ``None`` only in evidence for an *unknown* screen item.
AnswerValue = bool | int | float | str | None


class Level(enum.IntEnum):
    """Triage levels, ordered so that a larger value is more urgent."""

    SELF_CARE = 0
    CONSULTATION = 1
    CONSULTATION_24 = 2
    EMERGENCY = 3
    EMERGENCY_AMBULANCE = 4

    @property
    def code(self) -> str:
        """The public code of PROTOCOL.md §2 (``emergency_ambulance`` ...)."""
        return self.name.lower()

    @property
    def display(self) -> str:
        return LEVEL_DISPLAY[self]

    @property
    def meaning(self) -> str:
        return LEVEL_MEANING[self]

    @classmethod
    def from_code(cls, code: str) -> Level:
        return cls[code.upper()]


LEVEL_DISPLAY = {
    Level.EMERGENCY_AMBULANCE: "Call an ambulance",
    Level.EMERGENCY: "Go to the emergency department",
    Level.CONSULTATION_24: "See a clinician within 24 hours",
    Level.CONSULTATION: "See a clinician",
    Level.SELF_CARE: "Self-care",
}
LEVEL_MEANING = {
    Level.EMERGENCY_AMBULANCE: "Life-threatening now: call emergency services.",
    Level.EMERGENCY: "Needs emergency assessment now.",
    Level.CONSULTATION_24: "Same-day or next-day assessment; no training until seen.",
    Level.CONSULTATION: "Book an appointment (days, not months).",
    Level.SELF_CARE: "Manage at home with the advice given; the safety net says when to escalate.",
}


class Likelihood(enum.Enum):
    """How strongly a contributing factor is supported (PROTOCOL.md §6)."""

    HIGH = "high"
    MODERATE = "moderate"
    LOW = "low"

    @classmethod
    def for_points(cls, points: int) -> Likelihood:
        if points >= 3:
            return cls.HIGH
        if points == 2:
            return cls.MODERATE
        return cls.LOW


class Concept(NamedTuple):
    """A coded concept from an external terminology (SNOMED CT here)."""

    system: str
    code: str
    display: str


class Answer(NamedTuple):
    """One request answer used as evidence.

    ``link_id`` is the vocabulary path (``symptoms.confusion``); ``path`` is the
    JSON path of the answer in the request, which differs only for list members
    of a group (``history.medications[1].class``). ``value`` is the raw answer:
    one list member per Answer for lists, ``None`` for an unknown screen item.
    """

    link_id: str
    value: AnswerValue
    path: str

    @property
    def is_unknown(self) -> bool:
        return self.value is None


class FiredRule(NamedTuple):
    """A red-flag rule that fired, with the answers that fired it."""

    rule_id: str
    level: Level
    display: str
    rationale: str
    source: str
    condition: Concept | None
    evidence: tuple[Answer, ...]


class FactorPoint(NamedTuple):
    """One scoring line of a factor that scored, with the answers behind it."""

    points: int
    label: str
    evidence: tuple[Answer, ...]


class ReportedFactor(NamedTuple):
    """A contributing factor with at least one point."""

    code: str
    display: str
    rationale: str
    points: int
    likelihood: Likelihood
    breakdown: tuple[FactorPoint, ...]
    condition: Concept | None

    @property
    def evidence(self) -> tuple[Answer, ...]:
        """Every answer behind the factor, each once, in scoring order."""
        if len(self.breakdown) == 1:
            # One line's evidence already holds each answer once (``unique_answers``;
            # per-medication lines cite each entry's own paths).
            return self.breakdown[0].evidence
        seen: dict[tuple[str, str], Answer] = {}
        for point in self.breakdown:
            for answer in point.evidence:
                seen.setdefault((answer.path, repr(answer.value)), answer)
        return tuple(seen.values())


class GivenAdvice(NamedTuple):
    """One advice code, with what caused it to be given."""

    code: str
    display: str
    text: str
    because: tuple[str, ...]


#: An answer a decisive question proposes: a request value (a list as a tuple;
#: a medication list as a tuple of ``{"class": ...}`` objects).
ProposedAnswer = bool | int | float | str | tuple[object, ...]


class DecisiveQuestion(NamedTuple):
    """For one unknown screen item: the most urgent level one answer to it alone gives.

    ``answer`` is that answer (the first such, in candidate order: yes before no);
    ``rule_ids`` the rules it would fire that do not fire now, most urgent first.
    ``level`` may equal the current level (the answer would not escalate): every
    unknown screen item gets one, so a clinician sees each question's weight.
    """

    link_id: str
    answer: ProposedAnswer
    level: Level
    rule_ids: tuple[str, ...]


class DecisiveQuestions(Sequence[DecisiveQuestion]):
    """The decisive questions of a result, computed on first use and then kept.

    They cost as much as the rest of an evaluation together when many screen
    items are unknown, and not every caller shows them; so ``evaluate`` hands
    over the (pure) computation and the first reader runs it. Behaves as a
    read-only tuple: equal to a tuple or another instance with the same items.
    """

    __slots__ = ("_compute", "_items")

    def __init__(self, compute: Callable[[], tuple[DecisiveQuestion, ...]]) -> None:
        self._compute: Callable[[], tuple[DecisiveQuestion, ...]] | None = compute
        self._items: tuple[DecisiveQuestion, ...] | None = None

    def _get(self) -> tuple[DecisiveQuestion, ...]:
        if self._items is None:
            assert self._compute is not None  # noqa: S101 - set until the first use
            self._items = self._compute()
            self._compute = None  # drop the request's answers once computed
        return self._items

    @overload
    def __getitem__(self, index: int) -> DecisiveQuestion: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[DecisiveQuestion, ...]: ...

    def __getitem__(self, index: int | slice) -> DecisiveQuestion | tuple[DecisiveQuestion, ...]:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[DecisiveQuestion]:
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecisiveQuestions):
            return self._get() == other._get()
        if isinstance(other, tuple):
            return self._get() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to tuples, so not hashable

    def __repr__(self) -> str:
        return f"DecisiveQuestions({self._get()!r})"


class TriageResult(NamedTuple):
    """Everything PROTOCOL.md §8 says a result contains."""

    level: Level
    rules: tuple[FiredRule, ...]
    factors: tuple[ReportedFactor, ...]
    advice: tuple[GivenAdvice, ...]
    unanswered: tuple[str, ...]
    knowledge_base_version: str
    #: One per unknown screen item, in the order of ``unanswered`` (computed on first use).
    decisive: Sequence[DecisiveQuestion] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(rule.rule_id for rule in self.rules)

    @property
    def advice_codes(self) -> tuple[str, ...]:
        return tuple(advice.code for advice in self.advice)

    @property
    def factor_points(self) -> tuple[tuple[str, int], ...]:
        return tuple((factor.code, factor.points) for factor in self.factors)
