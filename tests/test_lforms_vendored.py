"""The LHC-Forms files the intake page serves are the pinned, verified npm package's.

``api/static/lforms/<version>/`` is written by ``tools/vendor_lforms.py``; the
browser tests' pin (``tests/browser/lforms.py``) must be the same version, and
every vendored byte must equal the tarball whose integrity hash is pinned.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from api.routes.intake import LFORMS_VERSION
from tools import vendor_lforms

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import lforms  # the browser tests' pinned fetcher (found through the path above)


def test_one_pin_for_the_page_the_tool_and_the_browser_tests():
    assert LFORMS_VERSION == vendor_lforms.VERSION == lforms.VERSION
    assert vendor_lforms.INTEGRITY == lforms.INTEGRITY
    assert vendor_lforms.TARGET.name == LFORMS_VERSION


def test_the_vendored_files_are_the_verified_packages_and_carry_its_licence():
    try:
        lforms.ensure()  # fetches and verifies the tarball on first use (npm pack)
    except lforms.LformsUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lforms package unavailable in CI: {exc}")
        pytest.skip(f"lforms package unavailable (CI=true makes this a failure): {exc}")
    tarball = lforms.CACHE / f"lforms-{lforms.VERSION}.tgz"
    files = vendor_lforms.package_files(tarball)  # raises unless the hash matches
    assert vendor_lforms.differences(files) == []
    assert "LICENSE.md" in files
    shipped = {
        str(path.relative_to(vendor_lforms.TARGET))
        for path in vendor_lforms.TARGET.rglob("*")
        if path.is_file()
    }
    assert shipped == set(vendor_lforms.FILES)
