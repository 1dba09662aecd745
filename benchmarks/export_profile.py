"""Export cost and where ONNX Runtime spends its time: network ops vs the unpool rewrite.

For a checkpoint (default: the embedded segnet-dsc) exported in both unpool forms
(``--target tensorrt``: standard ops; ``--target onnxruntime``: MaxUnpool), prints the export
time, the end-to-end median latency in ONNX Runtime (CPU, batch 1, input size of the
checkpoint) and, per op type of each form, the median time per inference and its share,
grouped into the network's own ops (Conv, Relu, BatchNormalization, MaxPool, Q/DQ, layout
reorders) and the ops of the unpool. Also times `segedge export` of a `segnet`.

    python benchmarks/export_profile.py [--checkpoint CKPT] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from segedge.onnx.export import export_onnx
from segedge.models.checkpoint import Checkpoint, load_checkpoint
from segedge.data.transforms import PreprocessConfig
from segedge.models.registry import create_model

NETWORK_OPS = {"Conv", "Relu", "BatchNormalization", "MaxPool", "QuantizeLinear", "DequantizeLinear", "ReorderInput", "ReorderOutput"}


def profile(path: Path, batch: np.ndarray, runs: int) -> tuple[dict[str, list[float]], float]:
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: batch})
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, {name: batch})
    wall = (time.perf_counter() - start) * 1000 / runs
    trace = json.loads(Path(session.end_profiling()).read_text())
    per_run: dict[str, list[float]] = defaultdict(lambda: [0.0] * (runs + 10))
    run_index = -1
    for event in trace:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            run_index += 1
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and run_index >= 0:
            per_run[event["args"]["op_name"]][run_index] += event["dur"] / 1000
    return {op: values[10:] for op, values in per_run.items()}, wall


def latency(path: Path, batch: np.ndarray, runs: int) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: batch})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: batch})
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def op_table(title: str, per_op: dict[str, list[float]]) -> Table:
    medians = {op: float(np.median(v)) for op, v in per_op.items()}
    total = sum(medians.values())
    table = Table(title=title)
    for column in ("group", "op", "ms / inference", "share"):
        table.add_column(column, justify="left" if column in ("group", "op") else "right")
    groups = {"network": 0.0, "unpool": 0.0}
    for op, ms in sorted(medians.items(), key=lambda kv: -kv[1]):
        group = "network" if op in NETWORK_OPS else "unpool"
        groups[group] += ms
        table.add_row(group, op, f"{ms:.2f}", f"{100 * ms / total:.1f}%")
    for group, ms in groups.items():
        table.add_row(f"[b]{group}[/b]", "all", f"{ms:.2f}", f"{100 * ms / total:.1f}%")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    work = Path(tempfile.mkdtemp(prefix="segedge-profile-"))
    console = Console(width=200)
    batch = np.random.default_rng(0).random((1, 3, *ckpt.preprocess.size), dtype=np.float32)
    summary = Table(title=f"{ckpt.model_name}: export and ONNX Runtime latency (CPU, batch 1, median of {args.runs})")
    for column in ("target", "export s", "nodes", "latency ms", "vs tensorrt form"):
        summary.add_column(column, justify="left" if column == "target" else "right")
    baseline = None
    for target in ("tensorrt", "onnxruntime"):
        start = time.perf_counter()
        result = export_onnx(ckpt, work / f"{target}.onnx", target=target)
        export_s = time.perf_counter() - start
        median_ms = latency(result.path, batch, args.runs)
        baseline = baseline or median_ms
        summary.add_row(target, f"{export_s:.1f}", str(result.nodes), f"{median_ms:.2f}", f"{baseline / median_ms:.2f}x")
        per_op, _ = profile(result.path, batch, args.runs)
        console.print(op_table(f"{target} form, per op type (ONNX Runtime profiler)", per_op))
    start = time.perf_counter()
    segnet = Checkpoint(create_model("segnet").eval(), "segnet", PreprocessConfig())
    export_onnx(segnet, work / "segnet.onnx")
    segnet_s = time.perf_counter() - start
    console.print(summary)
    console.print(f"export of segnet (15.3M parameters, tensorrt form, with checks): {segnet_s:.1f} s")


if __name__ == "__main__":
    main()
