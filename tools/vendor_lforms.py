"""Refresh the LHC-Forms files the intake page serves (``api/static/lforms/<version>/``).

    python -m tools.vendor_lforms            # fetch the pinned package, verify, copy
    python -m tools.vendor_lforms --check    # exit 1 when the vendored files differ

Why vendored, not fetched at run time or from a CDN: the intake page must work on
a machine without network after ``pip install .`` (issue 14), and a page that
loads scripts from elsewhere widens its Content-Security-Policy. The files are
the prebuilt web component of the npm package ``lforms`` (its dependencies are
bundled in them) plus its licence; they ship as package data of ``api``. This
tool fetches one tarball with ``npm pack``, checks it against the registry's
integrity hash before anything is unpacked (``tools/npm_pack.py``), and copies
exactly :data:`FILES`. ``tests/browser/lforms.py`` takes its pin and files from
here (a test checks that the vendored bytes are the verified package's).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tools import npm_pack

PIN = npm_pack.Pin(
    "lforms",
    "40.1.3",
    # ``npm view lforms@40.1.3 dist.integrity``
    "sha512-WLruTm+BcVnafC0rSAQ3/cNqhxvclBUxyBG68aub/"
    "uha2NaK9H8ZZcEXTTuORuGzzCt0wa7fvhuieZtcDIdPzQ==",
)
VERSION = PIN.version
INTEGRITY = PIN.integrity
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
#: Where :data:`FILES` are in the package.
UNDER = "package/dist/lforms/"


def package_files(tarball: Path) -> dict[str, bytes]:
    """The bytes of :data:`FILES` in a tarball; raises unless it has the pinned hash."""
    return npm_pack.read(PIN, tarball, FILES, UNDER)


def fetch(folder: Path) -> Path:
    """``npm pack lforms@VERSION`` into ``folder``; the tarball's path."""
    return npm_pack.pack(PIN, folder)


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
