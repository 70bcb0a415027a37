"""Service metadata: what a liveness probe reports."""

from __future__ import annotations

from triage import KNOWLEDGE_BASE_VERSION


def health_status() -> dict[str, str]:
    """Liveness, naming the knowledge base that answers."""
    return {"status": "ok", "knowledge_base_version": KNOWLEDGE_BASE_VERSION}
