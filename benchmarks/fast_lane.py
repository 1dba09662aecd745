"""Wall time of the fast test lane (``pytest -m "not slow"``) of two checkouts, in interleaved
rounds, as a ratio table (the machine is shared: absolute times drift, the ratio of medians
taken in one run is what to read).

Usage: python benchmarks/fast_lane.py BEFORE_DIR AFTER_DIR [--rounds 3]
(e.g. BEFORE_DIR from ``git archive <commit> | tar -x -C /tmp/before``). Each checkout runs
with its own code first on ``PYTHONPATH``; real data is found (or skipped) the same way in both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def lane_seconds(checkout: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=checkout, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"
    if result.returncode != 0:
        raise SystemExit(f"{checkout}: the fast lane failed: {last}")
    return seconds, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.after))
    from segedge.cpuinfo import cpu_info

    print(cpu_info().describe())
    times: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for label, checkout in (("before", args.before), ("after", args.after)) if i % 2 == 0 else (("after", args.after), ("before", args.before)):
            seconds, summary = lane_seconds(checkout)
            times[label].append(seconds)
            print(f"round {i + 1} {label}: {seconds:.1f} s ({summary})", flush=True)
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"\n| fast lane | median s over {args.rounds} rounds | vs before |")
    print("|---|---:|---:|")
    print(f"| before ({args.before}) | {before:.1f} | 1.00 |")
    print(f"| after ({args.after}) | {after:.1f} | {after / before:.2f} ({100 * (1 - after / before):.0f}% faster) |")


if __name__ == "__main__":
    main()
