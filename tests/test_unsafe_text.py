"""Control characters and unpaired surrogates are refused like any bad value, never a 500.

Found by a black-box battery (2026-11-28): a lone surrogate (``\\ud800``) or a NUL
(``\\u0000``) in a JWT claim read before the signature is checked, in a CDS Hooks
field or feedback entry, or in a search value reached the database as it was.
UTF-8 cannot encode a lone surrogate and PostgreSQL text cannot hold NUL, so the
request failed with a 500, some without any credential, and a CDS call had stored
its assessment before failing. Each case runs on SQLite and a real PostgreSQL.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from cds_support import (
    FEEDBACK,
    HOST,
    SERVICE,
    TENANT,
    call,
    hook_request,
    intake_for,
    registered_ehr,  # noqa: F401 (the ehr fixture)
)
from conftest import anonymous
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from storage_support import app_on_each_backend  # noqa: F401 (the app fixture: both backends)
from test_auth_smart import RSA_KEY, assertion, jwks_of, token_request

from api.auth.clients import create_client
from api.config import EXTENSION
from schemas import unsafe_values

#: A lone surrogate (never UTF-8) and a NUL (never PostgreSQL text), inside a value.
UNSAFE = {"surrogate": "a\ud800b", "nul": "a\u0000b"}
INTAKE = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def key(app: Flask, tenant: str = TENANT) -> dict[str, str]:
    created = create_client(app.extensions[EXTENSION].clients, tenant=tenant)
    return {"Authorization": f"Bearer {created.api_key}"}


def smart_client_id(app: Flask) -> str:
    """A client whose SMART key signs test_auth_smart's assertions."""
    jwks = jwks_of(RSA_KEY, "rsa-1", "RS384")
    clients = app.extensions[EXTENSION].clients
    return create_client(
        clients, tenant="smart", scopes=["system/Observation.rs"], jwks=jwks
    ).client_id


def outcome(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.data[:500]
    body = json.loads(response.data)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def stored_for(app: Flask, patient: str) -> int:
    found = anonymous(app).get(f"/fhir/QuestionnaireResponse?subject=Patient/{patient}",
                               headers=key(app))  # fmt: skip
    assert found.status_code == 200, found.data[:300]
    return len(found.json.get("entry", []))


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize("claim", ["iss", "jti"])
@pytest.mark.parametrize("path", [SERVICE, FEEDBACK])
def test_an_ehr_token_with_an_unusable_claim_is_401(app, ehr, claim, text, path):
    token = ehr.token(HOST + path, claims={claim: text})
    body = hook_request("p1", None) if path == SERVICE else {"feedback": []}
    [issue] = outcome(call(anonymous(app), ehr, body, path=path, token=token), 401)
    assert issue["code"] == "login"


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize("claim", ["iss", "jti"])
def test_a_client_assertion_with_an_unusable_claim_is_401(app, claim, text):
    signed = assertion(smart_client_id(app), **{claim: text})
    response = token_request(anonymous(app), signed)
    assert response.status_code == 401, response.data[:300]
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize(
    ("edit", "expression"),
    [
        (lambda b, t: b.update(hookInstance=t), "hookInstance"),
        (lambda b, t: b["context"].update(userId=t), "context.userId"),
        (lambda b, t: b.update(extension={"x": t}), "extension.x"),
    ],
    ids=["hookInstance", "userId", "extension"],
)
def test_an_unusable_hook_field_is_400_and_nothing_is_stored(app, ehr, text, edit, expression):
    client = anonymous(app)
    patient = f"u-{uuid.uuid4().hex[:8]}"
    # Rendered by /v1/triage with the local tenant's key: stored there, not in TENANT.
    body = hook_request(patient, intake_for(app.test_client(), INTAKE, patient))
    edit(body, text)
    issues = outcome(call(client, ehr, body), 400)
    assert [expression] in [issue.get("expression") for issue in issues]
    assert stored_for(app, patient) == 0
    edit(body, "fine")  # the same call with a usable value: stored, a card
    assert call(client, ehr, body).status_code == 200
    assert stored_for(app, patient) == 1


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize(
    ("entry", "expression"),
    [
        ({"userComment": "{t}"}, "feedback[0].userComment"),
        ({"card": "{t}"}, "feedback[0].card"),
        ({"overrideReason": {"reason": {"code": "{t}"}}}, "feedback[0].overrideReason.reason.code"),
        ({"note{t}": 1}, 'feedback[0]["note\\u0000"]'),
    ],
)
def test_an_unusable_feedback_field_is_400_naming_it(app, ehr, text, entry, expression):
    filled = json.loads(json.dumps(entry).replace("{t}", json.dumps(text)[1:-1]))
    body = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", **filled}]}
    issues = outcome(call(anonymous(app), ehr, body, path=FEEDBACK), 400)
    paths = [issue.get("expression", [""])[0] for issue in issues]
    if expression.startswith('feedback[0]["note'):  # the key itself, as an escaped segment
        assert any(path.startswith('feedback[0]["note') for path in paths), paths
    else:
        assert expression in paths


@pytest.mark.parametrize(
    ("resource", "parameter"),
    [("Observation", "code"), ("AuditEvent", "subtype")],
)
def test_a_search_value_with_a_nul_is_400_naming_the_parameter(app, resource, parameter):
    for value in ("a\u0000b", "sys\u0000|c", "a\u0001b"):
        response = anonymous(app).get(
            f"/fhir/{resource}?{parameter}={quote(value)}", headers=key(app)
        )
        [issue] = outcome(response, 400)
        assert issue["expression"] == [f"http.{parameter}"]


_JSON_KEYS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc",)), max_size=8)
_SAFE_TREES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _JSON_KEYS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(_SAFE_TREES, st.sampled_from(["\u0000", "\u001f", "\ud800", "\udfff", "\u007f"]))
def test_the_walk_finds_an_unsafe_character_wherever_it_is(tree: Any, bad: str) -> None:
    assert list(unsafe_values(tree)) == []
    for wrapped in ({"deep": [tree, {"k": f"x{bad}"}]}, {"deep": [tree, {f"k{bad}": 1}]}):
        found = list(unsafe_values(wrapped))
        assert len(found) == 1, found
        assert found[0][0].startswith("deep[1]")


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_a_date_claim_given_as_a_string_is_401(app, ehr, claim):
    """RFC 7519: NumericDates are JSON numbers; PyJWT alone takes a string of digits."""
    now = int(time.time())
    value = str(now + 60 if claim == "exp" else now)
    token = ehr.token(HOST + SERVICE, claims={claim: value})
    [issue] = outcome(call(anonymous(app), ehr, hook_request("p1", None), token=token), 401)
    assert claim in issue["diagnostics"]
    signed = assertion(smart_client_id(app), **{claim: value})
    response = token_request(anonymous(app), signed)
    assert response.status_code == 401, response.data[:300]
    assert claim in response.get_json()["error_description"]


# --- found by fuzzing the same day: values the decoder takes but orjson cannot write ------


BIG = "18446744073709551616"  # 2**64: Python reads it exactly; orjson cannot write it
#: Bodies the strict decoder reads (a lone surrogate; a colon sends every body there).
ODD_V1 = [
    '{"notes": "\\ud800"}',
    '{"notes": "a:b", "x": ' + BIG + "}",
]
ODD_QR = '{"resourceType": "QuestionnaireResponse", "status": "completed", "id": "\\ud800"}'
JSON_TYPE = {"Content-Type": "application/json"}
FHIR_TYPE = {"Content-Type": "application/fhir+json"}


@pytest.mark.parametrize("body", ODD_V1)
def test_an_idempotent_triage_of_an_odd_body_is_the_same_422_as_without_a_key(app, body):
    client = app.test_client()
    plain = client.post("/v1/triage", data=body, headers=JSON_TYPE)
    keyed = client.post("/v1/triage", data=body, headers={**JSON_TYPE, "Idempotency-Key": "k1"})
    assert plain.status_code == keyed.status_code == 422, keyed.data[:300]
    assert keyed.json["issue"] == plain.json["issue"]
    qr = client.post("/fhir/QuestionnaireResponse/$triage", data=ODD_QR,
                     headers={**FHIR_TYPE, "Idempotency-Key": "k2"})  # fmt: skip
    outcome(qr, 422)


def test_a_cds_intake_with_an_odd_value_is_the_triage_422(app, ehr):
    patient = f"o-{uuid.uuid4().hex[:8]}"
    for odd in ('"\\ud800"', BIG):
        body = hook_request(patient, {"resourceType": "QuestionnaireResponse",
                                      "status": "completed", "authored": "2026-11-27T10:00:00Z",
                                      "subject": {"reference": f"Patient/{patient}"},
                                      "id": "ODD"})  # fmt: skip
        raw = json.dumps(body).replace('"ODD"', odd)
        token = ehr.token(HOST + SERVICE)
        response = anonymous(app).post(
            SERVICE, data=raw, headers={**JSON_TYPE, "Authorization": f"Bearer {token}"}
        )
        outcome(response, 422)
    assert stored_for(app, patient) == 0


@pytest.mark.parametrize("number", ["9223372036854775808", "-9223372036854775809", BIG])
def test_a_cursor_beyond_64_bits_is_a_400(app, number):
    import base64  # noqa: PLC0415

    cursor = base64.urlsafe_b64encode(f"a|{number}|x".encode()).decode().rstrip("=")
    for resource in ("Observation", "QuestionnaireResponse", "AuditEvent"):
        response = anonymous(app).get(f"/fhir/{resource}?_cursor={cursor}", headers=key(app))
        [issue] = outcome(response, 400)
        assert issue["expression"] == ["http._cursor"]


@pytest.mark.parametrize("server", ["http://[", "https://[::1", "http://]x"])
def test_a_fhir_server_that_is_no_url_is_a_400(app, ehr, server):
    body = hook_request("p1", None, fhirServer=server)
    issues = outcome(call(anonymous(app), ehr, body), 400)
    assert ["fhirServer"] in [issue.get("expression") for issue in issues]


def test_feedback_with_an_integer_beyond_64_bits_is_a_400_naming_it(app, ehr):
    entry = {
        "card": str(uuid.uuid4()),
        "outcome": "accepted",
        "extension": {"n": "BIG"},
        "outcomeTimestamp": "2026-11-27T10:00:00Z",
    }  # a colon: the strict decoder reads it
    raw = json.dumps({"feedback": [entry]}).replace('"BIG"', BIG)
    token = ehr.token(HOST + FEEDBACK)
    response = anonymous(app).post(
        FEEDBACK, data=raw, headers={**JSON_TYPE, "Authorization": f"Bearer {token}"}
    )
    issues = outcome(response, 400)
    assert ["feedback[0].extension.n"] in [issue.get("expression") for issue in issues]


def test_an_authored_that_is_no_date_time_never_reaches_the_card(app, ehr):
    """A malformed authored is refused as $triage refuses it (422 naming it), never shown;
    a FHIR dateTime is shown on the card."""
    patient = f"a-{uuid.uuid4().hex[:8]}"
    intake = intake_for(app.test_client(), INTAKE, patient)
    intake["authored"] = "\u0000\u0007 not a date"
    refused = call(anonymous(app), ehr, hook_request(patient, intake))
    assert refused.status_code == 422, refused.data[:300]
    assert any(
        "authored" in expression
        for issue in refused.json["issue"]
        for expression in issue.get("expression", [])
    )
    diagnostics = " ".join(issue.get("diagnostics", "") for issue in refused.json["issue"])
    assert "\u0007" not in diagnostics  # the value is echoed escaped (as repr shows it)
    intake["authored"] = "2026-11-27T10:00:00Z"
    response = call(anonymous(app), ehr, hook_request(patient, intake))
    assert response.status_code == 200, response.data[:300]
    assert "Intake completed" in response.json["cards"][0]["detail"]  # (markdown-escaped date)
