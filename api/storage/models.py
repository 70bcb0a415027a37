"""The tables of the store (SQLAlchemy 2 declarative models).

One row per assessment holds what was asked and answered (the validated
request, the engine's result, the Bundle as sent, its Provenance, the
knowledge-base version and the times); one row per emitted resource indexes
it for read and search (subject, code, date) and points back at its
assessment, whose Bundle holds the resource itself, so nothing is stored
twice. Audit events live apart and outlive the assessments they name.

Times are integers (microseconds since the Unix epoch, UTC): the same type
and the same ordering on SQLite and PostgreSQL, cheap to index and compare.
The Alembic migrations in ``migrations/versions`` create exactly these tables
(``tests/test_storage_migrations.py`` compares them).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from api.storage.documents import CompressedDocument

#: Longest id we store (a FHIR id is at most 64 characters).
ID_LENGTH = 64


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class Assessment(Base):
    """One successful triage, immutable once written (deleted only as a whole)."""

    __tablename__ = "assessment"

    #: The Bundle's id (also the id of its Provenance).
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    received_us: Mapped[int] = mapped_column(BigInteger)
    #: When the Bundle was issued: its ``timestamp`` and ``meta.lastUpdated``.
    issued_us: Mapped[int] = mapped_column(BigInteger, index=True)
    #: ``v1/triage`` or ``fhir/$triage``: which interface received it.
    source: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    knowledge_base_version: Mapped[str] = mapped_column(String(32))
    software_version: Mapped[str] = mapped_column(String(32))
    fhir_version: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(128))
    #: The client that sent it and its tenant (rows stored before issue 11: ``local``).
    client: Mapped[str | None] = mapped_column(String(128))
    tenant: Mapped[str | None] = mapped_column(String(128), index=True)
    #: The validated request (JSON of PROTOCOL.md §3).
    request_json: Mapped[bytes] = mapped_column(CompressedDocument)
    #: The engine's answer in short (level, rules, factors, advice, unanswered).
    result_json: Mapped[bytes] = mapped_column(CompressedDocument)
    #: The Bundle exactly as sent (bytes of the response body).
    bundle_json: Mapped[bytes] = mapped_column(CompressedDocument)
    provenance_json: Mapped[bytes] = mapped_column(CompressedDocument)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: SHA-256 of what the idempotent request sent (path, query and body).
    request_digest: Mapped[str | None] = mapped_column(String(64))


class StoredResource(Base):
    """An entry of an assessment's Bundle, indexed for read and search."""

    __tablename__ = "resource"
    __table_args__ = (
        Index("ix_resource_type_subject_date", "resource_type", "subject", "date_us"),
        Index("ix_resource_type_date", "resource_type", "date_us"),
        Index("ix_resource_type_updated", "resource_type", "last_updated_us"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    assessment_id: Mapped[str] = mapped_column(
        ForeignKey("assessment.id", ondelete="CASCADE"), index=True
    )
    #: Index of the entry in the Bundle.
    position: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(128))
    #: Observation ``effectiveDateTime`` / QuestionnaireResponse ``authored``.
    date_us: Mapped[int] = mapped_column(BigInteger)
    last_updated_us: Mapped[int] = mapped_column(BigInteger)


class ResourceCode(Base):
    """One coding of a resource's ``code`` (token search ``system|code``)."""

    __tablename__ = "resource_code"
    __table_args__ = (Index("ix_resource_code_code_system", "code", "system"),)

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True
    )
    system: Mapped[str] = mapped_column(String(255), primary_key=True)
    code: Mapped[str] = mapped_column(String(128), primary_key=True)


class AuditRecord(Base):
    """An AuditEvent; never deleted with an assessment (only by retention)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_entity", "entity_type", "entity_id"),
        # A tenant's search walks this index newest first: filter, range and order at once,
        # and tests subtype, action and outcome in the index, not in the table.
        Index(
            "ix_audit_event_tenant_recorded",
            *("tenant", "recorded_us", "id", "subtype", "action", "outcome"),
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    recorded_us: Mapped[int] = mapped_column(BigInteger, index=True)
    #: The FHIR restful interaction (create, read, search-type, delete, operation).
    subtype: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(1))
    #: R4 AuditEventOutcome: 0 success, 4 minor failure, 8 serious failure.
    outcome: Mapped[str] = mapped_column(String(2))
    entity_type: Mapped[str | None] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    request_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    body: Mapped[bytes] = mapped_column(CompressedDocument)
    #: The caller's tenant; NULL for an attempt no credential identified (operators only).
    tenant: Mapped[str | None] = mapped_column(String(128))


class Tenant(Base):
    """A partner organisation: every stored row belongs to one."""

    __tablename__ = "tenant"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class ApiClient(Base):
    """One application of a tenant: its key hashes, scopes and SMART public keys."""

    __tablename__ = "api_client"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenant.name"), index=True)
    label: Mapped[str] = mapped_column(String(255))
    #: Space-separated SMART v2 scopes the client may use.
    scopes: Mapped[str] = mapped_column(String(1024))
    #: SHA-256 (hex) of the current API key; the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key replaced by the last rotation, valid until ``previous_until_us``.
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_until_us: Mapped[int | None] = mapped_column(BigInteger)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger)
    created_us: Mapped[int] = mapped_column(BigInteger)
    #: SMART Backend Services: the client's public keys (inline JWKS) or where to fetch them.
    jwks_json: Mapped[bytes | None] = mapped_column(LargeBinary)
    jwks_url: Mapped[str | None] = mapped_column(String(2048))


class AccessToken(Base):
    """A short-lived SMART access token (stored as its hash)."""

    __tablename__ = "access_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_client.id"), index=True)
    scopes: Mapped[str] = mapped_column(String(1024))
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)


class UsedAssertion(Base):
    """A client assertion's ``jti``, kept until it expires: no assertion is used twice."""

    __tablename__ = "used_assertion"

    client_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)


class CredentialEpoch(Base):
    """One row whose ``value`` grows with every revocation or rotation of a client.

    Each process keeps its API-key lookups only while this value is the one they
    were read under (:class:`api.storage.clients.KeyCache`), so a key revoked by
    the CLI, another worker or another node stops working on the next request.
    """

    __tablename__ = "credential_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


# --- CDS Hooks (issue 13) ----------------------------------------------------------------


class CdsEhr(Base):
    """An EHR (CDS client) registered for a tenant: its JWT issuer and where its keys are.

    One issuer belongs to one tenant: the tenant of every assessment and feedback its
    calls create. Keys are an inline JWKS or the one ``jku`` URL a token may name. The
    service fetches an intake only from one of its registered ``fhir_servers``.
    """

    __tablename__ = "cds_ehr"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenant.name"), index=True)
    iss: Mapped[str] = mapped_column(String(512), unique=True)
    jwks_json: Mapped[bytes | None] = mapped_column(LargeBinary)
    jku: Mapped[str | None] = mapped_column(String(2048))
    created_us: Mapped[int] = mapped_column(BigInteger)
    #: The FHIR base URLs the EHR may name as ``fhirServer`` (a JSON array; NULL: none).
    fhir_servers: Mapped[str | None] = mapped_column(Text)


class CdsUsedJti(Base):
    """A CDS JWT's ``jti``, kept until the token expires: no token is accepted twice.

    In the database, so every node of a deployment refuses a replay seen by another.
    """

    __tablename__ = "cds_used_jti"

    ehr_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)


class CdsCard(Base):
    """A card handed to an EHR, tied to the assessment it shows (for its feedback)."""

    __tablename__ = "cds_card"

    uuid: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    ehr_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    #: The assessment's Bundle id (no foreign key: with storage off no assessment is
    #: kept, yet the card is, for its feedback). Erasing the assessment deletes its cards.
    assessment_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    hook_instance: Mapped[str] = mapped_column(String(255))
    indicator: Mapped[str] = mapped_column(String(16))
    issued_us: Mapped[int] = mapped_column(BigInteger)


class CdsFeedback(Base):
    """One feedback entry an EHR sent about a card (accepted or overridden)."""

    __tablename__ = "cds_feedback"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    card_uuid: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    #: The card's assessment (indexed: erasing it deletes this feedback).
    assessment_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    #: When the user acted (the EHR's ``outcomeTimestamp``; else when it arrived).
    outcome_us: Mapped[int] = mapped_column(BigInteger)
    received_us: Mapped[int] = mapped_column(BigInteger)
    #: The feedback entry as sent (override reason, user comment, accepted suggestions).
    body_json: Mapped[bytes] = mapped_column(LargeBinary)


class IntakeLink(Base):
    """A one-patient, single-use intake link a partner handed out (issue 14).

    The signed URL is the credential; this row says for whom (tenant, client,
    optional patient) the answers are filed, what the browser shows after the
    submission, and whether the link was used (``used_us``, set once, atomically).
    """

    __tablename__ = "intake_link"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenant.name"), index=True)
    #: The API client that created the link (the submission is filed as its).
    client: Mapped[str] = mapped_column(String(ID_LENGTH))
    #: ``Patient/<id>`` the answers are filed under; None = no patient named.
    subject: Mapped[str | None] = mapped_column(String(128))
    #: ``report`` (clinician-facing) or ``thank-you`` (patient-facing).
    show: Mapped[str] = mapped_column(String(16))
    created_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)
    used_us: Mapped[int | None] = mapped_column(BigInteger)
    #: The assessment (Bundle id) the submission produced (indexed: erasing it deletes
    #: this link).
    assessment_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
