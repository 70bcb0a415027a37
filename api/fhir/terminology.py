"""CodeSystem and ValueSet resources for every product code system (PROTOCOL.md §9).

Built from :func:`api.fhir.codesystems.product_codesystems`, the same specs the
renderer's URLs come from, so every ``system|code`` a Bundle or the Questionnaire
cites resolves to a concept here. One ValueSet per CodeSystem holds all its codes
(``CodeSystem.valueSet`` points to it), for ``answerValueSet``-style bindings.
"""

from __future__ import annotations

from api.fhir import codesystems as cs
from api.fhir._tables import Json, esc, narrative, published
from triage import KNOWLEDGE_BASE_VERSION


def valueset_url(canonical_base: str, valueset_id: str) -> str:
    """``{canonical base}/ValueSet/{id}``; each ValueSet shares its CodeSystem's id."""
    return f"{canonical_base.rstrip('/')}/ValueSet/{valueset_id}"


def computable_name(resource_id: str) -> str:
    """``twitching-body-sites`` → ``TwitchingBodySites`` (the FHIR ``name`` pattern)."""
    return "".join(part[:1].upper() + part[1:] for part in resource_id.split("-") if part)


def build_codesystem(spec: cs.CodeSystemSpec, canonical_base: str, *, date: str) -> Json:
    """One product CodeSystem (R4), versioned with the knowledge base."""
    concepts: list[Json] = []
    rows: list[str] = []
    for concept in spec.concepts:
        entry: Json = {"code": concept.code, "display": concept.display}
        if concept.definition:
            entry["definition"] = concept.definition
        concepts.append(entry)
        rows.append(
            f"<tr><td>{esc(concept.code)}</td><td>{esc(concept.display)}</td>"
            f"<td>{esc(concept.definition)}</td></tr>"
        )
    return {
        "resourceType": "CodeSystem",
        "id": spec.id,
        "text": narrative(
            f"<p><b>{esc(spec.title)}</b>: {esc(spec.description)}</p>"
            "<table><thead><tr><th>Code</th><th>Display</th><th>Definition</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        ),
        **published(
            spec.url(canonical_base),
            version=KNOWLEDGE_BASE_VERSION,
            name=computable_name(spec.id),
            title=spec.title,
            date=date,
        ),
        "description": spec.description,
        "caseSensitive": True,
        "valueSet": valueset_url(canonical_base, spec.id),
        "content": "complete",
        "count": len(concepts),
        "concept": concepts,
    }


def build_valueset(spec: cs.CodeSystemSpec, canonical_base: str, *, date: str) -> Json:
    """The ValueSet of all codes of one product CodeSystem."""
    system = spec.url(canonical_base)
    return {
        "resourceType": "ValueSet",
        "id": spec.id,
        "text": narrative(
            f"<p><b>{esc(spec.title)}</b>: all codes of the CodeSystem {esc(system)}.</p>"
        ),
        **published(
            valueset_url(canonical_base, spec.id),
            version=KNOWLEDGE_BASE_VERSION,
            name=computable_name(spec.id),
            title=spec.title,
            date=date,
        ),
        "description": f"All codes of the CodeSystem {system}. {spec.description}",
        "immutable": False,
        "compose": {"include": [{"system": system, "version": KNOWLEDGE_BASE_VERSION}]},
    }
