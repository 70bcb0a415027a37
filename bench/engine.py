"""Benchmark the triage engine alone: median and p99 of ``evaluate``.

Usage: ``python -m bench.engine [--rounds N] [--generated N] [--seed S] [--decisive]``

Two workloads: the shared worked examples, and seeded random requests drawn
from the vocabulary (every optional field omitted, null or given). Each is
timed per call with ``perf_counter_ns``; a baseline measured in the same run,
``json.dumps`` of the same request, turns the figures into ratios that survive
a change of machine. The goal of the engine issue is a median under 50 µs.

Decisive questions are computed on first use (``TriageResult.decisive``);
``--decisive`` times ``evaluate`` plus reading them, as a renderer that shows
them pays. They are memoised per item on the answers their rules read
(``triage.decisive``); ``--cold`` empties that memo before every call, the cost
of a request none of whose questions was seen before. ``--example NAME`` (may
repeat) times only those shared examples.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from triage import evaluate
from triage.decisive import clear_memo
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "examples-1.1"


def load_examples(names: Sequence[str] = ()) -> list[dict[str, Any]]:
    paths = [EXAMPLES_DIR / f"{name}.json" for name in names] or sorted(EXAMPLES_DIR.glob("*.json"))
    if not paths:
        raise SystemExit(f"no examples in {EXAMPLES_DIR}")
    return [json.loads(path.read_text(encoding="utf-8"))["request"] for path in paths]


def _value(item: Item, rng: random.Random) -> Any:
    if item.kind is Kind.BOOLEAN:
        return rng.random() < 0.3  # mostly "no", as in a screened request
    if item.kind is Kind.INTEGER:
        assert item.minimum is not None
        assert item.maximum is not None
        return rng.randint(int(item.minimum), int(min(item.maximum, 400)))
    if item.kind is Kind.DECIMAL:
        assert item.minimum is not None
        assert item.maximum is not None
        return round(rng.uniform(item.minimum, min(item.maximum, 400)), 1)
    if item.kind is Kind.CODE:
        return rng.choice(item.codes).code
    if item.kind is Kind.CODES:
        size = rng.randint(item.min_items or 0, 3)
        return [c.code for c in rng.sample(item.codes, size)]
    if item.kind is Kind.GROUP:
        return [
            {child.name: _value(child, rng) for child in item.children if rng.random() < 0.7}
            | {"class": rng.choice(item.children[0].codes).code}
            for _ in range(rng.randint(0, 2))
        ]
    if item.kind is Kind.REFERENCE:
        return f"Patient/{rng.randint(1, 10**6)}"
    return "free text"


def generated_requests(count: int, seed: int) -> list[dict[str, Any]]:
    """Seeded requests: each optional answer omitted (40%), null (10%) or given."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        request: dict[str, Any] = {}
        for section in SECTIONS:
            if not section.required and rng.random() < 0.1:
                continue
            body = {}
            for item in section.items:
                roll = rng.random()
                if item.required or roll > 0.5:
                    body[item.name] = _value(item, rng)
                elif roll > 0.4:
                    body[item.name] = None
            request[section.name] = body
        for item in TOP_LEVEL_ITEMS:
            if rng.random() < 0.3:
                request[item.name] = _value(item, rng)
        out.append(request)
    return out


def time_calls(fn: Callable[[Any], object], inputs: Sequence[Any], rounds: int) -> list[float]:
    """Per-call wall times in microseconds, ``rounds`` passes over ``inputs``."""
    for item in inputs:  # warm up caches and lazy imports
        fn(item)
    samples: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            for item in inputs:
                start = time.perf_counter_ns()
                fn(item)
                samples.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="passes over the examples")
    parser.add_argument("--generated", type=int, default=5000, help="random requests")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--decisive", action="store_true", help="also compute the decisive questions"
    )
    parser.add_argument(
        "--cold", action="store_true", help="with --decisive: empty their memo before each call"
    )
    parser.add_argument("--example", action="append", default=[], help="only this example")
    args = parser.parse_args(argv)
    engine_call: Callable[[Any], object] = evaluate
    if args.decisive and args.cold:

        def engine_call(request: Any) -> object:
            clear_memo()
            return len(evaluate(request).decisive)

    elif args.decisive:

        def engine_call(request: Any) -> object:
            return len(evaluate(request).decisive)

    workloads = {
        "examples": (load_examples(args.example), args.rounds),
        "generated": (generated_requests(args.generated, args.seed), 3),
    }
    print(f"{'workload':10} {'calls':>7} {'median µs':>10} {'p99 µs':>8} "
          f"{'baseline µs':>12} {'ratio':>6}")  # fmt: skip
    for name, (inputs, rounds) in workloads.items():
        engine = summary(time_calls(engine_call, inputs, rounds))
        baseline = summary(time_calls(json.dumps, inputs, rounds))
        print(
            f"{name:10} {len(inputs) * rounds:7d} {engine[0]:10.1f} {engine[1]:8.1f} "
            f"{baseline[0]:12.1f} {engine[0] / baseline[0]:6.1f}"
        )
    print("goal: engine median under 50 µs; ratio = engine median / json.dumps median")


if __name__ == "__main__":
    main()
