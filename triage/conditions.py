"""The condition language of the knowledge base: one semantics per condition.

Each condition has exactly one definition of what it means, ``test(facts)``,
and one of what it cites, ``evidence(facts)``; there is no second, compiled
copy to drift from it. Speed comes from the engine's candidate index instead:
``support()`` names the answers of which at least one must be given for the
condition to hold, so a rule none of whose supporting answers was given is
never tested.

Each condition answers ``test(facts)`` with True, False or None (*unknown*) using
Kleene logic, so an omitted answer is never read as "absent" (PROTOCOL.md §3).
A rule fires only when its trigger is True; an "unless" exception applies only
when it is True, i.e. when every answer it tests is known and reassuring.

Conditions are built once, when the knowledge base loads; every constructor
checks the field and the enum values it names against ``triage.vocabulary`` and
raises :class:`VocabularyError` at start-up, not at request time.

``evidence(facts)`` is asked only of a condition that tested True, and returns
the raw answers that made it true; ``describe()`` renders the condition in the
plain words of PROTOCOL.md for reviewers and the published CodeSystems.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from triage.result import Answer
from triage.vocabulary import ITEMS, REGIONS, WHOLE_BODY, Item, Kind

#: The flattened request: link id → answer. Absent key = unknown. Lists are
#: tuples; ``history.medications`` is a tuple of dicts.
Facts = Mapping[str, Any]
Tri = bool | None

MEDICATIONS = "history.medications"
MEDICATION_CLASS = "history.medications.class"
BODY_SITES = "twitching.body_sites"


class VocabularyError(ValueError):
    """A knowledge-base entry names a field or value the vocabulary lacks."""


def _item(link_id: str, *kinds: Kind) -> Item:
    try:
        item = ITEMS[link_id]
    except KeyError:
        raise VocabularyError(f"unknown field {link_id!r}") from None
    if kinds and item.kind not in kinds:
        expected = "/".join(k.value for k in kinds)
        raise VocabularyError(f"{link_id!r} is {item.kind.value}, not {expected}")
    return item


def _check_codes(item: Item, codes: tuple[str, ...]) -> None:
    unknown = [code for code in codes if code not in item.code_values]
    if unknown or not codes:
        raise VocabularyError(f"{item.link_id!r} has no value(s) {unknown}")


def _label(link_id: str) -> str:
    return link_id.rsplit(".", 1)[-1]


class Condition:
    """Base of every condition node."""

    __slots__ = ()

    def test(self, facts: Facts) -> Tri:
        raise NotImplementedError

    def evidence(self, facts: Facts) -> list[Answer]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def link_ids(self) -> frozenset[str]:
        """Every field the condition reads (the decisive-question index uses it)."""
        raise NotImplementedError

    def support(self) -> frozenset[str] | None:
        """Answers of which one must be given for the condition to hold; None: none needed.

        The engine tests a rule only when one of these answers is in the request
        (``NotEstablished`` can hold on an empty request, so it has no support).
        """
        return self.link_ids()

    def requirements(self) -> tuple[frozenset[str], ...]:
        """Answer sets that must *each* have one given answer for the condition to hold.

        A conjunction needs every part's support; anything else needs its own.
        Decisive questions use it to skip rules that another unknown answer blocks.
        """
        support = self.support()
        return () if support is None else (support,)

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        """The evidence when it is the same whenever the condition holds, else None.

        A yes/no answer, a listed value or a single code always cite the same
        answer, so the engine can build such findings once, at load time.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


# --- atoms ----------------------------------------------------------------------------


class _Answered(Condition):
    """A yes/no answer is given as ``expected`` (an unknown answer is neither)."""

    __slots__ = ("answer", "link_id")
    expected: bool

    def __init__(self, link_id: str) -> None:
        _item(link_id, Kind.BOOLEAN)
        self.link_id = link_id
        self.answer = Answer(link_id, self.expected, link_id)  # immutable, so built once

    def test(self, facts: Facts) -> Tri:
        value = facts.get(self.link_id)
        return None if value is None else value is self.expected

    def evidence(self, facts: Facts) -> list[Answer]:
        return [self.answer]

    def link_ids(self) -> frozenset[str]:
        return frozenset({self.link_id})

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        return (self.answer,)


class Yes(_Answered):
    """A yes/no answer is true."""

    __slots__ = ()
    expected = True

    def describe(self) -> str:
        return _label(self.link_id)


class No(_Answered):
    """A yes/no answer is known to be false (a reassuring answer)."""

    __slots__ = ()
    expected = False

    def describe(self) -> str:
        return f"{_label(self.link_id)} is false"


class AnyYes(Condition):
    """Any of several yes/no answers is true (Kleene OR over ``Yes`` atoms).

    The same meaning as ``AnyOf(Yes(a), Yes(b), ...)``, as one node: the most
    common trigger shape ("any of headache, dizziness, ...") in one call.
    """

    __slots__ = ("answers", "link_ids_")

    def __init__(self, *link_ids: str) -> None:
        if len(link_ids) < 2:
            raise VocabularyError("AnyYes needs at least two answers")
        for link_id in link_ids:
            _item(link_id, Kind.BOOLEAN)
        self.link_ids_ = link_ids
        self.answers = {link_id: Answer(link_id, True, link_id) for link_id in link_ids}

    def test(self, facts: Facts) -> Tri:
        result: Tri = False
        get = facts.get
        for link_id in self.link_ids_:
            value = get(link_id)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    def evidence(self, facts: Facts) -> list[Answer]:
        return [self.answers[key] for key in self.link_ids_ if facts.get(key) is True]

    def describe(self) -> str:
        return "any of " + ", ".join(_label(link_id) for link_id in self.link_ids_)

    def link_ids(self) -> frozenset[str]:
        return frozenset(self.link_ids_)


class Is(Condition):
    """A coded answer is one of the given values."""

    __slots__ = ("codes", "link_id")

    def __init__(self, link_id: str, *codes: str) -> None:
        _check_codes(_item(link_id, Kind.CODE), codes)
        self.link_id = link_id
        self.codes = frozenset(codes)

    def test(self, facts: Facts) -> Tri:
        value = facts.get(self.link_id)
        return None if value is None else value in self.codes

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(self.link_id, facts[self.link_id], self.link_id)]

    def describe(self) -> str:
        return f"{_label(self.link_id)} is {' or '.join(sorted(self.codes))}"

    def link_ids(self) -> frozenset[str]:
        return frozenset({self.link_id})

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        if len(self.codes) != 1:
            return None
        (code,) = self.codes
        return (Answer(self.link_id, code, self.link_id),)


class Compare(Condition):
    """A numeric answer against a threshold; an omitted number makes it false.

    PROTOCOL.md §3: "A numeric condition on an omitted number is false unless
    the rule says otherwise." False (not unknown) matters inside exceptions,
    where it keeps the exception from applying, so the rule still fires.
    """

    __slots__ = ("compare", "link_id", "op", "threshold")

    _OPS = {  # noqa: RUF012 - a constant lookup table, never mutated
        ">=": ("≥", lambda a, b: a >= b),
        ">": (">", lambda a, b: a > b),
        "<": ("<", lambda a, b: a < b),
        "<=": ("≤", lambda a, b: a <= b),
    }

    def __init__(self, link_id: str, op: str, threshold: float) -> None:
        item = _item(link_id, Kind.INTEGER, Kind.DECIMAL)
        if op not in self._OPS:
            raise VocabularyError(f"unknown comparison {op!r}")
        low = item.minimum if item.minimum is not None else float("-inf")
        high = item.maximum if item.maximum is not None else float("inf")
        if not low <= threshold <= high:
            raise VocabularyError(f"{link_id!r} threshold {threshold} outside {low}–{high}")
        self.link_id = link_id
        self.op = op
        self.threshold = threshold
        self.compare = self._OPS[op][1]

    def test(self, facts: Facts) -> Tri:
        value = facts.get(self.link_id)
        if value is None:
            return False
        return self.compare(value, self.threshold)

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(self.link_id, facts[self.link_id], self.link_id)]

    def describe(self) -> str:
        symbol = self._OPS[self.op][0]
        threshold = self.threshold
        if isinstance(threshold, float) and threshold.is_integer():
            threshold = int(threshold)
        return f"{_label(self.link_id)} {symbol} {threshold}"

    def link_ids(self) -> frozenset[str]:
        return frozenset({self.link_id})


class Listed(Condition):
    """A value is in a given list (``history.conditions``).

    An omitted list is unknown; a given list is complete, so a value missing
    from it is known absent (PROTOCOL.md §3, Lists).
    """

    __slots__ = ("code", "link_id")

    def __init__(self, link_id: str, code: str) -> None:
        _check_codes(_item(link_id, Kind.CODES), (code,))
        self.link_id = link_id
        self.code = code

    def test(self, facts: Facts) -> Tri:
        values = facts.get(self.link_id)
        return None if values is None else self.code in values

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(self.link_id, self.code, self.link_id)]

    def describe(self) -> str:
        return f"{self.code} listed"

    def link_ids(self) -> frozenset[str]:
        return frozenset({self.link_id})

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        return (Answer(self.link_id, self.code, self.link_id),)


class Medication(Condition):
    """A medication of one of the classes is listed, optionally with limits.

    ``max_days`` applies per medication entry; an omitted number fails its
    limit (numeric conditions on omitted numbers are false).
    """

    __slots__ = ("classes", "max_days", "omitted_days_recent")

    def __init__(
        self,
        *classes: str,
        max_days: int | None = None,
        omitted_days_recent: bool = False,
    ) -> None:
        _check_codes(_item(MEDICATION_CLASS, Kind.CODE), classes)
        self.classes = frozenset(classes)
        self.max_days = max_days
        #: RF-MEDICATION (1.1): an omitted start date counts as recent.
        self.omitted_days_recent = omitted_days_recent

    def _matches(self, medication: Mapping[str, Any]) -> bool:
        if medication["class"] not in self.classes:
            return False
        if self.max_days is not None:
            days = medication.get("days_since_start")
            if days is None:
                return self.omitted_days_recent
            if days > self.max_days:
                return False
        return True

    def test(self, facts: Facts) -> Tri:
        medications = facts.get(MEDICATIONS)
        if medications is None:
            return None
        return any(self._matches(medication) for medication in medications)

    def evidence(self, facts: Facts) -> list[Answer]:
        answers = []
        for index, medication in enumerate(facts[MEDICATIONS]):
            if self._matches(medication):
                answers.extend(medication_answers(index, medication, self._detail_keys()))
        return answers

    def _detail_keys(self) -> tuple[str, ...]:
        keys = ["class"]
        if self.max_days is not None:
            keys.append("days_since_start")
        return tuple(keys)

    def describe(self) -> str:
        text = " or ".join(sorted(self.classes))
        if self.max_days is not None:
            text += f" started in the last {self.max_days} days"
            if self.omitted_days_recent:
                text += " or at an unknown date"
        return text

    def link_ids(self) -> frozenset[str]:
        return frozenset({MEDICATIONS, MEDICATION_CLASS})


class DailyDoses(Condition):
    """The doses per day of one medication class, added over its entries, reach a total.

    "The same class may repeat" (PROTOCOL.md §3), and what RF-BETA-AGONIST is
    about is total reliever use: two inhalers at 2 doses a day are 4 doses a
    day. The safer reading adds them up; an omitted dose count adds nothing.
    """

    __slots__ = ("at_least", "medication_class")

    def __init__(self, medication_class: str, at_least: float) -> None:
        _check_codes(_item(MEDICATION_CLASS, Kind.CODE), (medication_class,))
        doses = _item(f"{MEDICATIONS}.doses_per_day", Kind.DECIMAL)
        if doses.maximum is not None and not 0 < at_least <= doses.maximum:
            raise VocabularyError(f"doses threshold {at_least} outside 0–{doses.maximum}")
        self.medication_class = medication_class
        self.at_least = at_least

    def _entries(self, facts: Facts) -> list[tuple[int, Mapping[str, Any]]]:
        return [
            (index, medication)
            for index, medication in enumerate(facts.get(MEDICATIONS) or ())
            if medication["class"] == self.medication_class
        ]

    def _total(self, facts: Facts) -> Decimal:
        """The exact sum of the doses as written: binary floats made 0.7 + 1.4 + 1.9
        3.9999999999999996, and a total of exactly 4 missed the rule (under-triage)."""
        return sum(
            (_exact(m.get("doses_per_day") or 0) for _, m in self._entries(facts)), Decimal(0)
        )

    def test(self, facts: Facts) -> Tri:
        if facts.get(MEDICATIONS) is None:
            return None
        return self._total(facts) >= _exact(self.at_least)

    def evidence(self, facts: Facts) -> list[Answer]:
        answers = []
        for index, medication in self._entries(facts):
            answers.extend(medication_answers(index, medication, ("class", "doses_per_day")))
        return answers

    def describe(self) -> str:
        return f"{self.medication_class} doses_per_day (all entries) ≥ {self.at_least:g}"

    def link_ids(self) -> frozenset[str]:
        return frozenset({MEDICATIONS, MEDICATION_CLASS, f"{MEDICATIONS}.doses_per_day"})


def _exact(number: float) -> Decimal:
    """A number as the decimal it was written as (the shortest text that reads back as
    the same float, which is what a JSON client sent for any value of ≤ 15 digits)."""
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def medication_answers(
    index: int, medication: Mapping[str, Any], keys: tuple[str, ...]
) -> list[Answer]:
    """The answers of one medication entry, as evidence."""
    return [
        Answer(f"{MEDICATIONS}.{key}", medication[key], f"{MEDICATIONS}[{index}].{key}")
        for key in keys
        if medication.get(key) is not None
    ]


def _sites(facts: Facts) -> tuple[str, ...]:
    return facts.get(BODY_SITES) or ()


class _SiteMatch(Condition):
    """True when any body site given is in ``matching``; unknown when no sites were given."""

    __slots__ = ("matching",)
    matching: frozenset[str]

    def test(self, facts: Facts) -> Tri:
        sites = facts.get(BODY_SITES)
        if sites is None:
            return None
        return any(site in self.matching for site in sites)

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(BODY_SITES, s, BODY_SITES) for s in _sites(facts) if s in self.matching]

    def link_ids(self) -> frozenset[str]:
        return frozenset({BODY_SITES})


class SiteIn(_SiteMatch):
    """A body site lies in one of the named regions (``whole_body`` counts as every region)."""

    __slots__ = ("regions",)

    def __init__(self, *regions: str) -> None:
        unknown = [region for region in regions if region not in REGIONS]
        if unknown or not regions:
            raise VocabularyError(f"unknown body region(s) {unknown}")
        self.regions = tuple(regions)
        self.matching = frozenset().union(*(REGIONS[r] for r in regions)) | {WHOLE_BODY}

    def describe(self) -> str:
        return "a " + " or ".join(r.replace("_", "-") for r in self.regions) + " site"


class SitesInclude(_SiteMatch):
    """The body sites include one of the named sites; ``whole_body`` includes them all.

    PROTOCOL.md says whole_body "counts as every region"; for a test on single
    sites (RF-HEMIFACIAL) the safer reading is that it counts as every site too.
    """

    __slots__ = ("sites",)

    def __init__(self, *sites: str) -> None:
        _check_codes(_item(BODY_SITES, Kind.CODES), sites)
        self.sites = frozenset(sites)
        self.matching = self.sites | {WHOLE_BODY}

    def describe(self) -> str:
        return "sites include " + " or ".join(sorted(self.sites))


class SitesWithin(Condition):
    """Every body site is one of the named sites (``whole_body`` is never within)."""

    __slots__ = ("sites",)

    def __init__(self, sites: frozenset[str]) -> None:
        _check_codes(_item(BODY_SITES, Kind.CODES), tuple(sorted(sites)))
        self.sites = sites

    def test(self, facts: Facts) -> Tri:
        sites = facts.get(BODY_SITES)
        if not sites:
            return None
        return all(site in self.sites for site in sites)

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(BODY_SITES, s, BODY_SITES) for s in _sites(facts)]

    def describe(self) -> str:
        return "every site is in {" + ", ".join(sorted(self.sites)) + "}"

    def link_ids(self) -> frozenset[str]:
        return frozenset({BODY_SITES})


class RegionCount(Condition):
    """How many body regions the sites span: ``at_least`` 2, or ``exactly`` 1.

    ``whole_body`` counts as every region.
    """

    __slots__ = ("at_least", "exactly")

    def __init__(self, *, at_least: int | None = None, exactly: int | None = None) -> None:
        if (at_least is None) == (exactly is None):
            raise VocabularyError("RegionCount takes exactly one of at_least / exactly")
        self.at_least = at_least
        self.exactly = exactly

    @staticmethod
    def count(sites: tuple[str, ...]) -> int:
        if WHOLE_BODY in sites:
            return len(REGIONS)
        return sum(1 for members in REGIONS.values() if any(s in members for s in sites))

    def test(self, facts: Facts) -> Tri:
        sites = facts.get(BODY_SITES)
        if not sites:
            return None
        regions = self.count(sites)
        if self.at_least is not None:
            return regions >= self.at_least
        return regions == self.exactly

    def evidence(self, facts: Facts) -> list[Answer]:
        return [Answer(BODY_SITES, s, BODY_SITES) for s in _sites(facts)]

    def describe(self) -> str:
        if self.at_least is not None:
            return f"the sites span ≥ {self.at_least} regions or include whole_body"
        return f"all sites in {self.exactly} region, no whole_body"

    def link_ids(self) -> frozenset[str]:
        return frozenset({BODY_SITES})


# --- combinators ----------------------------------------------------------------------


class _Combination(Condition):
    """Two or more parts combined; ``text`` overrides the generated wording."""

    __slots__ = ("parts", "text")

    def __init__(self, *parts: Condition, text: str | None = None) -> None:
        if len(parts) < 2:
            raise VocabularyError(f"{type(self).__name__} needs at least two parts")
        self.parts = parts
        self.text = text

    def link_ids(self) -> frozenset[str]:
        return frozenset().union(*(part.link_ids() for part in self.parts))

    def support(self) -> frozenset[str] | None:
        # Any part holding needs one of its own answers: the union.
        supports = [part.support() for part in self.parts]
        if any(support is None for support in supports):
            return None
        return frozenset().union(*(s for s in supports if s is not None))


class AnyOf(_Combination):
    """Kleene OR: true if any part is true, unknown if none is true but one is unknown."""

    __slots__ = ()

    def test(self, facts: Facts) -> Tri:
        result: Tri = False
        for part in self.parts:
            value = part.test(facts)
            if value:
                return True
            if value is None:
                result = None
        return result

    def evidence(self, facts: Facts) -> list[Answer]:
        answers: list[Answer] = []
        for part in self.parts:
            if part.test(facts):
                answers.extend(part.evidence(facts))
        return answers

    def describe(self) -> str:
        if self.text:
            return self.text
        return "any of " + ", ".join(_wrap(part) for part in self.parts)


class AllOf(_Combination):
    """Kleene AND: false if any part is false, unknown if none is false but one is unknown."""

    __slots__ = ()

    def test(self, facts: Facts) -> Tri:
        result: Tri = True
        for part in self.parts:
            value = part.test(facts)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def evidence(self, facts: Facts) -> list[Answer]:
        answers: list[Answer] = []
        for part in self.parts:
            answers.extend(part.evidence(facts))
        return answers

    def describe(self) -> str:
        if self.text:
            return self.text
        return " and ".join(_wrap(part) for part in self.parts)

    def requirements(self) -> tuple[frozenset[str], ...]:
        return tuple(r for part in self.parts for r in part.requirements())

    def support(self) -> frozenset[str] | None:
        # Every part must hold, so the narrowest part's answers suffice.
        supports = [s for s in (part.support() for part in self.parts) if s is not None]
        return min(supports, key=len) if supports else None

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        parts = [part.constant_evidence() for part in self.parts]
        if any(part is None for part in parts):
            return None
        return unique_answers([answer for part in parts for answer in part or ()])


class NotEstablished(Condition):
    """True unless the part is established (tests True); two-valued on purpose.

    Used for "not a tic pattern" and "timing is not falling_asleep": the benign
    explanation excuses a rule only when the answers establish it, so an
    unknown answer leaves the rule free to fire (the safer reading).
    """

    __slots__ = ("part", "text")

    def __init__(self, part: Condition, text: str | None = None) -> None:
        self.part = part
        self.text = text

    def test(self, facts: Facts) -> Tri:
        return self.part.test(facts) is not True

    def evidence(self, facts: Facts) -> list[Answer]:
        # A plain answer that is known is shown (timing after_exercise); a derived
        # term is not, since its absence is not an answer the caller gave.
        part = self.part
        if isinstance(part, Yes | No | Is):
            value = facts.get(part.link_id)
            if value is not None:
                return [Answer(part.link_id, value, part.link_id)]
        return []

    def describe(self) -> str:
        return self.text or f"not ({self.part.describe()})"

    def link_ids(self) -> frozenset[str]:
        return self.part.link_ids()

    def support(self) -> frozenset[str] | None:
        return None  # holds when nothing is known


class Term(Condition):
    """A named derived term of PROTOCOL.md §3 (tic pattern, EAH risk ...).

    Its evidence is the raw answers it was derived from, never the term itself.
    """

    __slots__ = ("definition", "name")

    def __init__(self, name: str, definition: Condition) -> None:
        self.name = name
        self.definition = definition

    def test(self, facts: Facts) -> Tri:
        return self.definition.test(facts)

    def evidence(self, facts: Facts) -> list[Answer]:
        return self.definition.evidence(facts)

    def describe(self) -> str:
        return self.name

    def link_ids(self) -> frozenset[str]:
        return self.definition.link_ids()

    def support(self) -> frozenset[str] | None:
        return self.definition.support()

    def requirements(self) -> tuple[frozenset[str], ...]:
        return self.definition.requirements()

    def constant_evidence(self) -> tuple[Answer, ...] | None:
        return self.definition.constant_evidence()


def _wrap(part: Condition) -> str:
    text = part.describe()
    if isinstance(part, AnyOf | AllOf) and not part.text:
        return f"({text})"
    return text


def unique_answers(answers: list[Answer]) -> tuple[Answer, ...]:
    """Evidence without repeats, in first-seen order."""
    if len(answers) < 2:
        return tuple(answers)
    seen: dict[tuple[str, Any], Answer] = {}
    for answer in answers:
        seen.setdefault((answer.path, answer.value), answer)
    return tuple(seen.values())
