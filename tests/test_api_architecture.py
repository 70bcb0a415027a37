"""The layers import only in the directions ARCHITECTURE.md allows.

triage → nothing of ours; schemas → triage; api/fhir → triage, schemas (no Flask);
api/storage → api/fhir, schemas, triage (no Flask); api/services → api/storage,
api/fhir, schemas, triage (no Flask); api/routes → api/services and
the HTTP edge, never another route module; the served package never imports dev
tools (tools/, tests/, bench/). Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("triage", "schemas", "api", "tools", "tests", "bench")
WEB = ("flask", "werkzeug", "gunicorn")
DEV = ("tools", "tests", "bench")


def _imports(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports (``from a.b import c`` gives a.b and
    a.b.c, since c may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(folder: str) -> dict[str, set[str]]:
    found = {
        str(path.relative_to(ROOT)): _imports(path)
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    assert found, f"no modules under {folder}"
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(folder: str, allowed: tuple[str, ...], forbidden: tuple[str, ...] = ()):
    """Imports of our packages outside ``allowed``, and any import within ``forbidden``."""
    bad = {}
    for path, names in _modules(folder).items():
        wrong = sorted(
            name
            for name in names
            if (_within(name, OURS) and not _within(name, allowed)) or _within(name, forbidden)
        )
        if wrong:
            bad[path] = wrong
    return bad


@pytest.mark.parametrize(
    ("folder", "allowed", "forbidden"),
    [
        ("triage", ("triage",), (*WEB, "marshmallow", "fhir")),
        ("schemas", ("schemas", "triage"), WEB),
        ("api/fhir", ("api.fhir", "schemas", "triage"), WEB),
        # Storage sits below the services (issue 10): models, repository, records.
        ("api/storage", ("api.storage", "api.fhir", "schemas", "triage"), WEB),
        ("api/services", ("api.services", "api.storage", "api.fhir", "schemas", "triage"), WEB),
        (
            "api/routes",
            ("api.services", "api.http", "api.negotiation"),
            (),
        ),
        ("api", ("api", "schemas", "triage"), ()),
    ],
)
def test_import_directions(folder, allowed, forbidden):
    assert _violations(folder, allowed, forbidden) == {}


def test_no_route_module_imports_another():
    for path, names in _modules("api/routes").items():
        assert not [name for name in names if _within(name, ("api.routes",))], path


def test_the_checker_sees_a_violation(tmp_path):
    # Guard against a checker that can never fail: a planted bad import is reported.
    module = tmp_path / "bad.py"
    module.write_text("from flask import request\nimport api.routes.triage\n", encoding="utf-8")
    names = _imports(module)
    assert _within("flask.request", WEB)
    assert {"flask", "api.routes.triage"} <= names


def test_dev_tools_are_not_in_the_served_package():
    for dev in ("api/openapi.py", "api/fhir/contract.py", "api/fhir/conformance.py"):
        assert not (ROOT / dev).exists(), dev
    assert (ROOT / "tools" / "openapi.py").exists()
    assert (ROOT / "tests" / "support" / "conformance.py").exists()
