"""The entry types of the knowledge base: rules, screen rows, factors, advice."""

from __future__ import annotations

from dataclasses import dataclass

from triage.conditions import Condition
from triage.result import Concept, Level


@dataclass(frozen=True, slots=True)
class Rule:
    """A red-flag rule of PROTOCOL.md §4."""

    id: str
    level: Level
    display: str
    when: Condition | None
    rationale: str
    source: str
    unless: Condition | None = None
    condition: Concept | None = None
    #: RF-SCREEN-INCOMPLETE fires from the screen (§5), not from a trigger.
    from_screen: bool = False

    def fires_when(self) -> str:
        """The trigger in words, as in PROTOCOL.md."""
        if self.from_screen:
            return "an item of the minimum red-flag screen is unknown"
        assert self.when is not None  # noqa: S101 - guaranteed by check()
        text = self.when.describe()
        if self.unless is not None:
            text += f", unless {self.unless.describe()}"
        return text


@dataclass(frozen=True, slots=True)
class Points:
    """One scoring line of a factor: ``points`` when ``when`` is true."""

    points: int
    when: Condition
    label: str = ""

    @property
    def text(self) -> str:
        return self.label or self.when.describe()


@dataclass(frozen=True, slots=True)
class PerMedication:
    """Points for each listed medication of the classes: more if started recently."""

    classes: tuple[str, ...]
    recent_days: int
    recent_points: int
    other_points: int

    @property
    def text(self) -> str:
        names = ", ".join(name.replace("_", " ") for name in self.classes)
        return (
            f"Each listed medicine ({names}): {_points(self.recent_points)} if started in the "
            f"last {self.recent_days} days, else {_points(self.other_points)}"
        )


def _points(count: int) -> str:
    return "1 point" if count == 1 else f"{count} points"


@dataclass(frozen=True, slots=True)
class Factor:
    """A contributing factor of PROTOCOL.md §6, reported with ≥ 1 point."""

    code: str
    display: str
    rationale: str
    points: tuple[Points | PerMedication, ...]
    #: The factor is only scored when this is true (e.g. "only for a tic pattern").
    only_when: Condition | None = None
    #: The factor is only scored at this final level (CF-BENIGN-FASCICULATION).
    only_at_level: Level | None = None
    condition: Concept | None = None


@dataclass(frozen=True, slots=True)
class Advice:
    """An advice entry of PROTOCOL.md §7; given when any of its triggers holds."""

    code: str
    display: str
    text: str
    levels: frozenset[Level] = frozenset()
    rules: frozenset[str] = frozenset()
    factors: frozenset[str] = frozenset()
    when: Condition | None = None
    always: bool = False
    #: Not given when this other advice is given (ADV-HYDRATE vs ADV-DO-NOT-DRINK-MORE).
    not_with: str | None = None
    #: A more specific text when one of these rules fired.
    variant_rules: frozenset[str] = frozenset()
    variant_text: str = ""


@dataclass(frozen=True, slots=True)
class ScreenItem:
    """An item of the minimum red-flag screen (§5); required when ``required_when`` holds."""

    link_id: str
    required_when: Condition | None = None


@dataclass(frozen=True, slots=True)
class ScreenRow:
    """A row of the §5 screen: when ``when`` holds (always when None), ``items`` must be known.

    ``for_rules`` names the rules a "yes" there could complete (checked at load).
    """

    when: Condition | None
    items: tuple[str, ...]
    for_rules: tuple[str, ...]
