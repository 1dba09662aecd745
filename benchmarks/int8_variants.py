"""Is an INT8 variant as fast as the one it replaces? Latency of artifacts side by side, as ratios.

Times each artifact on the runtime ``--backend auto`` gives it on a CPU (a tensorrt-form INT8
ONNX: OpenVINO when installed; other ONNX: ONNX Runtime) at batch 1 on real Pet test photos, in
interleaved rounds (artifact A, B, C, A, B, C, ...) so that a noisy neighbour slows all of them
alike, and prints the median over rounds of each round's p50 with its ratio to the first
artifact. Used for docs/benchmarks.md, "QAT": post-training INT8 against the QAT and the
``--min-agreement`` (one FP16 layer) variants of the same export.

    python benchmarks/int8_variants.py A.onnx B.onnx [C.onnx ...] [--rounds 5] [--runs 40] [--size 320x576]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

PET = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "oxford-iiit-pet-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    parser.add_argument("--runs", type=int, default=40, help="timed calls per artifact per round, after 5 untimed")
    parser.add_argument("--size", default=None, help="input HxW (default: each model's contract size); e.g. 320x576 for a 16:9 frame")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from segedge.cpuinfo import cpu_info
    from segedge.data.samples import DataSpec, iter_samples
    from segedge.data.transforms import preprocess
    from segedge.runtime.factory import load_runner

    if not PET.is_dir():
        raise SystemExit(f"{PET} is missing (set SEGEDGE_SHARED_DATA)")
    runners = [load_runner(path) for path in args.artifacts]
    config = runners[0].preprocess_config
    size = tuple(int(v) for v in args.size.split("x")) if args.size else tuple(config.size)
    photos = [sample.image for sample in iter_samples(DataSpec(PET, "test", limit=8))]
    batches = [preprocess(photo, config, size=size) for photo in photos]
    p50 = np.empty((args.rounds, len(runners)))
    for r in range(args.rounds):
        for k, runner in enumerate(runners):
            for i in range(5):
                runner.infer(batches[i % len(batches)])
            times = np.empty(args.runs)
            for i in range(args.runs):
                start = time.perf_counter()
                runner.infer(batches[i % len(batches)])
                times[i] = (time.perf_counter() - start) * 1000
            p50[r, k] = np.median(times)
    median = np.median(p50, axis=0)
    console = Console(width=160)
    console.print(f"CPU: {cpu_info().describe()}; {os.cpu_count()} cores; batch 1 at {size[0]}x{size[1]}, {args.rounds} interleaved "
                  f"rounds of {args.runs} calls")
    table = Table()
    for column in ("artifact", "runtime", "p50 ms (median of rounds)", "min / max round p50", f"ratio to {args.artifacts[0].name}"):
        table.add_column(column)
    for k, runner in enumerate(runners):
        table.add_row(args.artifacts[k].name, str(runner.backend), f"{median[k]:.2f}", f"{p50[:, k].min():.2f} / {p50[:, k].max():.2f}",
                      f"{median[k] / median[0]:.3f}")
    console.print(table)
    for runner in runners:
        runner.close()


if __name__ == "__main__":
    main()
