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
banner on page 1; runs axe-core (pinned, ``axe.py``): no serious or critical
violation; and shows that markup and script in ``notes`` and ``activity.type``
stay text (no script runs, no element is injected, no console error: the CSP
blocked nothing because the page tried nothing).

Without chromium, chromedriver, selenium, pypdf or npm the tests skip with the
reason, except in CI (``CI=true``, as ``.ci/run`` sets), where they fail.
"""

from __future__ import annotations

import base64
import io
import json
import re
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
    from pypdf import PdfReader  # noqa: PLC0415
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
    for paper in PAPERS:
        pdf = printed(browser, paper)
        (ARTIFACTS / f"report-{name}-{paper}.pdf").write_bytes(pdf)
        pages = PdfReader(io.BytesIO(pdf)).pages
        assert 1 <= len(pages) <= 3, f"{name} on {paper}: {len(pages)} pages"
        first = " ".join(pages[0].extract_text().split())
        # The banner opens page 1 (its kicker is set in capitals by the stylesheet).
        assert first.upper().startswith(f"TRIAGE LEVEL {result.level.display}".upper()), first
        assert result.level.meaning in first
        everything = " ".join(" ".join(p.extract_text().split()) for p in pages)
        assert "Print this report" not in everything  # no navigation on paper
        for rule in result.rules:
            assert rule.rule_id in everything


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
