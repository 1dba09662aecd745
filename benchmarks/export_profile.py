"""Where ONNX Runtime spends its time in an exported model: network ops vs the unpool rewrite.

Exports a checkpoint (default: the embedded segnet-dsc), runs it in ONNX Runtime with
profiling on (batch 1 at the checkpoint's input size), and prints, per op type, the median
time per inference and its share, grouped into the network's own ops (Conv, Relu,
BatchNormalization, MaxPool values) and the ops of the exact max-unpool rewrite. Also
prints the export time and the end-to-end median latency without profiling.

    python benchmarks/export_profile.py [--checkpoint CKPT | --model segnet] [--runs 200]
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

from segedge.export.onnx import export_onnx
from segedge.models.checkpoint import Checkpoint, load_checkpoint
from segedge.data.transforms import PreprocessConfig
from segedge.models.registry import create_model

NETWORK_OPS = {"Conv", "Relu", "BatchNormalization", "MaxPool", "QuantizeLinear", "DequantizeLinear"}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--model", default=None, help="profile a freshly initialised registry model instead")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if args.model:
        ckpt = Checkpoint(create_model(args.model).eval(), args.model, PreprocessConfig())
    else:
        ckpt = load_checkpoint(args.checkpoint)
    work = Path(tempfile.mkdtemp(prefix="segedge-profile-"))
    start = time.perf_counter()
    result = export_onnx(ckpt, work / "model.onnx")
    export_s = time.perf_counter() - start
    batch = np.random.default_rng(0).random((1, 3, *ckpt.preprocess.size), dtype=np.float32)
    median_ms = latency(result.path, batch, args.runs)
    per_op, _ = profile(result.path, batch, args.runs)

    medians = {op: float(np.median(v)) for op, v in per_op.items()}
    total = sum(medians.values())
    table = Table(title=f"{ckpt.model_name}: ONNX Runtime CPU, batch 1, {ckpt.preprocess.width}x{ckpt.preprocess.height}, median of {args.runs} runs")
    for column in ("group", "op", "ms / inference", "share"):
        table.add_column(column, justify="left" if column in ("group", "op") else "right")
    groups = {"network": 0.0, "unpool rewrite": 0.0}
    for op, ms in sorted(medians.items(), key=lambda kv: -kv[1]):
        group = "network" if op in NETWORK_OPS else "unpool rewrite"
        groups[group] += ms
        table.add_row(group, op, f"{ms:.2f}", f"{100 * ms / total:.1f}%")
    for group, ms in groups.items():
        table.add_row(f"[b]{group}[/b]", "all", f"{ms:.2f}", f"{100 * ms / total:.1f}%")
    console = Console()
    console.print(table)
    console.print(
        f"export: {export_s:.1f} s ({result.nodes} nodes); end-to-end median latency without profiling: "
        f"{median_ms:.2f} ms; sum of node medians {total:.2f} ms"
    )


if __name__ == "__main__":
    main()
