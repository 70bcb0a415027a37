"""A pinned npm package: fetched with ``npm pack``, checked against its integrity hash, cached.

Shared by the browser tests' fetchers (``tests/browser/lforms.py``, ``axe.py``) and
``tools/vendor_lforms.py``. ``npm pack`` fetches one tarball and runs nothing of
the package (no install scripts, no dependency tree); the tarball's bytes are
checked against the registry's ``dist.integrity`` before anything is read out of
it. Standard library only: ``.ci/run`` runs the fetchers with the system python3,
before any virtual environment exists.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class NpmUnavailableError(RuntimeError):
    """npm or the registry is missing: the caller decides between skip and fail."""


@dataclass(frozen=True)
class Pin:
    """One npm package at one version, with the registry's integrity hash of its tarball."""

    name: str
    version: str
    #: ``npm view <name>@<version> dist.integrity``
    integrity: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` writes (unscoped packages)."""
        return f"{self.name}-{self.version}.tgz"


def verify(pin: Pin, tarball: Path, *, discard: bool = False) -> None:
    """Raise unless ``tarball`` has the pinned hash; ``discard`` deletes a bad one (a cache's)."""
    algorithm, _, expected = pin.integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        if discard:
            tarball.unlink()
        raise RuntimeError(f"{tarball} does not match the pinned integrity {pin.integrity}")


def pack(pin: Pin, folder: Path) -> Path:
    """``npm pack`` the pinned package into ``folder``; the tarball's path (not yet verified)."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailableError("npm is not on PATH")
    run = subprocess.run(  # noqa: S603 - a fixed command line with a pinned version
        [npm, "pack", pin.spec, "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tarball = folder / pin.tarball
    if run.returncode != 0 or not tarball.is_file():
        raise NpmUnavailableError(f"npm pack {pin.spec} failed: {run.stderr[-500:]}")
    return tarball


def read(pin: Pin, tarball: Path, names: Iterable[str], under: str) -> dict[str, bytes]:
    """The bytes of ``names`` (paths below ``under`` in the package) of a tarball, once verified."""
    verify(pin, tarball)
    out: dict[str, bytes] = {}
    with tarfile.open(tarball) as archive:
        for name in names:
            source = archive.extractfile(archive.getmember(f"{under}{name}"))
            if source is None:
                raise RuntimeError(f"{name} is not a file in the {pin.name} package")
            out[name] = source.read()
    return out


def cached(pin: Pin, cache: Path, names: tuple[str, ...], under: str) -> Path:
    """``cache/<name>-<version>/`` holding ``names`` from the package (fetched on first use).

    Instant once the files are there; otherwise one process at a time (a lock in
    ``cache``, for pytest-xdist workers) packs the tarball unless it is cached,
    verifies it (a bad one is deleted), and unpacks into a staging folder renamed
    into place, so a reader never sees half a folder.
    """
    root = cache / f"{pin.name}-{pin.version}"
    if all((root / name).is_file() for name in names):
        return root
    cache.mkdir(exist_ok=True)
    with (cache / f".{pin.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((root / name).is_file() for name in names):
            return root
        tarball = cache / pin.tarball
        if not tarball.is_file():
            pack(pin, cache)
        verify(pin, tarball, discard=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        for name, data in read(pin, tarball, names, under).items():
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
    return root
