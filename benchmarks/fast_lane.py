"""Wall and CPU time of the fast test lane (``pytest -m "not slow"``) of two checkouts, in
interleaved rounds, as a ratio table (the machine is shared: absolute times drift, the ratio
of medians taken in one run is what to read; CPU time, user + system of the pytest process,
is the steadier figure when other jobs load the cores, since a multi-threaded step gets more
of a loaded machine than a single-threaded one).

Usage: python benchmarks/fast_lane.py BEFORE_DIR AFTER_DIR [--rounds 3]
(e.g. BEFORE_DIR from ``git archive <commit> | tar -x -C /tmp/before``). Each checkout runs
with its own code first on ``PYTHONPATH``; real data is found (or skipped) the same way in both.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def lane_seconds(checkout: Path) -> tuple[float, float, str]:
    """``(wall s, CPU s, pytest's summary line)`` of one fast-lane run."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=checkout, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"
    if result.returncode != 0:
        raise SystemExit(f"{checkout}: the fast lane failed: {last}")
    return seconds, cpu, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.after))
    from segedge.cpuinfo import cpu_info

    print(cpu_info().describe())
    wall: dict[str, list[float]] = {"before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for label, checkout in (("before", args.before), ("after", args.after)) if i % 2 == 0 else (("after", args.after), ("before", args.before)):
            seconds, cpu_s, summary = lane_seconds(checkout)
            wall[label].append(seconds)
            cpu[label].append(cpu_s)
            print(f"round {i + 1} {label}: wall {seconds:.1f} s, CPU {cpu_s:.1f} s ({summary})", flush=True)
    print(f"\n| fast lane, median of {args.rounds} rounds | wall s | CPU s | wall vs before | CPU vs before |")
    print("|---|---:|---:|---:|---:|")
    wb, cb = statistics.median(wall["before"]), statistics.median(cpu["before"])
    for label, checkout in (("before", args.before), ("after", args.after)):
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        print(f"| {label} ({checkout}) | {w:.1f} | {c:.1f} | {w / wb:.2f} | {c / cb:.2f} |")


if __name__ == "__main__":
    main()
