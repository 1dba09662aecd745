"""``segedge doctor --gpu`` (also ``scripts/gpu-check.sh``): what is installed, which backends
run here, how far each deployed variant is from PyTorch, and how fast each is at batch 1, 8 and 32.

With TensorRT it builds FP32, FP16 and INT8 engines of the embedded model; with CUDA it runs
PyTorch FP32 / FP16 autocast and ONNX Runtime's CUDA and TensorRT providers; the CPU rows
(PyTorch, ONNX Runtime, and OpenVINO where its extra is installed) run everywhere. Whatever is missing is listed as skipped, with why.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from segedge.cli.common import console, handle_errors

BATCHES = (1, 8, 32)
DEFAULT_DATA = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "oxford-iiit-pet-sample"


@dataclass
class Row:
    """One backend variant: agreement with PyTorch and timings."""

    name: str  # "tensorrt fp16", "onnxruntime-cpu int8", ...
    agreement: float | None = None  # fraction of pixels whose class equals PyTorch FP32's on the sample
    ms: dict[int, float] = field(default_factory=dict)  # batch -> median ms per call


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _time(infer: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, budget_s: float) -> float:
    """Median wall-clock ms of ``infer(batch)``: 2 warm-up calls, then at least 3 and up to ``budget_s``."""
    for _ in range(2):
        infer(batch)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 200):
        t0 = time.perf_counter()
        infer(batch)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _measure(row: Row, runner, sample: np.ndarray | None, reference: np.ndarray | None, budget_s: float) -> Row:
    if sample is not None and reference is not None:
        labels = np.concatenate([runner.infer(sample[i : i + 8]).argmax(1) for i in range(0, len(sample), 8)])
        row.agreement = float((labels == reference).mean())
    h, w = runner.preprocess_config.size
    rng = np.random.default_rng(0)
    for n in BATCHES:
        if runner.max_batch is None or n <= runner.max_batch:
            row.ms[n] = _time(runner.infer, rng.random((n, 3, h, w), dtype=np.float32), budget_s)
    return row


@handle_errors
def doctor_command(
    gpu: Annotated[bool, typer.Option("--gpu", help="Also build TensorRT engines and time the GPU backends (what is missing is skipped, with the reason).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Oxford-IIIT Pet root for the PyTorch comparison and INT8 calibration.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Keep the exported ONNX and engines here (default: a temporary directory).")] = None,
    images: Annotated[int, typer.Option(min=1, help="Sample images compared against PyTorch.")] = 32,
    budget: Annotated[float, typer.Option(min=0.1, help="Seconds of timing per backend and batch size.")] = 1.0,
) -> None:
    """Report the installation and compare every available backend with PyTorch: agreement, latency, throughput."""
    import onnxruntime as ort
    import torch
    from rich.table import Table

    from segedge.engine.tensorrt_api import TensorRTRequestError, require_engine_support
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from segedge.runtime.torch_runner import TorchRunner

    cuda = torch.cuda.is_available()
    providers = ort.get_available_providers()
    trt_problem = None
    try:
        trt = require_engine_support("building engines")
        trt_version = trt.__version__
    except TensorRTRequestError as exc:
        trt_problem, trt_version = str(exc), "unavailable"
    console.print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU cores")
    console.print(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'no device visible'}")
    console.print(f"onnxruntime {ort.__version__}; providers: {', '.join(providers)}")
    console.print(f"tensorrt {trt_version} (bindings {_version('tensorrt')}); cuda-python {_version('cuda-python')}")

    skipped: list[str] = []
    data = data or DEFAULT_DATA
    reference_runner = TorchRunner(None)
    sample = reference = None
    if data.exists():
        from segedge.calibration.dataset import load_calibration_set

        sample = load_calibration_set(data, reference_runner.preprocess_config, num_images=images, seed=1).images
        reference = np.concatenate([reference_runner.infer(sample[i : i + 8]).argmax(1) for i in range(0, len(sample), 8)])
        console.print(f"comparing against PyTorch FP32 on {len(sample)} images of {data}")
    else:
        skipped.append(f"agreement with PyTorch: no sample at {data} (pass --data)")

    workdir = Path(output) if output else Path(tempfile.mkdtemp(prefix="segedge-doctor-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = [_measure(Row("torch-cpu fp32"), reference_runner, sample, reference, budget)]
    if gpu and cuda:
        for fp16 in (False, True):
            rows.append(_measure(Row(f"torch-cuda {'fp16' if fp16 else 'fp32'}"), TorchRunner(None, device="cuda", fp16=fp16), sample, reference, budget))
    elif gpu:
        skipped.append("PyTorch on CUDA: torch sees no CUDA device")

    from segedge.export.onnx import export_onnx

    target = "tensorrt" if gpu and trt_problem is None else "onnxruntime"
    exported = export_onnx(None, workdir / "segnet-dsc-fp32.onnx", target=target, force=True).path
    rows.append(_measure(Row("onnxruntime-cpu fp32"), OnnxRuntimeRunner(exported), sample, reference, budget))
    from segedge.runtime.factory import openvino_installed

    if openvino_installed():
        from segedge.runtime.openvino_runner import OpenVINORunner

        standard = exported if target == "tensorrt" else export_onnx(None, workdir / "segnet-dsc-fp32-standard.onnx", target="tensorrt", force=True).path
        with OpenVINORunner(standard) as runner:
            rows.append(_measure(Row("openvino-cpu fp32"), runner, sample, reference, budget))
    else:
        skipped.append("OpenVINO: not installed (pip install 'segedge[openvino]')")
    for provider, ep in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if not gpu:
            continue
        if ep in providers:
            rows.append(_measure(Row(f"onnxruntime-{provider} fp32"), OnnxRuntimeRunner(exported, provider=provider), sample, reference, budget))
        else:
            skipped.append(f"ONNX Runtime {provider}: no {ep} (pip install 'segedge[gpu]' on a CUDA machine)")

    if gpu and trt_problem is None:
        from segedge.engine.artifacts import build_artifact
        from segedge.engine.options import BuildOptions
        from segedge.runtime.tensorrt_runner import TensorRTRunner

        options = BuildOptions.from_strings(max_shape=f"{max(BATCHES)}x3x128x128", timing_cache=workdir / "timing.cache")
        for precision in ("fp32", "fp16", "int8"):
            if precision == "int8" and sample is None:
                skipped.append("TensorRT int8: no calibration images (pass --data)")
                continue
            calibration = None
            if precision == "int8":
                from segedge.calibration.dataset import load_calibration_set

                calibration = load_calibration_set(data, reference_runner.preprocess_config, num_images=64, seed=0)
            result = build_artifact(exported, workdir / f"segnet-dsc-{precision}.engine", precision, calibration, engine_options=options)
            with TensorRTRunner(result.engine) as runner:
                rows.append(_measure(Row(f"tensorrt {precision}"), runner, sample, reference, budget))
    elif gpu:
        skipped.append(f"TensorRT engines: {trt_problem}")
    else:
        skipped.append("GPU backends: pass --gpu")

    table = Table(title=f"agreement with PyTorch FP32 and latency (median ms per call) / throughput (images/s); artifacts in {workdir}")
    table.add_column("backend")
    table.add_column("agreement %", justify="right")
    for n in BATCHES:
        table.add_column(f"b{n} ms", justify="right")
        table.add_column(f"b{n} img/s", justify="right")
    for row in rows:
        cells = ["-" if row.agreement is None else f"{100 * row.agreement:.2f}"]
        for n in BATCHES:
            cells += [f"{row.ms[n]:.2f}", f"{1000 * n / row.ms[n]:.0f}"] if n in row.ms else ["-", "-"]
        table.add_row(row.name, *cells)
    console.print(table)
    for line in skipped:
        console.print(f"skipped: {line}")


if __name__ == "__main__":  # scripts/gpu-check.sh runs this module directly
    typer.run(doctor_command)
