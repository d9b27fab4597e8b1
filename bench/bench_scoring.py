"""Benchmark: how many answer sets per second `score_fast` (the core `score` uses) handles on one core.

Run: .venv/bin/python bench/bench_scoring.py [--n 1000000]
Targets: > 200,000/s for a classic scorecard, > 100,000/s for a 12-line IPA scorecard (KEN-2024 has 12 lines).
Answer sets are generated up front so only scoring is timed.
"""

from __future__ import annotations

import argparse
import random
import time

from scoring.loader import load_scorecard
from scoring.scorecard import Scorecard, score, score_fast

CASES = (("classic", "KEN-2008"), ("per-line", "KEN-2024"))


def answer_sets(card: Scorecard, count: int, seed: int = 7) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    ranges = [len(question.answers) for question in card.questions]
    return [tuple(rng.randint(1, size) for size in ranges) for _ in range(count)]


def rate(card: Scorecard, sets: list[tuple[int, ...]], scorer: object) -> float:
    function = score_fast if scorer == "score_fast" else score
    started = time.perf_counter()
    for answers in sets:
        function(card, answers)
    return len(sets) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="answer sets per scorecard")
    count = parser.parse_args().n
    for kind, scorecard_id in CASES:
        card = load_scorecard(scorecard_id)
        sets = answer_sets(card, count)
        for scorer in ("score_fast", "score"):
            print(
                f"{scorecard_id} ({kind}, {len(card.lines)} lines) {scorer}: {rate(card, sets, scorer):,.0f} surveys/s"
            )


if __name__ == "__main__":
    main()
