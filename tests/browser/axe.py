"""axe-core (npm ``axe-core``), pinned and verified, and :func:`run_axe` for any page.

Like ``lforms.py``: ``npm pack`` fetches one tarball, checked against the
registry's integrity hash before ``axe.min.js`` is taken out of it into the
git-ignored cache; nothing of the package runs at install time. ``.ci/run``
calls ``python tests/browser/axe.py`` ahead of the tests; :func:`ensure` is
instant once the cache exists.

:func:`run_axe` injects the script into the page the Selenium driver shows
(WebDriver's script injection is not subject to the page's CSP, so the page
keeps its strict policy) and returns axe's violations; :func:`serious` keeps the
serious and critical ones, which the browser tests require to be none.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "4.14.1"
#: ``npm view axe-core@4.14.1 dist.integrity``
INTEGRITY = (
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76A"
    "SyFNNtuFooJpZe37OgudVGtQ=="
)
CACHE = Path(__file__).resolve().parent / ".cache"
SCRIPT = CACHE / f"axe-core-{VERSION}" / "axe.min.js"
#: The rule sets run: WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best practices.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice")


class AxeUnavailableError(RuntimeError):
    """npm or the registry is missing: the caller decides between skip and fail."""


def _verified(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        tarball.unlink()
        raise RuntimeError(f"{tarball.name} does not match the pinned integrity {INTEGRITY}")


def ensure() -> Path:
    """The path of ``axe.min.js`` (fetched and verified on first use)."""
    if SCRIPT.is_file():
        return SCRIPT
    CACHE.mkdir(exist_ok=True)
    with (CACHE / ".axe.lock").open("w") as lock:  # one fetch across pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if SCRIPT.is_file():
            return SCRIPT
        npm = shutil.which("npm")
        if npm is None:
            raise AxeUnavailableError("npm is not on PATH")
        tarball = CACHE / f"axe-core-{VERSION}.tgz"
        if not tarball.is_file():
            run = subprocess.run(
                [npm, "pack", f"axe-core@{VERSION}", "--pack-destination", str(CACHE)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if run.returncode != 0 or not tarball.is_file():
                raise AxeUnavailableError(
                    f"npm pack axe-core@{VERSION} failed: {run.stderr[-500:]}"
                )
        _verified(tarball)
        staging = Path(tempfile.mkdtemp(dir=CACHE))
        with tarfile.open(tarball) as archive:
            source = archive.extractfile(archive.getmember("package/axe.min.js"))
            if source is None:
                raise RuntimeError("axe.min.js is not a file in the axe-core package")
            (staging / "axe.min.js").write_bytes(source.read())
        shutil.rmtree(SCRIPT.parent, ignore_errors=True)
        staging.rename(SCRIPT.parent)
    return SCRIPT


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
