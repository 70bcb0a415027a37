"""The intake page in a real browser: a parent fills it on a phone and the report follows.

Headless Debian Chromium (Selenium, the system chromedriver) opens an intake link
served by the app on a loopback port, with the LHC-Forms files the product ships
(``api/static/lforms``; nothing is fetched). A CDP hook records every
Content-Security-Policy violation from the first byte, so the page's policy is
measured, not assumed. The seed 000 child is entered as the parent described it,
by typing and clicking like a person (numbers and text typed, choices picked
from the renderer's own lists, yes/no clicked); the answers are sent with the
page's own button. Without chromium, chromedriver or selenium the tests skip
with the reason, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import axe
import headless
import orjson
import pytest
from conftest import create_app
from examples import EXAMPLES

from api.config import EXTENSION
from api.routes.intake import LFORMS_STYLE_HASHES
from api.services.links import INTAKE
from api.storage.intake_links import find_link
from triage import wording
from triage.result import Level

SEED = dict(EXAMPLES)["seed-roller-skater-as-asked"]
#: Where the browser tests keep their screenshots (CI artifacts; the report's too).
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PHONE = (390, 844)
#: Installed before any script of the page runs: every CSP violation is kept.
RECORD_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(
  [e.violatedDirective, e.blockedURI, (e.sourceFile || '') + ':' + e.lineNumber]));
"""


WHAT = "browser tests"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, str]]:
    """The app on a loopback port, in a thread of this process: (app, base URL)."""
    app = create_app({"TESTING": True})
    with headless.serving(app) as base:
        yield app, base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium at a phone's width, recording CSP violations."""
    with headless.chromium(WHAT, PHONE) as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP})
        # A phone's viewport (headless windows are at least 500 px wide), as a phone lays out.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True},
        )
        yield driver


def _create_link(app: Any, body: dict[str, Any], base: str) -> dict[str, Any]:
    created = app.test_client().post("/v1/intake-links", json=body)
    assert created.status_code == 201, created.data[:300]
    link = created.get_json()
    link["url"] = link["url"].replace("http://localhost", base)
    return link


def _wait(driver: Any, script: str, timeout: float = 30) -> Any:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _open_form(driver: Any, url: str) -> None:
    driver.get(url)
    _wait(driver, "return document.getElementById('intake-loading').hidden")


def _element(driver: Any, element_id: str) -> Any:
    """The element whose id is ``element_id`` or, inside a group, ends with it."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - optional dependency

    found = driver.find_elements(By.ID, element_id) or driver.find_elements(
        By.CSS_SELECTOR, f'[id$="/{element_id}"]'
    )
    assert found, f"no element {element_id}"
    element = found[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    return element


def _erase(driver: Any, link_id: str) -> None:
    """Empty a field with the keyboard (``clear()`` bypasses the renderer's own model)."""
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415 - optional dependency

    field = _element(driver, f"{link_id}/1")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)


def _type(driver: Any, link_id: str, text: str) -> None:
    _erase(driver, link_id)
    _element(driver, f"{link_id}/1").send_keys(text)


def _choose(driver: Any, link_id: str, *displays: str) -> None:
    """Pick answers from the renderer's own list, typing each one's display text."""
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415 - optional dependency

    field = _element(driver, f"{link_id}/1")
    for display in displays:
        field.click()
        field.send_keys(display)
        field.send_keys(Keys.ENTER)


def _click(driver: Any, link_id: str, value: bool) -> None:
    _element(driver, f"{link_id}/1|{'true' if value else 'false'}").click()


def _fill_seed_child(driver: Any, notes: str, activity: str) -> None:
    """Seed 000 as the parent described it (the 1.1 example's request, and who answered)."""
    _type(driver, "patient.age_years", "11")
    _type(driver, "activity.type", activity)
    _choose(driver, "activity.intensity", "High")
    _type(driver, "activity.session_minutes", "120")
    _type(driver, "activity.sessions_per_week", "7")
    _type(driver, "activity.rest_minutes_per_session", "5")
    _click(driver, "activity.recent_load_increase", True)
    _click(driver, "activity.heavy_sweating", True)
    _choose(driver, "twitching.body_sites", "Neck", "Face")
    _choose(driver, "twitching.timing", "After exercise")
    _type(driver, "twitching.episode_minutes", "120")
    _choose(driver, "twitching.progression", "Stable")
    _type(driver, "history.falls_last_7_days", "5")
    _choose(driver, "respondent", "Parent or carer")
    _type(driver, "notes", notes)


def _texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - optional dependency

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def _send(driver: Any) -> None:
    _element(driver, "intake-submit").click()


def _style_hashes(driver: Any) -> set[str]:
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll('style')).map((s) => s.textContent);"
    )
    return {
        "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        for text in texts
    }


def _no_csp_violations(driver: Any) -> None:
    violations = driver.execute_script("return window.__csp;")
    needed = sorted(f"'{h}'" for h in _style_hashes(driver))
    assert violations == [], (
        f"CSP violations {violations}; LFORMS_STYLE_HASHES for this LHC-Forms: {needed}"
    )
    assert {f"'{h}'" for h in _style_hashes(driver)} <= set(LFORMS_STYLE_HASHES)


def _stored_request(app: Any, bundle_id: str) -> dict[str, Any]:
    columns = app.extensions[EXTENSION].store.assessment_columns(bundle_id)
    assert columns is not None
    return columns


def test_the_parent_fills_the_seed_child_on_a_phone_and_the_result_is_filed(served, browser):
    app, base = served
    link = _create_link(app, {"patient": {"reference": "Patient/seed-000"}}, base)
    _open_form(browser, link["url"])
    assert browser.execute_script("return window.innerWidth") <= PHONE[0]
    # Nothing wider than the phone: no sideways scrolling of the page.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "intake-390.png"))
    _fill_seed_child(browser, SEED["request"]["notes"], SEED["request"]["activity"]["type"])
    # Letters in a number: the form library exports nothing; the page says which answer
    # is wrong instead of posting an empty body ("body is a JSON scalar").
    _erase(browser, "patient.age_years")
    _type(browser, "patient.age_years", "eleven")
    _send(browser)
    invalid = _wait(
        browser,
        "const p = document.getElementById('intake-problems'); return !p.hidden && p.textContent;",
    )
    assert "JSON" not in invalid, invalid
    assert find_link(app.extensions[EXTENSION].store, link["id"]).used_us is None
    # Then the parent forgets the age (a required answer): refused, the link stays usable.
    _erase(browser, "patient.age_years")
    _send(browser)
    problems = _wait(
        browser,
        "const p = document.getElementById('intake-problems'); return !p.hidden && p.textContent;",
    )
    assert "How old is the person, in years?" in problems
    assert "needs an answer" in problems, problems  # plain words, not the schema's
    assert find_link(app.extensions[EXTENSION].store, link["id"]).used_us is None
    _type(browser, "patient.age_years", "11")
    _send(browser)
    _wait(browser, "return location.pathname.startsWith('/reports/')")
    bundle_id = urlsplit(browser.current_url).path.rsplit("/", 1)[1]
    columns = _stored_request(app, bundle_id)
    assert (columns["tenant"], columns["subject"]) == ("local", "Patient/seed-000")
    expected = {**SEED["request"], "respondent": "parent_or_carer"}
    assert orjson.loads(columns["request_json"]) == {
        **expected,
        "patient": {**expected["patient"], "reference": "Patient/seed-000"},
    }
    result = orjson.loads(columns["result_json"])
    assert result["level"] == SEED["expected"]["level"] == "consultation"
    assert result["unanswered"] == SEED["expected"]["unanswered"]
    # The link is used: the page and a replayed submission are refused.
    browser.get(link["url"])
    assert "This link cannot be used" in browser.find_element("tag name", "h1").text
    replay = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/fhir+json'},"
        ' body: \'{"resourceType": "QuestionnaireResponse", "status": "completed"}\'})'
        ".then((r) => done(r.status), (e) => done(String(e)));",
        urlsplit(link["url"]).path + "?" + urlsplit(link["url"]).query,
    )
    assert replay == 404


def test_an_expired_link_is_refused_in_the_browser(served, browser):
    app, base = served
    link = _create_link(app, {}, base)
    state = app.extensions[EXTENSION]
    expired = state.links.sign(INTAKE, link["id"], int(time.time()) - 1)
    browser.get(f"{base}/intake/{link['id']}?{expired.query}")
    assert "This link cannot be used" in browser.find_element("tag name", "h1").text
    assert browser.execute_script("return document.getElementById('intake-form')") is None


def test_the_thank_you_page_follows_a_patient_facing_link(served, browser):
    app, base = served
    link = _create_link(app, {"show": "thank-you"}, base)
    _open_form(browser, link["url"])
    _fill_seed_child(browser, "ok", "skating")
    _send(browser)
    _wait(browser, "return location.pathname === '/intake/thank-you'")
    assert browser.find_element("tag name", "h1").text == "Thank you"
    _no_csp_violations(browser)


def test_the_page_needs_nothing_beyond_its_policy(served, browser):
    """Every answer type entered and sent: no CSP violation at any point."""
    app, base = served
    link = _create_link(app, {"show": "thank-you"}, base)
    _open_form(browser, link["url"])
    _no_csp_violations(browser)
    _fill_seed_child(browser, "notes", "skating")
    _click(browser, "history.medications.any", True)
    _choose(browser, "history.medications.class/1", "ADHD stimulant")
    _click(browser, "history.conditions.any", True)
    _choose(browser, "history.conditions", "Asthma")
    _send(browser)
    _wait(browser, "return location.pathname === '/intake/thank-you'")
    _no_csp_violations(browser)


def test_the_report_after_the_seed_submission_shows_consultation_and_the_next_questions(
    served, browser
):
    """The end of the parent's path: the clinician report of what was just sent."""
    app, base = served
    link = _create_link(app, {"patient": {"reference": "Patient/seed-000-report"}}, base)
    _open_form(browser, link["url"])
    _fill_seed_child(browser, SEED["request"]["notes"], SEED["request"]["activity"]["type"])
    _send(browser)
    _wait(browser, "return location.pathname.startsWith('/reports/')")
    _wait(browser, "return document.getElementById('level')")
    assert _texts(browser, "#level") == [Level.from_code("consultation").display]
    assert "Red-flag screen incomplete" in _texts(browser, "#banner")[0]
    assert _texts(browser, "#decisive .question") == [
        wording.question(link_id) for link_id in SEED["expected"]["unanswered"]
    ]
    assert all(outcome.startswith("If ") for outcome in _texts(browser, "#decisive .outcome"))


def test_markup_typed_into_free_text_fields_appears_as_text(served, browser):
    app, base = served
    activity = '<b id="injected-b">skating</b><img src=x onerror="window.pwned=1">'
    notes = '<script>window.pwned=2;alert(1)</script><svg onload="window.pwned=3"></svg> & "q"'
    link = _create_link(app, {}, base)
    _open_form(browser, link["url"])
    _fill_seed_child(browser, notes, activity)
    assert browser.execute_script("return window.pwned === undefined")
    _send(browser)
    _wait(browser, "return location.pathname.startsWith('/reports/')")
    _wait(browser, "return document.getElementById('level')")
    headless.assert_markup_stayed_text(
        browser, ("#injected-b", "main img", "main svg", "main script")
    )
    assert _texts(browser, "#activity") == [activity]
    assert headless.other_answers(browser)["Notes"] == notes


#: What a parent may type (or paste): an override, an isolate and a mark in free text.
BIDI_NOTES = "worse on the left\u202e side only\u202c, twice\u2067 a day\u2069\u200f."
BIDI_ACTIVITY = "roller\u202d skating\u202c"
#: Every bidi control in a linkId the server echoes when it refuses it.
ALL_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_typed_by_a_parent_are_kept_and_the_report_shows_markers(served, browser):
    """Typed into the form: stored exactly as typed; the report after the submission shows
    each control as a [U+XXXX] marker, in a <bdi>, and no control anywhere."""
    from api.fhir._tables import BIDI_CONTROLS, shown  # noqa: PLC0415

    app, base = served
    link = _create_link(app, {"patient": {"reference": "Patient/bidi-intake"}}, base)
    _open_form(browser, link["url"])
    _fill_seed_child(browser, BIDI_NOTES, BIDI_ACTIVITY)
    _send(browser)
    _wait(browser, "return location.pathname.startsWith('/reports/')")
    _wait(browser, "return document.getElementById('level')")
    bundle_id = urlsplit(browser.current_url).path.rsplit("/", 1)[1]
    kept = orjson.loads(_stored_request(app, bundle_id)["request_json"])
    assert kept["notes"] == BIDI_NOTES
    assert kept["activity"]["type"] == BIDI_ACTIVITY
    assert headless.other_answers(browser)["Notes"] == shown(BIDI_NOTES)
    assert _texts(browser, "#activity bdi") == [shown(BIDI_ACTIVITY)]
    page = browser.execute_script("return document.documentElement.outerHTML")
    assert not BIDI_CONTROLS & set(page)


def test_a_refusal_that_echoes_bidi_controls_lists_them_as_markers(served, browser):
    """A hostile client posts a linkId full of controls; the server's refusal echoes it and
    the page lists it as intake.js shows it: the markers of api.fhir._tables.shown."""
    from api.fhir._tables import BIDI_CONTROLS, shown  # noqa: PLC0415

    app, base = served
    link = _create_link(app, {}, base)
    _open_form(browser, link["url"])
    sent = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": f"notes{ALL_CONTROLS}", "answer": [{"valueString": "x"}]}],
    }
    # The form library's export replaced by the hostile answers; the page's own button sends.
    browser.execute_script("LForms.Util.getFormFHIRData = () => arguments[0];", sent)
    _send(browser)
    _wait(browser, "return !document.getElementById('intake-problems').hidden")
    listed = browser.execute_script(
        "return Array.from(document.querySelectorAll('#intake-problem-list li'),"
        " (li) => [li.textContent, li.getAttribute('dir')]);"
    )
    refused = app.test_client().post(
        urlsplit(link["url"]).path + "?" + urlsplit(link["url"]).query,
        data=orjson.dumps(sent),
        content_type="application/fhir+json",
    )
    echoed = [
        issue["diagnostics"]
        for issue in refused.get_json()["issue"]
        if BIDI_CONTROLS & set(issue["diagnostics"])
    ]
    assert echoed  # the refusal echoes the linkId as it was sent
    texts = [text for text, _ in listed]
    assert not BIDI_CONTROLS & set("".join(texts)), texts
    for diagnostics in echoed:  # each echo listed with its controls as markers
        assert shown(diagnostics) in texts, texts
    assert all(f"[U+{ord(c):04X}]" in shown(echoed[0]) for c in ALL_CONTROLS)
    assert {direction for _, direction in listed} == {"auto"}
    _no_csp_violations(browser)


def test_the_intake_pages_pass_axe(served, browser):
    """axe-core (WCAG 2.x A/AA and best practices): no serious or critical violation."""
    try:
        axe.ensure()
    except axe.AxeUnavailableError as exc:
        headless.unavailable(WHAT, str(exc))
    app, base = served
    link = _create_link(app, {"show": "thank-you"}, base)
    _open_form(browser, link["url"])
    assert axe.serious(axe.run_axe(browser)) == [], "intake form"
    _fill_seed_child(browser, "notes", "skating")
    _erase(browser, "patient.age_years")
    _send(browser)
    _wait(browser, "return !document.getElementById('intake-problems').hidden")
    assert axe.serious(axe.run_axe(browser)) == [], "intake form with problems listed"
    _type(browser, "patient.age_years", "11")
    _send(browser)
    _wait(browser, "return location.pathname === '/intake/thank-you'")
    assert axe.serious(axe.run_axe(browser)) == [], "thank-you page"
    browser.get(link["url"])
    assert axe.serious(axe.run_axe(browser)) == [], "refused link page"
