"""The code style gate runs inside the test command, so CI and newcomers get it too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff_is_clean(args):
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


FORBIDDEN_IN_ENGINE = {"flask", "werkzeug", "fhir", "marshmallow", "api", "schemas"}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_imports_neither_flask_nor_fhir():
    """triage/ is pure Python by design: no web, schema or FHIR imports."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN_IN_ENGINE)
        for path in sorted((ROOT / "triage").rglob("*.py"))
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}
    assert offenders, "no engine modules found"
