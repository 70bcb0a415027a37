"""The clinician report in a real browser: what a clinician sees, prints and can reach (issue 14).

Headless Debian Chromium driven by Selenium with the system chromedriver opens,
for every shared example, the report through the API as a partner would: POST
``/v1/triage`` with the API key to a real loopback server, take the ``Link``
header, open it without any key. It checks the banner, the red flags in the
engine's order, the decisive questions and the unknown answers; saves full-page
screenshots at 390 px (a phone) and 1280 px wide and the printed PDFs under
``tests/browser/artifacts/`` (git-ignored; CI keeps them as artifacts), named
``report-<example>-<width>.png`` and ``report-<example>-<paper>.pdf``; prints
through the browser on A4 and Letter and requires at most 3 pages with the
banner on page 1 and every page's margins naming the patient, the time, the
assessment and "Page N of M" (also for a hostile reference given to the template);
runs axe-core (pinned, ``axe.py``): no serious or critical violation; and shows
that markup and script in ``notes`` and ``activity.type`` stay text (no script
runs, no element is injected, no console error: the CSP blocked nothing because
the page tried nothing), and that bidi controls in them are shown as [U+XXXX]
markers and never reorder the text as laid out.

Without chromium, chromedriver, selenium, pypdf or npm the tests skip with the
reason, except in CI (``CI=true``, as ``.ci/run`` sets), where they fail.
"""

from __future__ import annotations

import base64
import io
import json
import re
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import axe
import headless
import pytest
from examples import EXAMPLE_IDS, EXAMPLES

from api import create_app
from triage import Level, evaluate, wording

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTHS = (390, 1280)
#: Paper sizes in inches (WebDriver print options take centimetres: x 2.54).
PAPERS = {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="alternate"; type="text/html"$')


WHAT = "report browser tests"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    """(base URL, API key) of the app on a loopback port, in a thread of this process."""
    try:
        axe.ensure()
    except axe.AxeUnavailableError as exc:
        headless.unavailable(WHAT, str(exc))
    app = create_app({"TESTING": True})
    with headless.serving(app) as base:
        yield base, app.config["TEST_API_KEY"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through the system chromedriver (no Selenium Manager)."""
    try:
        import pypdf  # noqa: F401, PLC0415 - optional: skip or fail below
    except ImportError as exc:
        headless.unavailable(
            WHAT, f"a test dependency is missing ({exc}); pip install -e '.[test]'"
        )
    with headless.chromium(WHAT, (1280, 900), browser_log=True) as driver:
        yield driver


def report_url(server: tuple[str, str], request: dict[str, Any]) -> str:
    """Triage ``request`` through the API as a partner does; the report URL of its Link."""
    base, key = server
    call = urllib.request.Request(  # noqa: S310 - a loopback URL of this test
        f"{base}/v1/triage",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    with urllib.request.urlopen(call, timeout=30) as response:  # noqa: S310
        assert response.status == 200
        match = LINK.match(response.headers["Link"])
    assert match is not None
    return match["url"]


def set_width(driver: Any, width: int) -> None:
    """Emulate a viewport ``width`` CSS pixels wide (390: a phone)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def full_page_png(driver: Any) -> bytes:
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return [" ".join(e.text.split()) for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def printed(driver: Any, paper: str) -> bytes:
    """The page as Chromium prints it on ``paper`` (its own print pipeline): PDF bytes."""
    from selenium.webdriver.common.print_page_options import PrintOptions  # noqa: PLC0415

    options = PrintOptions()
    width, height = PAPERS[paper]
    options.page_width = width * 2.54
    options.page_height = height * 2.54
    options.background = True
    return base64.b64decode(driver.print_page(options))


@pytest.mark.parametrize("name", EXAMPLE_IDS)
def test_each_example_report_reads_prints_and_passes_axe(server, browser, name):
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    case = dict(EXAMPLES)[name]
    request = case["request"]
    result = evaluate(request)
    assert result.level.code == case["expected"]["level"]
    url = report_url(server, request)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get_log("browser")  # start from an empty console
    for width in WIDTHS:
        set_width(browser, width)
        browser.get(url)
        # What the clinician reads first: the level, its time frame, what to do now.
        assert texts(browser, "#level") == [result.level.display]
        banner = texts(browser, "#banner")[0]
        assert result.level.meaning in banner
        assert "Time frame" in banner
        assert "What to do now" in banner
        assert ("Red-flag screen incomplete" in banner) == bool(result.unanswered)
        # Red flags in the engine's order (most urgent first), each with its evidence.
        flags = texts(browser, "#red-flags .flag-name")
        assert flags == [rule.display for rule in result.rules]
        classes = _classes(browser, "#red-flags > li")
        levels = [Level.from_code(c.removeprefix("level-")) for c in classes]
        assert levels == sorted(levels, reverse=True)
        # Decisive questions: every unknown screen item, with the answer that decides it.
        questions = texts(browser, "#decisive .question")
        assert questions == [wording.question(link_id) for link_id in result.unanswered]
        outcomes = texts(browser, "#decisive .outcome")
        for question, outcome in zip(result.decisive, outcomes, strict=True):
            assert outcome.startswith("If ")
            assert f"→ {question.level.display}" in outcome
        # Unknown answers listed as such (never folded into "no").
        unknown = texts(browser, "#answers-unknown li")
        assert unknown == [wording.label(link_id) for link_id in result.unanswered]
        assert not set(unknown) & set(texts(browser, "#answers-no li"))
        # The script ran under the CSP: the local time is filled, the print button shown.
        assert texts(browser, "#issued")[0].endswith("UTC")
        assert texts(browser, "#issued-local")[0].startswith("your local time")
        assert browser.find_element(By.ID, "print-report").is_displayed()
        # Nothing wider than the screen (no sideways scrolling on a phone).
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} at {width} px scrolls sideways ({scroll} px)"
        (ARTIFACTS / f"report-{name}-{width}.png").write_bytes(full_page_png(browser))
        violations = axe.run_axe(browser)
        assert axe.serious(violations) == [], f"{name} at {width} px"
    assert console_errors(browser) == []
    check_printed(browser, name, result)


def check_printed(browser: Any, name: str, result: Any) -> None:
    """Print the open report on A4 and Letter: at most 3 pages, the banner opening page 1,
    every page naming its patient, time, assessment and number, every rule id there."""
    from pypdf import PdfReader  # noqa: PLC0415

    for paper in PAPERS:
        pdf = printed(browser, paper)
        (ARTIFACTS / f"report-{name}-{paper}.pdf").write_bytes(pdf)
        pages = PdfReader(io.BytesIO(pdf)).pages
        assert 1 <= len(pages) <= 3, f"{name} on {paper}: {len(pages)} pages"
        first = " ".join(pages[0].extract_text().split())
        # Page 1 carries its running head and foot (what identifies every page)...
        first = without_running(first, running(browser, 1, len(pages)))
        # ...and then the banner opens page 1 (its kicker is set in capitals by the stylesheet).
        assert first.upper().startswith(f"TRIAGE LEVEL {result.level.display}".upper()), first
        assert result.level.meaning in first
        # Every page names the patient, the time and the assessment, and its own number:
        # a page separated from the others still finds its patient.
        for number, page in enumerate(pages, start=1):
            without_running(page_text(page), running(browser, number, len(pages)))
        everything = " ".join(" ".join(p.extract_text().split()) for p in pages)
        assert "Print this report" not in everything  # no navigation on paper
        for rule in result.rules:
            assert rule.rule_id in everything


def running(driver: Any, number: int, count: int) -> list[str]:
    """What the margins of printed page ``number`` of ``count`` must say, read from the
    page as the screen shows it: the patient reference (or "not recorded"), the time of
    the assessment, the assessment id and the page number."""
    patient = texts(driver, "#patient-reference") or ["not recorded"]
    return [
        f"Patient record: {patient[0]}",
        f"Assessed {texts(driver, '#issued')[0]}",
        f"Assessment {texts(driver, '#assessment-id')[0]}",
        f"Page {number} of {count}",
    ]


def page_text(page: Any) -> str:
    """A PDF page's text, whitespace collapsed and ligatures undone (the "ff" of a hex id)."""
    return " ".join(unicodedata.normalize("NFKC", page.extract_text()).split())


def without_running(text: str, expected: list[str]) -> str:
    """``text`` less each running head and foot of ``expected``, which must all be there
    (compared without whitespace: PDF text extraction adds or drops spaces at will)."""
    text = unicodedata.normalize("NFKC", text)
    for part in expected:
        spaced = r"\s*".join(re.escape(char) for char in "".join(part.split()))
        text, found = re.subn(spaced, " ", text, count=1)
        assert found == 1, (part, text[:300])
    return " ".join(text.split())


def _classes(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return [
        next(c for c in e.get_attribute("class").split() if c.startswith("level-"))
        for e in driver.find_elements(By.CSS_SELECTOR, selector)
    ]


def test_markup_in_notes_and_activity_is_text_and_no_script_runs(server, browser):
    activity = '<b id="injected-b">skating</b><img src=x onerror="window.pwned=1">'
    notes = (
        '<script>window.pwned=2;alert(1)</script><svg onload="window.pwned=3"></svg>'
        '<iframe id="injected-frame" src="javascript:alert(2)"></iframe> & "quotes"'
    )
    request = {
        "patient": {"age_years": 12},
        "activity": {"type": activity},
        "twitching": {"body_sites": ["calf"]},
        "notes": notes,
    }
    set_width(browser, 1280)
    browser.get_log("browser")
    browser.get(report_url(server, request))
    headless.assert_markup_stayed_text(
        browser, ("#injected-b", "#injected-frame", "main img", "main svg", "main script")
    )
    assert texts(browser, "#activity") == [activity]
    shown = headless.other_answers(browser)
    assert shown["Notes"] == notes
    assert shown["Activity"] == activity
    assert console_errors(browser) == []


def test_a_refused_link_is_an_accessible_page_that_names_nothing(server, browser):
    url = report_url(server, {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}})
    altered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    bundle_id = url.split("/reports/")[1].split("?")[0]
    set_width(browser, 390)
    browser.get(altered)
    assert texts(browser, "h1") == ["Report not available"]
    assert bundle_id not in browser.page_source
    assert axe.serious(axe.run_axe(browser)) == []


#: A patient reference no request may carry (the schema's pattern refuses it), given to
#: the template directly: CSS, markup and a bidi override must all print as text.
HOSTILE_REFERENCE = (
    'Patient/x"; } @page { @top-left { content: "EVIL" } } \\" '
    "</html><script>window.pwned=1</script>\u202egnp.exe"
)


def test_each_printed_page_repeats_a_hostile_reference_as_text_and_the_screen_is_unchanged(
    browser,
):
    """The running head takes the reference through attr(): whatever it holds is a string,
    never CSS; the CSP stays 'self' and the screen shows no running head."""
    import dataclasses  # noqa: PLC0415
    from tempfile import mkdtemp  # noqa: PLC0415

    from pypdf import PdfReader  # noqa: PLC0415

    from api.config import EXTENSION  # noqa: PLC0415
    from api.fhir._tables import shown  # noqa: PLC0415
    from api.pages import page_response  # noqa: PLC0415
    from api.services.reports import build_report  # noqa: PLC0415

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{mkdtemp()}/probe.sqlite3"})

    def probe(bundle_id: str) -> Any:
        from flask import render_template  # noqa: PLC0415

        columns = app.extensions[EXTENSION].store.assessment_columns(bundle_id)
        report = dataclasses.replace(build_report(columns), patient_reference=HOSTILE_REFERENCE)
        return page_response(render_template("report.html", report=report), frame_ancestors=())

    # Under /reports/: a signed-link page path, exempt from the API-key gate like the report.
    app.add_url_rule("/reports/probe/<bundle_id>", view_func=probe)
    with headless.serving(app) as base:
        name, case = max(EXAMPLES, key=lambda example: len(evaluate(example[1]["request"]).rules))
        url = report_url((base, app.config["TEST_API_KEY"]), case["request"])
        bundle_id = url.split("/reports/")[1].split("?")[0]
        set_width(browser, 1280)
        browser.get_log("browser")
        browser.get(f"{base}/reports/probe/{bundle_id}")
        headless.assert_markup_stayed_text(browser, ("main script",))
        expected = shown(HOSTILE_REFERENCE)
        assert texts(browser, "#patient-reference") == [" ".join(expected.split())]
        # The screen shows no running head or page number (only print has margin boxes).
        body = browser.execute_script("return document.body.innerText")
        assert "Patient record: " not in body
        assert "Page 1 of" not in body
        for paper in PAPERS:
            pages = PdfReader(io.BytesIO(printed(browser, paper))).pages
            assert len(pages) >= 2, name
            for number, page in enumerate(pages, start=1):
                text = page_text(page)
                rest = without_running(text, running(browser, number, len(pages)))
                # The head holds the reference whole; nothing else says "EVIL" but page 1's
                # "Patient record" (a rule injected by the value would print it again).
                assert rest.count("EVIL") == (1 if number == 1 else 0), rest[:300]
                assert "\u202e" not in text
        assert console_errors(browser) == []


#: Free text with every kind of bidi control: an override, an embedding, an isolate, marks.
BIDI_NOTES = "dose 10\u202e mg daily\u202c; left\u2067 side\u2069 only\u200f.\u061c\u200e end"
BIDI_ACTIVITY = "roller\u202d skating\u202c \u202bfast\u202c \u2066x\u2069\u2068y\u2069"


def test_bidi_controls_in_free_text_are_shown_as_markers_and_never_reorder_the_text(
    server, browser
):
    """A note with a right-to-left override reads in the order it was written, each control
    visible as [U+XXXX]; the QuestionnaireResponse keeps the text exactly as sent."""
    from api.fhir._tables import BIDI_CONTROLS, shown  # noqa: PLC0415

    request = {
        "patient": {"age_years": 16, "reference": "Patient/bidi-1"},
        "activity": {"type": BIDI_ACTIVITY},
        "twitching": {"body_sites": ["calf"]},
        "notes": BIDI_NOTES,
    }
    set_width(browser, 1280)
    browser.get_log("browser")
    url = report_url(server, request)
    browser.get(url)
    assert texts(browser, "#activity") == [" ".join(shown(BIDI_ACTIVITY).split())]
    given = headless.other_answers(browser)
    assert given["Notes"] == shown(BIDI_NOTES)
    assert given["Activity"] == shown(BIDI_ACTIVITY)
    assert "[U+202E]" in given["Notes"]
    assert "[U+061C]" in given["Notes"]
    page = browser.execute_script("return document.documentElement.outerHTML")
    assert not BIDI_CONTROLS & set(page), "a bidi control reached the page"
    # Each value is isolated from the text around it.
    tags = browser.execute_script(
        "return [document.querySelector('#activity').firstElementChild.tagName,"
        " ...Array.from(document.querySelectorAll('#answers-other dd'),"
        " d => d.firstElementChild && d.firstElementChild.tagName)]"
    )
    assert set(tags) == {"BDI"}, tags
    # As laid out: every character of the note before the next one (same line and to its
    # left, or a later line), as no override acts. Under U+202E "mg daily" would be laid
    # out reversed.
    xs = browser.execute_script(
        """
        const dd = Array.from(document.querySelectorAll('#answers-other > div'))
          .find(d => d.querySelector('dt').textContent === 'Notes').querySelector('dd');
        const node = dd.querySelector('bdi').firstChild, range = document.createRange(), xs = [];
        for (let i = 0; i < node.length; i++) {
          range.setStart(node, i); range.setEnd(node, i + 1);
          const box = range.getBoundingClientRect();
          if (box.width > 0) xs.push([Math.round(box.top), box.left]);
        }
        return xs;
        """
    )
    assert len(xs) > 40
    assert xs == sorted(xs), "the note is not laid out in the order it was written"
    # The stored answers are the request as sent: only the display changed.
    base, key = server
    bundle_id = url.split("/reports/")[1].split("?")[0]
    bundle = _get_json(f"{base}/fhir/Bundle/{bundle_id}", key)
    answers = {
        item["linkId"]: item["answer"][0].get("valueString")
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "QuestionnaireResponse"
        for item in _items(entry["resource"].get("item", []))
    }
    assert answers["notes"] == BIDI_NOTES
    assert answers["activity.type"] == BIDI_ACTIVITY
    assert console_errors(browser) == []


def _get_json(url: str, key: str) -> Any:
    call = urllib.request.Request(  # noqa: S310 - a loopback URL of this test
        url, headers={"Authorization": f"Bearer {key}", "Accept": "application/fhir+json"}
    )
    with urllib.request.urlopen(call, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def _items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if item.get("answer"):
            yield item
        yield from _items(item.get("item", []))
