"""Intake links and the intake page (issue 14).

``POST /v1/intake-links`` (API key, scope ``system/QuestionnaireResponse.c``, the
same as ``$triage``: the link lets its holder submit one QuestionnaireResponse)
creates a link. The browser side authenticates by the signed link alone (the
identity gate exempts these views): ``GET /intake/<id>`` serves the page,
``POST /intake/<id>`` triages what the page posts and answers 303 to the signed
clinician report or to ``/intake/thank-you``. The work is in
:mod:`api.services.intake`; pages get their security headers from
:func:`api.http.page_response`.
"""

from __future__ import annotations

import time

import orjson
from flask import Blueprint, Response, g, render_template, request

from api.http import (
    Call,
    app_state,
    audited,
    audits_failures,
    exchange,
    fhir_endpoint,
    page_response,
)
from api.negotiation import require_fhir_json_content_type, require_json_content_type
from api.services import NotFoundError
from api.services.intake import (
    AUDITED_REFUSALS,
    URGENT_NOW,
    URGENT_PARAMETER,
    IntakeDeployment,
    audit_failed_intake,
    create_intake_link,
    intake_questionnaire,
    open_intake_link,
    submit_intake,
)

blueprint = Blueprint("intake", __name__)

#: The LHC-Forms version the page loads (``api/static/lforms/<version>``, see
#: ``tools/vendor_lforms.py``).
LFORMS_VERSION = "40.1.3"
#: What LHC-Forms needs beyond the base page policy, measured in Chromium: its Angular
#: components add 7 ``<style>`` elements as they are created, nothing else (no style
#: attributes, no eval, no other origin). Those elements are allowed by the hashes of
#: their text, not by ``'unsafe-inline'``, so an injected ``<style>`` stays blocked and
#: ``style`` attributes stay refused (``style-src 'self'``). The hashes belong to
#: :data:`LFORMS_VERSION`: tests/browser/test_intake_page.py fills the whole form,
#: fails on any CSP violation and prints the hashes a new version needs.
LFORMS_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-FLLl8zyOwuzbM1blEinZG4xjsJMfmQuYS6piFvpOzLw='",
    "'sha256-Frjv995smslfo0RpVcErySo0s7fwb21hASry8mikBzg='",
    "'sha256-M9IEr/TdvUEXJLvEfMpbqf0I4cz5ZC+q4ejGpD5yMjY='",
    "'sha256-teW0xCYm9YfANky1P/bLDnY5XjNfitaudnkelaqvSl0='",
    "'sha256-tlDW9o9sBpg4ycKbsBAI+CMqQHXvBK4Z5ibSteYjhLs='",
    "'sha256-xhbXRMwXsHwr0yNrRJx5xl8mEPOSis6hPcDcC8CBONk='",
)
LFORMS_CSP = {"style-src-elem": " ".join(("'self'", *LFORMS_STYLE_HASHES))}


def _deployment() -> IntakeDeployment:
    state = app_state()
    return IntakeDeployment(
        store=state.store,
        signer=state.links,
        context=state.fhir,
        keep=state.settings.store_assessments,
        report_link_seconds=state.settings.report_link_seconds,
        client_active=state.clients.is_active,
    )


def _base() -> str:
    """Where browsers reach this API: the configured public URL, else this request's host."""
    return app_state().settings.public_base_url or request.host_url.rstrip("/")


def _page(template: str, status: int = 200, **context: object) -> Response:
    html = render_template(template, lforms=f"lforms/{LFORMS_VERSION}", **context)
    return page_response(
        html,
        status=status,
        frame_ancestors=app_state().settings.frame_ancestors,
        csp_overrides=LFORMS_CSP if template == "intake/page.html" else None,
    )


@blueprint.post("/v1/intake-links")
@fhir_endpoint(body=require_json_content_type)
def create_link(call: Call) -> Response:
    """Create a one-patient, single-use intake link; 201 with its URL and expiry."""
    created = create_intake_link(
        _deployment(), exchange(), call.payload, base=_base(), now_s=int(time.time())
    )
    audited()
    return Response(
        orjson.dumps(created.as_json()),
        status=201,
        content_type="application/json",
        headers={"Location": created.url},
    )


@blueprint.get("/intake/thank-you")
def thank_you() -> Response:
    """The patient-facing end of a submission: no result, no data, but what to do now
    when the answers were of an emergency level (``?act=ambulance|emergency``)."""
    urgent = request.args.get(URGENT_PARAMETER)
    return _page("intake/thank_you.html", act=urgent if urgent in URGENT_NOW.values() else None)


@blueprint.get("/intake/<link_id>")
def page(link_id: str) -> Response:
    """The intake form of a valid link, or a refusal page that says nothing more."""
    try:
        open_intake_link(
            _deployment(),
            exchange(),
            link_id=link_id,
            expires=request.args.get("expires"),
            signature=request.args.get("signature"),
            now_s=int(time.time()),
        )
    except NotFoundError:
        audited()  # the use case audited the refused link
        return _page("intake/refused.html", status=404)
    return _page(
        "intake/page.html",
        questionnaire=intake_questionnaire(app_state().fhir),
        submit_url=f"{request.path}?{request.query_string.decode('ascii', 'replace')}",
    )


@blueprint.post("/intake/<link_id>")
@fhir_endpoint(body=require_fhir_json_content_type)
def submit(call: Call, link_id: str) -> Response:
    """Triage the page's QuestionnaireResponse; 303 to the report or the thank-you page."""
    try:
        submitted = submit_intake(
            _deployment(),
            exchange(),
            link_id=link_id,
            expires=request.args.get("expires"),
            signature=request.args.get("signature"),
            body=call.payload,
            base=_base(),
            now_s=int(time.time()),
        )
    except AUDITED_REFUSALS:
        audited()  # the use case audited its refusal
        raise
    g.triage_outcome = submitted.outcome  # counted in the levels-issued metric
    return Response(status=303, headers={"Location": submitted.location})


def _audit_failure(action: str, status: int) -> None:
    """A page or submission that failed before or beyond its use case (a body refused at
    the edge, a server failure), audited as the link's browser when the link holds."""
    audit_failed_intake(
        _deployment(),
        exchange(),
        action,
        status,
        link_id=str((request.view_args or {}).get("link_id", "")),
        expires=request.args.get("expires"),
        signature=request.args.get("signature"),
        now_s=int(time.time()),
    )


@audits_failures("intake.page")
def _audit_failed_page(status: int) -> None:
    _audit_failure("read", status)


@audits_failures("intake.submit")
def _audit_failed_submission(status: int) -> None:
    _audit_failure("create", status)
