"""Every model x precision x CPU backend in one table: latency at one thread and all cores,
batch 1 and 8, argmax agreement with PyTorch and pixel-accuracy drop on the Pet sample's
test split.

Models: the embedded segnet-dsc and the 15M SegNet (random initialisation, or
``--segnet-checkpoint``). Precisions: FP32, FP16 (FP16 inside, float32 I/O) and INT8 (Q/DQ,
calibrated on trainval images). Backends: PyTorch eager (FP32), ONNX Runtime (its own
MaxUnpool form for FP32 / FP16; INT8 in the CPU form, QLinearConv) and OpenVINO (the TensorRT form it can run,
at exact ``f32`` inference precision, plus its ``bf16`` default as an extra FP32 row).

Timing: each round times every variant in turn (interleaved, so machine load hits all alike)
with a runner built for it and closed after it (no idle thread pool of another session
competes), ``--calls`` calls per variant and round; the
table holds the median over rounds of the per-call median. The machine is shared: read the
ratios (the last column, against ONNX Runtime FP32 of the same model, same setting), not
absolute milliseconds.

    python benchmarks/cpu.py [--quick] [--segnet-checkpoint CKPT] [--rounds 5] [--images 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.quantize import quantize_int8
from segedge.cpuinfo import cpu_info
from segedge.data.oxford_pet import OxfordPet
from segedge.data.transforms import preprocess, resize_labels
from segedge.onnx.fp16 import convert_fp16
from segedge.onnx.export import export_onnx
from segedge.models.checkpoint import load_checkpoint
from segedge.models.registry import create_model
from segedge.report.metrics import ConfusionMatrix
from segedge.runtime.factory import openvino_installed
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner

PET = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "oxford-iiit-pet-sample"


@dataclass
class Variant:
    model: str  # segnet-dsc | segnet
    precision: str  # fp32 | fp16 | int8
    backend: str  # torch | onnxruntime | openvino | openvino-bf16
    form: str  # artifact form: eager, onnxruntime (MaxUnpool), tensorrt (standard ops), cpu (QLinearConv)
    make: object  # threads -> Runner
    agreement: float | None = None  # argmax agreement with PyTorch FP32 of the same model, [0, 1]
    accuracy_drop: float | None = None  # pixel-accuracy points below PyTorch FP32's
    ms: dict[tuple[int, int], float] = field(default_factory=dict)  # (threads, batch) -> median ms per call


def artifacts(ckpt, work: Path, calibration) -> dict[str, Path]:
    """FP32 / FP16 in both unpool forms and INT8 (CPU form and TensorRT form)."""
    out: dict[str, Path] = {}
    for target in ("onnxruntime", "tensorrt"):
        fp32 = export_onnx(ckpt, work / f"{ckpt.model_name}-{target}-fp32.onnx", target=target, lint=False, force=True).path
        out[f"fp32-{target}"] = fp32
        out[f"fp16-{target}"] = convert_fp16(fp32, work / f"{ckpt.model_name}-{target}-fp16.onnx")
    out["int8-tensorrt"] = quantize_int8(out["fp32-tensorrt"], work / f"{ckpt.model_name}-int8-tensorrt.onnx", calibration).path
    out["int8-cpu"] = quantize_int8(out["fp32-onnxruntime"], work / f"{ckpt.model_name}-int8-cpu.onnx", calibration, target="onnxruntime").path
    return out


def variants(ckpt, paths: dict[str, Path], with_openvino: bool) -> list[Variant]:
    name = ckpt.model_name

    def torch_runner(threads: int):
        torch.set_num_threads(threads)
        return TorchRunner(ckpt)

    rows = [Variant(name, "fp32", "torch", "eager", torch_runner)]
    for precision in ("fp32", "fp16", "int8"):
        key = "int8-cpu" if precision == "int8" and "int8-cpu" in paths else f"{precision}-{'tensorrt' if precision == 'int8' else 'onnxruntime'}"
        form = {"int8-cpu": "cpu (QLinearConv)"}.get(key, key.split("-", 1)[1])
        rows.append(Variant(name, precision, "onnxruntime", form, lambda t, p=paths[key]: OnnxRuntimeRunner(p, threads=t)))
    if with_openvino:
        from segedge.runtime.openvino_runner import OpenVINORunner

        for precision in ("fp32", "fp16", "int8"):
            rows.append(Variant(name, precision, "openvino", "tensorrt", lambda t, p=paths[f"{precision}-tensorrt"]: OpenVINORunner(p, threads=t)))
        rows.append(Variant(name, "fp32", "openvino-bf16", "tensorrt", lambda t, p=paths["fp32-tensorrt"]: OpenVINORunner(p, threads=t, inference_precision="bf16")))
    return rows


def score(rows: list[Variant], batch: np.ndarray, labels: np.ndarray, cores: int) -> None:
    """Agreement with the PyTorch row and pixel-accuracy drop on ``batch`` (N, 3, H, W)."""
    predictions = {}
    for row in rows:
        runner = row.make(cores)
        predictions[id(row)] = np.concatenate([runner.infer(batch[i : i + 8]).argmax(1) for i in range(0, len(batch), 8)]).astype(np.uint8)
        runner.close()
    reference = predictions[id(rows[0])]
    accuracy = {k: ConfusionMatrix(3).update(p, labels).pixel_accuracy() for k, p in predictions.items()}
    for row in rows:
        row.agreement = float((predictions[id(row)] == reference).mean())
        row.accuracy_drop = 100 * (accuracy[id(rows[0])] - accuracy[id(row)])


def time_all(rows: list[Variant], inputs: dict[int, np.ndarray], threads: int, rounds: int, calls: int) -> None:
    """Interleaved rounds: every variant once per round, each ``calls`` calls; medians.

    Each variant gets a fresh runner per round, closed before the next one starts: idle thread
    pools of other live sessions (ONNX Runtime's spin by default) would otherwise take CPU from
    the one being timed, which distorts every multi-thread figure."""
    samples = {(i, n): [] for i in range(len(rows)) for n in inputs}
    for _ in range(rounds):
        for i, row in enumerate(rows):
            runner = row.make(threads)
            try:
                for n, x in inputs.items():
                    runner.infer(x)  # warm-up: first calls allocate and pick kernels
                    times = []
                    for _ in range(calls):
                        start = time.perf_counter()
                        runner.infer(x)
                        times.append(time.perf_counter() - start)
                    samples[(i, n)].append(1000 * float(np.median(times)))
            finally:
                runner.close()
    for (i, n), values in samples.items():
        rows[i].ms[(threads, n)] = float(np.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segnet-checkpoint", type=Path, default=None, help="trained SegNet checkpoint (default: random initialisation, speed and agreement only)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median over rounds)")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per variant and round (median within a round)")
    parser.add_argument("--images", type=int, default=64, help="test-split images for agreement and pixel accuracy")
    parser.add_argument("--models", default="segnet-dsc,segnet", help="comma-separated: segnet-dsc, segnet")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 call, 16 images, batch 1 only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.images = 2, 1, 16
    batches = (1,) if args.quick else (1, 8)
    console = Console(width=200)
    cpu = cpu_info()
    cores = cpu.cores
    console.print(f"CPU: {cpu.describe()}; torch {torch.__version__}")
    with_openvino = openvino_installed()
    if not with_openvino:
        console.print("OpenVINO not installed (pip install 'segedge[openvino]'): its rows are left out")

    embedded = load_checkpoint()
    checkpoints = {"segnet-dsc": embedded}
    if args.segnet_checkpoint:
        checkpoints["segnet"] = load_checkpoint(args.segnet_checkpoint)
    else:
        torch.manual_seed(0)
        checkpoints["segnet"] = dataclasses.replace(embedded, model=create_model("segnet").eval(), model_name="segnet")
    dataset = OxfordPet(PET, "test")
    samples = list(dataset.iter_readable(args.images))
    h, w = embedded.preprocess.size
    batch = preprocess([image for _, image, _ in samples], embedded.preprocess)
    labels = np.stack([resize_labels(classes, h, w) for _, _, classes in samples])
    calibration = load_calibration_set(PET, embedded.preprocess, num_images=32, seed=0)  # trainval images
    inputs = {n: batch[:n] if len(batch) >= n else np.repeat(batch[:1], n, 0) for n in batches}

    work = Path(tempfile.mkdtemp(prefix="segedge-cpu-bench-"))
    rows: list[Variant] = []
    for name in args.models.split(","):
        ckpt = checkpoints[name]
        console.print(f"exporting and quantizing {name} in {work} ...")
        model_rows = variants(ckpt, artifacts(ckpt, work, calibration), with_openvino)
        score(model_rows, batch, labels, cores)
        rows += model_rows
    settings = sorted({1, cores})
    for threads in settings:
        console.print(f"timing {len(rows)} variants at {threads} thread(s), {args.rounds} interleaved rounds ...")
        time_all(rows, inputs, threads, args.rounds, args.calls)

    table = Table(title=f"CPU backends, {h}x{w} input, {cpu.describe()}; median ms per call ({args.rounds} interleaved rounds x {args.calls} calls); agreement and pixel accuracy on {len(batch)} Pet test images")
    for column in ("model", "precision", "backend", "form", "agreement %", "pix-acc drop pts"):
        table.add_column(column, justify="left" if column in ("model", "precision", "backend", "form") else "right")
    keys = [(t, n) for t in settings for n in batches]
    for t, n in keys:
        table.add_column(f"{t}T b{n} ms", justify="right")
    for t, n in keys:
        table.add_column(f"{t}T b{n} vs ORT fp32", justify="right")
    for row in rows:
        base = next(r for r in rows if r.model == row.model and r.backend == "onnxruntime" and r.precision == "fp32")
        cells = [row.model, row.precision, row.backend, row.form, f"{100 * row.agreement:.3f}", f"{row.accuracy_drop:+.2f}"]
        cells += [f"{row.ms[k]:.1f}" for k in keys]
        cells += [f"{base.ms[k] / row.ms[k]:.2f}x" for k in keys]
        table.add_row(*cells)
    console.print(table)
    if with_openvino and "segnet" in args.models.split(","):
        ort = next(r for r in rows if r.model == "segnet" and r.backend == "onnxruntime" and r.precision == "fp32")
        ov = next(r for r in rows if r.model == "segnet" and r.backend == "openvino" and r.precision == "fp32")
        console.print(
            f"target OpenVINO FP32 >= 1.5x ORT FP32 on segnet (1 thread, batch 1): {ort.ms[(1, 1)] / ov.ms[(1, 1)]:.2f}x, "
            f"agreement {100 * ov.agreement:.3f}% (target >= 99.9%)"
        )


if __name__ == "__main__":
    main()
