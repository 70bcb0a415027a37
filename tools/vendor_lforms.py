"""Refresh the LHC-Forms files the intake page serves (``api/static/lforms/<version>/``).

    python -m tools.vendor_lforms            # fetch the pinned package, verify, copy
    python -m tools.vendor_lforms --check    # exit 1 when the vendored files differ

Why vendored, not fetched at run time or from a CDN: the intake page must work on
a machine without network after ``pip install .`` (issue 14), and a page that
loads scripts from elsewhere widens its Content-Security-Policy. The files are
the prebuilt web component of the npm package ``lforms`` (its dependencies are
bundled in them) plus its licence; they ship as package data of ``api``. This
tool fetches one tarball with ``npm pack``, checks it against the registry's
integrity hash before anything is unpacked, and copies exactly :data:`FILES`.
The pin is the one ``tests/browser/lforms.py`` uses (a test checks they agree and
that the vendored bytes are the verified package's).
"""

from __future__ import annotations

import argparse
import base64
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
ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "api" / "static" / "lforms" / VERSION
#: Path in the package (under ``package/dist/lforms/``) → the same path under TARGET:
#: the web component files the LHC-Forms README lists, the R4 FHIR support, the images
#: its stylesheet names, and the licence.
FILES = (
    "webcomponent/styles.css",
    "webcomponent/assets/lib/zone.min.js",
    "webcomponent/runtime.js",
    "webcomponent/polyfills.js",
    "webcomponent/main.js",
    "webcomponent/down_arrow_gray_10_10.png",
    "webcomponent/magnifying_glass.png",
    "fhir/R4/lformsFHIR.min.js",
    "LICENSE.md",
)


def verified(tarball: Path) -> None:
    """Raise unless ``tarball`` has the pinned integrity hash."""
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise RuntimeError(f"{tarball} does not match the pinned integrity {INTEGRITY}")


def package_files(tarball: Path) -> dict[str, bytes]:
    """The bytes of :data:`FILES` in a verified tarball."""
    verified(tarball)
    out: dict[str, bytes] = {}
    with tarfile.open(tarball) as archive:
        for name in FILES:
            source = archive.extractfile(archive.getmember(f"package/dist/lforms/{name}"))
            if source is None:
                raise RuntimeError(f"{name} is not a file in the lforms package")
            out[name] = source.read()
    return out


def fetch(folder: Path) -> Path:
    """``npm pack lforms@VERSION`` into ``folder``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH")
    subprocess.run(  # noqa: S603 (a fixed command line with a pinned version)
        [npm, "pack", f"lforms@{VERSION}", "--pack-destination", str(folder)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return folder / f"lforms-{VERSION}.tgz"


def differences(files: dict[str, bytes]) -> list[str]:
    """Names whose vendored copy is missing or differs from the package's bytes."""
    return [name for name, data in files.items() if _read(TARGET / name) != data]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--tarball", type=Path, help="an already fetched lforms tarball")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        tarball = args.tarball or fetch(Path(folder))
        files = package_files(tarball)
    changed = differences(files)
    if args.check:
        for name in changed:
            print(f"differs: {name}")  # noqa: T201 (a command-line report)
        return 1 if changed else 0
    shutil.rmtree(TARGET.parent, ignore_errors=True)  # older versions go
    for name, data in files.items():
        destination = TARGET / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
    print(f"{len(files)} files of lforms {VERSION} in {TARGET}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
