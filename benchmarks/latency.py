"""Latency of every deployed variant of the embedded model, in one run, as ratios.

Exports the embedded segnet-dsc (or --checkpoint) to FP32, FP16 and INT8 ONNX, then times
PyTorch eager and ONNX Runtime on the same real images (batch 1 and 8, after warm-up) and
prints p50 / p99 in ms and the p50 ratio against PyTorch eager. The machines are shared and
noisy: read the ratios, which are taken in one run, rather than absolute numbers.

    python benchmarks/latency.py [--checkpoint CKPT] [--runs 100] [--threads 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from segedge.calibration.dataset import calibration_set_from_arrays
from segedge.calibration.quantize import quantize_int8
from segedge.data.demo import camera_motion_frames, demo_image
from segedge.onnx.fp16 import convert_fp16
from segedge.onnx.export import export_onnx
from segedge.models.checkpoint import load_checkpoint
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner


def time_runner(runner, batch: np.ndarray, runs: int, warmup: int = 10) -> np.ndarray:
    for _ in range(warmup):
        runner.infer(batch)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        runner.infer(batch)
        times[i] = (time.perf_counter() - start) * 1000
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the embedded segnet-dsc")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model and batch size")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    frames = list(camera_motion_frames(demo_image(), frames=16))
    work = Path(tempfile.mkdtemp(prefix="segedge-bench-"))
    fp32 = export_onnx(ckpt, work / "fp32.onnx").path
    fp16 = convert_fp16(fp32, work / "fp16.onnx")
    calibration = calibration_set_from_arrays(frames, ckpt.preprocess, "demo clip")
    int8 = quantize_int8(fp32, work / "int8.onnx", calibration).path
    runners = [
        ("PyTorch eager fp32", TorchRunner(ckpt)),
        ("ONNX Runtime fp32", OnnxRuntimeRunner(fp32, threads=args.threads)),
        ("ONNX Runtime fp16", OnnxRuntimeRunner(fp16, threads=args.threads)),
        ("ONNX Runtime int8", OnnxRuntimeRunner(int8, threads=args.threads)),
    ]
    table = Table(title=f"{ckpt.model_name} at {ckpt.preprocess.width}x{ckpt.preprocess.height}, {args.runs} runs each")
    for column in ("backend", "batch", "p50 ms", "p99 ms", "images/s", "p50 vs eager"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for batch_size in (1, 8):
        batch = runners[0][1].preprocess(frames[:batch_size])
        baseline = None
        for label, runner in runners:
            times = time_runner(runner, batch, args.runs)
            p50, p99 = np.percentile(times, [50, 99])
            baseline = baseline or p50
            table.add_row(label, str(batch_size), f"{p50:.2f}", f"{p99:.2f}", f"{1000 * batch_size / p50:.1f}", f"{baseline / p50:.2f}x")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
