"""A real SDC renderer completes the intake Questionnaire and ``$triage`` agrees with /v1/triage.

LHC-Forms (npm ``lforms``, pinned in ``lforms.py``) runs in headless Debian Chromium
driven by Selenium with the system chromedriver: nothing is downloaded at run
time but the pinned, hash-checked lforms tarball on first use. The app and the
LHC-Forms files are served from one loopback server. Per shared example the
browser loads the Questionnaire from the app, renders it with
``LForms.Util.addFormToPage``, and is filled: every yes/no answer, and the "none"
of a list, by clicking the renderer's own radio buttons; numbers, codes and text
merged with ``LForms.Util.mergeFHIRDataIntoLForms``. The renderer exports the
QuestionnaireResponse (``LForms.Util.getFormFHIRData``) and posts it to
``$triage`` itself; level, rules and unanswered screen items must equal those of
``/v1/triage`` for the same request, and the form must keep every answer.

Without chromium, chromedriver, selenium or npm the tests skip with the reason,
except in CI (``CI`` set, as ``.ci/run`` does), where they fail.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import headless
import lforms
import pytest
from examples import EXAMPLES
from werkzeug.middleware.shared_data import SharedDataMiddleware

from api import create_app
from api.fhir import codesystems as cs
from api.fhir import questionnaire_response_to_request
from api.fhir.questionnaire_response import GATES

HERE = Path(__file__).resolve().parent
OP = "/fhir/QuestionnaireResponse/$triage"
UNANSWERED = "unanswered-screen-item"
#: Shared examples filled in the browser: a head impact whose medications are "none",
#: a self-care case, one with most of the screen unknown, and an ambulance case.
NAMES = (
    "skater-head-impact-concussion",
    "runner-calf-fasciculation",
    "seed-roller-skater-as-asked",
    "cyclist-chest-pain",
)


WHAT = "browser round trip"


def _cases() -> list[tuple[str, dict[str, Any]]]:
    by_name = dict(EXAMPLES)
    cases = [(name, by_name[name]["request"]) for name in NAMES if name in by_name]
    assert len(cases) >= 3, f"shared examples missing: {set(NAMES) - set(by_name)}"
    # The "none" of conditions too: the self-care runner with no conditions at all.
    runner = copy.deepcopy(by_name["runner-calf-fasciculation"]["request"])
    runner.setdefault("history", {})["conditions"] = []
    cases.append(("runner-calf-fasciculation+no-conditions", runner))
    return cases


CASES = _cases()


#: The API key of the app under test (issue 11), put into the page's fetch.
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The app and the LHC-Forms files on one loopback port, in a thread of this process."""
    try:
        files = lforms.ensure()
    except lforms.LformsUnavailableError as exc:
        headless.unavailable(WHAT, str(exc))
    app = create_app({"TESTING": True})
    KEY["value"] = app.config["TEST_API_KEY"]  # the page calls $triage as a partner app would
    wsgi = SharedDataMiddleware(app, {"/_lforms": str(files), "/_page": str(HERE)})
    with headless.serving(wsgi) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through the system chromedriver (no Selenium Manager)."""
    with headless.chromium(WHAT, (1400, 1000)) as driver:
        yield driver


# --- what a person enters, as answers to the form ---------------------------------------


def _form_answers(emitted: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """(items to merge into the form, yes/no clicks) for the answers of one request.

    ``emitted`` is the QuestionnaireResponse ``/v1/triage`` made of the request: the
    answers themselves. Yes/no answers become clicks. An empty list ("none") is not
    entered as an empty item, which no renderer can produce, but as a click on "No"
    of the yes/no question that opens it; a listed member needs "Yes" first.
    """
    merged: list[dict[str, Any]] = []
    clicks: list[tuple[str, bool]] = []
    gate_of = {list_id: gate for gate, list_id in GATES.items()}
    opened: set[str] = set()
    for item in emitted.get("item", []):
        link_id = item["linkId"]
        answers = item.get("answer", [])
        if answers and "valueBoolean" in answers[0]:
            clicks.append((link_id, answers[0]["valueBoolean"]))
            continue
        if link_id in gate_of:
            listed = bool(answers or item.get("item"))
            if not listed:
                clicks.append((gate_of[link_id], False))
                continue
            if link_id not in opened:  # the yes must be in place before the list renders
                merged.append({"linkId": gate_of[link_id], "answer": [{"valueBoolean": True}]})
                opened.add(link_id)
        merged.append(item)
    return merged, clicks


_RENDER = (
    """
const [answers, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const t0 = Date.now();
  while (!(window.LForms && LForms.Util && LForms.Util.addFormToPage)) {
    if (Date.now() - t0 > 30000) throw new Error('LHC-Forms did not load');
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = '/fhir/Questionnaire/__ID__';
  const fetched = await fetch(url, {headers: {Accept: 'application/fhir+json'}});
  const questionnaire = await fetched.json();
  let form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, 'R4');
  form = await LForms.Util.mergeFHIRDataIntoLForms('QuestionnaireResponse', answers, form, 'R4');
  await LForms.Util.addFormToPage(form, 'intake');
  return LForms.lformsVersion;
})().then(done, (e) => done('ERROR ' + e));
"""
).replace("__ID__", cs.QUESTIONNAIRE_ID)

_EXPORT_AND_POST = (
    """
const done = arguments[arguments.length - 1];
(async () => {
  const qr = LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', 'intake');
  const response = await fetch('__OP__', {
    method: 'POST',
    headers: {'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json',
              Authorization: 'Bearer __KEY__'},
    body: JSON.stringify(qr),
  });
  return {qr: qr, status: response.status, bundle: await response.json()};
})().then(done, (e) => done({error: String(e)}));
"""
).replace("__OP__", OP)


def _click(driver: Any, link_id: str, value: bool) -> None:
    """Click the renderer's own Yes or No of a yes/no question."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - optional dependency

    label = driver.find_element(By.ID, f"{link_id}/1|{'true' if value else 'false'}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", label)
    label.click()


def _summary(bundle: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(level, rule ids, unanswered screen items) of a result Bundle."""
    resources = [entry["resource"] for entry in bundle["entry"]]
    level_obs = resources[1]
    level = next(
        c["code"]
        for c in level_obs["valueCodeableConcept"]["coding"]
        if c["system"].endswith("/CodeSystem/triage-level")
    )
    rules = [
        c["code"]
        for r in resources[2:]
        for c in r["code"]["coding"]
        if c["system"].endswith("/CodeSystem/red-flag-rule")
    ]
    unanswered = [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in level_obs.get("component", [])
        if c["code"]["coding"][0]["code"] == UNANSWERED
    ]
    return level, rules, unanswered


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _without_nulls(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in cleaned.items() if v != {}}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize(("name", "request_"), CASES, ids=[name for name, _ in CASES])
def test_lforms_fills_exports_and_triage_agrees(base_url, browser, client, name, request_):
    direct = client.post("/v1/triage", json=request_)
    assert direct.status_code == 200, direct.data[:500]
    merged, clicks = _form_answers(direct.json["entry"][0]["resource"])

    browser.get(f"{base_url}/_page/page.html")
    version = browser.execute_async_script(
        _RENDER,
        {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": merged},
    )
    assert version == lforms.VERSION, version
    for link_id, value in clicks:
        _click(browser, link_id, value)
    result = browser.execute_async_script(_EXPORT_AND_POST.replace("__KEY__", KEY["value"]))
    assert "error" not in result, result
    exported = result["qr"]

    assert result["status"] == 200, result["bundle"]
    assert exported["resourceType"] == "QuestionnaireResponse"
    assert exported["meta"]["tag"] == [{"code": f"lformsVersion: {lforms.VERSION}"}]
    assert _summary(result["bundle"]) == _summary(direct.json), name
    # The renderer kept every answer: the form reads back as the request (the form
    # preselects the documented default sex "unknown", the same as leaving it out).
    expected = _without_nulls(copy.deepcopy(request_))
    expected["patient"].setdefault("sex", "unknown")
    assert questionnaire_response_to_request(exported) == expected
    # "None" came from the renderer's own No, never from an empty item it cannot send.
    top = {item["linkId"]: item for item in exported.get("item", [])}
    for gate, list_id in GATES.items():
        section, key = list_id.split(".")
        if request_.get(section, {}).get(key) == []:
            assert top[gate]["answer"] == [{"valueBoolean": False}], gate
            assert list_id not in top
