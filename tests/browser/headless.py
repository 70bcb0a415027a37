"""What every browser test sets up: headless Debian Chromium and the app on a loopback port.

One place for the driver (the system chromedriver, never Selenium Manager, which
would download a browser) and for the rule that a missing browser, driver or
package skips on a developer machine with the reason but fails in CI
(``CI=true``, as ``.ci/run`` sets): CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def unavailable(what: str, reason: str) -> NoReturn:
    """Fail in CI, skip (with the reason) on a developer machine; ``what`` names the tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} unavailable in CI: {reason}")
    pytest.skip(f"{what} unavailable (CI=true makes this a failure): {reason}")


@contextmanager
def chromium(what: str, window: tuple[int, int], *, browser_log: bool = False) -> Iterator[Any]:
    """A headless Chromium driver with a ``window`` (width, height); quit however the tests end.

    ``browser_log`` keeps the page's console messages for ``driver.get_log("browser")``.
    """
    try:
        from selenium import webdriver  # noqa: PLC0415 - optional: skip or fail below
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError as exc:
        unavailable(what, f"selenium is not installed ({exc}); pip install -e '.[test]'")
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            unavailable(what, f"{path} is missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def serving(wsgi: Any) -> Iterator[str]:
    """``wsgi`` on a loopback port, in a thread of this process: its base URL."""
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def assert_markup_stayed_text(driver: Any, injected: tuple[str, ...]) -> None:
    """No alert is open, no injected handler set ``window.pwned``, no ``injected`` element exists.

    The pages' shared check that free text holding markup and script was shown
    as text (``injected``: CSS selectors of what the markup would have created).
    """
    from selenium.common.exceptions import NoAlertPresentException  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check
    assert driver.execute_script("return window.pwned === undefined"), "an injected script ran"
    for selector in injected:
        assert driver.find_elements(By.CSS_SELECTOR, selector) == [], selector


def other_answers(driver: Any) -> dict[str, str]:
    """The report's "other answers" list, label → text as shown."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return {
        e.find_element(By.TAG_NAME, "dt").text: e.find_element(By.TAG_NAME, "dd").text
        for e in driver.find_elements(By.CSS_SELECTOR, "#answers-other > div")
    }
