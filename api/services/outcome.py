"""What a triage use case produces: everything a caller or storage needs afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from triage import TriageResult

#: Where a triage came from: the JSON API, the FHIR ``$triage`` operation (an intake
#: page's submission too) or a CDS Hooks call (whose client is the calling EHR).
Source = Literal["v1", "fhir", "cds-hooks"]
CDS_HOOKS_SOURCE: Source = "cds-hooks"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One triage: the validated request, the engine's result and the rendered Bundle.

    ``received`` is when the service got the input and ``issued`` the instant the
    Bundle carries (``Bundle.timestamp``, ``Observation.issued``). ``bundle``
    shares frozen fragments with other Bundles (see :mod:`api.fhir.frozen`).
    """

    source: Source
    request: Mapping[str, Any]
    result: TriageResult
    bundle: dict[str, Any]
    fhir_version: str
    knowledge_base_version: str
    received: datetime
    issued: datetime
    #: A QuestionnaireResponse's yes/no answers opening the lists (``…any``), which the
    #: request cannot carry (see ``api.fhir.questionnaire_response.GATES``).
    gates: Mapping[str, bool] = field(default_factory=dict)
