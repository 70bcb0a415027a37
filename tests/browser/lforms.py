"""LHC-Forms (npm ``lforms``), pinned and verified, unpacked into a git-ignored cache.

The npm package carries prebuilt web-component files that load as they are; its
dependencies (Angular and others) are bundled in them. So ``npm pack`` fetches one
tarball (about 13 MB, seconds) instead of ``npm install`` resolving a dependency
tree for minutes, and nothing of the package runs at install time. The tarball is
checked against the registry's integrity hash before anything is unpacked
(``tools/npm_pack.py``, shared with ``tools/vendor_lforms.py`` and ``axe.py``).

``python tests/browser/lforms.py`` fetches it ahead of the tests (``.ci/run`` does);
the browser tests call :func:`ensure` too, which is instant once the cache exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from tools import npm_pack, vendor_lforms
except ImportError:  # run as a script (``.ci/run``): the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tools import npm_pack, vendor_lforms

#: The product's pin (``tools/vendor_lforms.py``): the tests render what the page ships.
PIN = vendor_lforms.PIN
VERSION = PIN.version
INTEGRITY = PIN.integrity
CACHE = Path(__file__).resolve().parent / ".cache"
#: The web component's files (LHC-Forms README, "Using the Web Component"), the
#: R4 FHIR support and the licence: those the product vendors.
FILES = vendor_lforms.FILES
LformsUnavailableError = npm_pack.NpmUnavailableError


def ensure() -> Path:
    """The folder with the LHC-Forms files (fetched and verified on first use)."""
    return npm_pack.cached(PIN, CACHE, FILES, vendor_lforms.UNDER)


if __name__ == "__main__":
    print(ensure())  # noqa: T201 - a command-line helper reports where the files are
    sys.exit(0)
