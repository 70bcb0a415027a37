"""The Provenance of one stored assessment (FHIR R4), pure.

target = the Observations the engine produced, entity = the
QuestionnaireResponse they were derived from (role ``source``), agent = this
software, with its version and the knowledge-base version, as the author. It
shares the Bundle's id, so the Provenance of ``Bundle/<id>`` is
``Provenance/<id>`` (ids are unique per resource type in FHIR).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from api.fhir._tables import esc, narrative
from api.fhir.frozen import freeze

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


#: What every Provenance of this service did: create (v3 DataOperation).
_ACTIVITY = freeze({"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}]})


def _software(software_version: str, knowledge_base_version: str) -> str:
    return f"twitch-triage {software_version}, knowledge base {knowledge_base_version}"


@functools.lru_cache(maxsize=16)
def _author(software_version: str, knowledge_base_version: str, canonical_base: str) -> Any:
    """The agent list (this software as the author): the same for every assessment."""
    software = _software(software_version, knowledge_base_version)
    return freeze(
        [
            {
                "type": {
                    "coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]
                },
                "who": {
                    "identifier": {
                        "system": f"{canonical_base.rstrip('/')}/software",
                        "value": f"twitch-triage|{software_version}|{knowledge_base_version}",
                    },
                    "display": software,
                },
            }
        ]
    )


def build_provenance(
    *,
    bundle_id: str,
    recorded: str,
    observation_ids: Sequence[str],
    questionnaire_response_id: str,
    software_version: str,
    knowledge_base_version: str,
    canonical_base: str,
) -> dict[str, Any]:
    """Provenance/<bundle_id>: who made which Observations from which answers.

    Its activity and agent are shared, frozen fragments: serialise it, or
    ``copy.deepcopy`` it before changing it.
    """
    count = len(observation_ids)
    text = narrative(
        f"<p>Created {recorded} by {esc(_software(software_version, knowledge_base_version))}: "
        f"{count} Observation{'' if count == 1 else 's'} derived from "
        f"QuestionnaireResponse/{esc(questionnaire_response_id)}.</p>"
    )
    return {
        "resourceType": "Provenance",
        "id": bundle_id,
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "text": text,
        "target": [{"reference": f"Observation/{oid}"} for oid in observation_ids],
        "recorded": recorded,
        "activity": _ACTIVITY,
        "agent": _author(software_version, knowledge_base_version, canonical_base),
        "entity": [
            {
                "role": "source",
                "what": {"reference": f"QuestionnaireResponse/{questionnaire_response_id}"},
            }
        ],
    }
