"""Use cases: one function per thing a client can ask of the product, no Flask.

The HTTP views (``api/routes``), the FHIR ``$triage`` operation and, later, the
CDS Hooks service all call these functions, so validation, evaluation, rendering
(and, later, storage) happen in one order in one place. A service takes decoded
input plus the deployment's :class:`~api.fhir.FhirContext`, returns a value
(:class:`Outcome`, bytes) and raises only the domain errors of
:mod:`api.services.errors`, which :mod:`api.errors` maps to HTTP statuses.
"""

from api.services.errors import InvalidInputError, NotFoundError, ServiceError
from api.services.health import health_status
from api.services.outcome import Outcome
from api.services.published import READABLE_TYPES, capability_statement, published_resource
from api.services.triage import triage_intake, triage_questionnaire_response

__all__ = [
    "READABLE_TYPES",
    "InvalidInputError",
    "NotFoundError",
    "Outcome",
    "ServiceError",
    "capability_statement",
    "health_status",
    "published_resource",
    "triage_intake",
    "triage_questionnaire_response",
]
