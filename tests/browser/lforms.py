"""LHC-Forms (npm ``lforms``), pinned and verified, unpacked into a git-ignored cache.

The npm package carries prebuilt web-component files that load as they are; its
dependencies (Angular and others) are bundled in them. So ``npm pack`` fetches one
tarball (about 13 MB, seconds) instead of ``npm install`` resolving a dependency
tree for minutes, and nothing of the package runs at install time. The tarball is
checked against the registry's integrity hash before anything is unpacked.

``python tests/browser/lforms.py`` fetches it ahead of the tests (``.ci/run`` does);
the browser tests call :func:`ensure` too, which is instant once the cache exists.
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

VERSION = "40.1.3"
#: ``npm view lforms@40.1.3 dist.integrity``
INTEGRITY = (
    "sha512-WLruTm+BcVnafC0rSAQ3/cNqhxvclBUxyBG68aub/"
    "uha2NaK9H8ZZcEXTTuORuGzzCt0wa7fvhuieZtcDIdPzQ=="
)
CACHE = Path(__file__).resolve().parent / ".cache"
ROOT = CACHE / f"lforms-{VERSION}"
#: The files the web component needs (LHC-Forms README, "Using the Web Component").
FILES = (
    "webcomponent/styles.css",
    "webcomponent/assets/lib/zone.min.js",
    "webcomponent/runtime.js",
    "webcomponent/polyfills.js",
    "webcomponent/main.js",
    "webcomponent/down_arrow_gray_10_10.png",
    "webcomponent/magnifying_glass.png",
    "fhir/R4/lformsFHIR.min.js",
)


class LformsUnavailableError(RuntimeError):
    """npm or the registry is missing: the caller decides between skip and fail."""


def _verified(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        tarball.unlink()
        raise RuntimeError(f"{tarball.name} does not match the pinned integrity {INTEGRITY}")


def _unpack(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball) as archive:
        for name in FILES:
            member = archive.getmember(f"package/dist/lforms/{name}")
            source = archive.extractfile(member)
            if source is None:
                raise RuntimeError(f"{name} is not a file in the lforms package")
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read())


def ensure() -> Path:
    """The folder with the LHC-Forms files (fetched and verified on first use)."""
    if all((ROOT / name).is_file() for name in FILES):
        return ROOT
    CACHE.mkdir(exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:  # one fetch across pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((ROOT / name).is_file() for name in FILES):
            return ROOT
        npm = shutil.which("npm")
        if npm is None:
            raise LformsUnavailableError("npm is not on PATH")
        tarball = CACHE / f"lforms-{VERSION}.tgz"
        if not tarball.is_file():
            run = subprocess.run(
                [npm, "pack", f"lforms@{VERSION}", "--pack-destination", str(CACHE)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if run.returncode != 0 or not tarball.is_file():
                raise LformsUnavailableError(
                    f"npm pack lforms@{VERSION} failed: {run.stderr[-500:]}"
                )
        _verified(tarball)
        staging = Path(tempfile.mkdtemp(dir=CACHE))
        _unpack(tarball, staging)
        shutil.rmtree(ROOT, ignore_errors=True)
        staging.rename(ROOT)
    return ROOT


if __name__ == "__main__":
    print(ensure())  # noqa: T201 - a command-line helper reports where the files are
    sys.exit(0)
