"""What every HTML page of the product answers with: strict security headers.

Pages (the clinician report, the intake form) are opened by browsers from a
signed link, sometimes inside an EHR's iframe. They load only the product's own
scripts and styles (no CDN, no inline script), may be framed only by the
configured origins, are never cached (they carry patient data) and never send
their URL (which holds the link's signature) to another site.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Response

from api.fhir._tables import shown

#: Content-Security-Policy directives shared by every page; ``frame-ancestors`` is added
#: per deployment. ``style-src`` may be widened by a page that needs it (LHC-Forms).
BASE_POLICY: dict[str, str] = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
}


def content_security_policy(
    frame_ancestors: Iterable[str], overrides: dict[str, str] | None = None
) -> str:
    """The CSP header value: the base policy, ``overrides`` and the framing origins."""
    directives = {**BASE_POLICY, **(overrides or {})}
    origins = " ".join(frame_ancestors)
    directives["frame-ancestors"] = origins or "'none'"
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def page_response(
    html: str,
    *,
    frame_ancestors: Iterable[str],
    status: int = 200,
    csp_overrides: dict[str, str] | None = None,
) -> Response:
    """An HTML page with the product's security headers."""
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(frame_ancestors, csp_overrides)
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    frame_origins = list(frame_ancestors)
    if not frame_origins:
        headers["X-Frame-Options"] = "DENY"  # for browsers that predate frame-ancestors
    return response


def install(app: Flask) -> None:
    """The pages' Jinja filter ``shown``: free text with every bidi control as a visible
    marker (:func:`api.fhir._tables.shown`, the one mapping the FHIR narratives use too)."""
    app.add_template_filter(shown, "shown")


__all__ = ["BASE_POLICY", "content_security_policy", "install", "page_response"]
