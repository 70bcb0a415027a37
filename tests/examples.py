"""The worked cases of ../shared/protocol/examples-1.1, found from this file's location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "examples-1.1"


def load_examples() -> list[tuple[str, dict[str, Any]]]:
    """(name, case) for every example; fails loudly when the folder is missing or empty."""
    paths = sorted(EXAMPLES_DIR.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no worked examples in {EXAMPLES_DIR}")
    return [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


EXAMPLES = load_examples()
EXAMPLE_IDS = [name for name, _ in EXAMPLES]
