"""The worked cases of PROTOCOL.md 1.1 (../shared/protocol/examples-1.1).

The oracle tests read them here rather than through ``tests/examples.py``, which
the engine switches to 1.1 on its own branch; a second loader avoids a conflict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "protocol" / "examples-1.1"


def load_examples() -> list[tuple[str, dict[str, Any]]]:
    """(name, case) for every example; fails loudly when the folder is missing or empty."""
    paths = sorted(EXAMPLES_DIR.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no worked examples in {EXAMPLES_DIR}")
    return [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


EXAMPLES = load_examples()
EXAMPLE_IDS = [name for name, _ in EXAMPLES]
