"""axe-core (npm ``axe-core``), pinned and verified, and :func:`run_axe` for any page.

Like ``lforms.py`` (``tools/npm_pack.py``): ``npm pack`` fetches one tarball,
checked against the registry's integrity hash before ``axe.min.js`` is taken out
of it into the git-ignored cache; nothing of the package runs at install time. ``.ci/run``
calls ``python tests/browser/axe.py`` ahead of the tests; :func:`ensure` is
instant once the cache exists.

:func:`run_axe` injects the script into the page the Selenium driver shows
(WebDriver's script injection is not subject to the page's CSP, so the page
keeps its strict policy) and returns axe's violations; :func:`serious` keeps the
serious and critical ones, which the browser tests require to be none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from tools import npm_pack
except ImportError:  # run as a script (``.ci/run``): the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tools import npm_pack

PIN = npm_pack.Pin(
    "axe-core",
    "4.14.1",
    # ``npm view axe-core@4.14.1 dist.integrity``
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76A"
    "SyFNNtuFooJpZe37OgudVGtQ==",
)
VERSION = PIN.version
INTEGRITY = PIN.integrity
CACHE = Path(__file__).resolve().parent / ".cache"
#: The rule sets run: WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best practices.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice")
AxeUnavailableError = npm_pack.NpmUnavailableError


def ensure() -> Path:
    """The path of ``axe.min.js`` (fetched and verified on first use)."""
    return npm_pack.cached(PIN, CACHE, ("axe.min.js",), "package/") / "axe.min.js"


def run_axe(driver: Any, context: str = "document") -> list[dict[str, Any]]:
    """axe's violations on the page ``driver`` shows now (``context``: a JS expression)."""
    source = ensure().read_text(encoding="utf-8")
    driver.execute_script(source)
    result = driver.execute_async_script(
        f"""
        const done = arguments[arguments.length - 1];
        axe.run({context}, {{runOnly: {{type: "tag", values: {list(TAGS)!r}}}}})
          .then(r => done({{violations: r.violations}}))
          .catch(e => done({{error: String(e)}}));
        """
    )
    if "error" in result:
        raise RuntimeError(f"axe-core failed: {result['error']}")
    return result["violations"]


def serious(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical violations, one readable line each (rule, impact, nodes)."""
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in violations
        if v.get("impact") in ("serious", "critical")
    ]


if __name__ == "__main__":
    print(ensure())  # noqa: T201 - a command-line helper reports where the file is
    sys.exit(0)
