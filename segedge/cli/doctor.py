"""``segedge doctor --gpu`` (also ``scripts/gpu-check.sh``): what is installed, which backends
run here, how far each deployed variant is from PyTorch, and how fast each is at batch 1, 8 and 32.

With TensorRT it builds FP32, FP16 and INT8 engines of the embedded model; with CUDA it runs
PyTorch FP32 / FP16 autocast and ONNX Runtime's CUDA and TensorRT providers; the CPU rows
(PyTorch, ONNX Runtime) run everywhere. Whatever is missing is listed as skipped, with why.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from segedge._io import atomic_write_text
from segedge.cli.common import console, handle_errors
from segedge.engine.options import BuildOptions
from segedge.errors import SegEdgeError

BATCHES = (1, 8, 32)
DEFAULT_DATA = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "oxford-iiit-pet-sample"


@dataclass
class Row:
    """One backend variant: agreement with PyTorch and timings."""

    name: str  # "tensorrt fp16", "onnxruntime-cpu int8", ...
    agreement: float | None = None  # fraction of pixels whose class equals PyTorch FP32's on the sample
    ms: dict[int, float] = field(default_factory=dict)  # batch -> median ms per call


def installed_versions() -> dict[str, str]:
    """What is importable here, by importing it (never by package metadata: JetPack's apt
    TensorRT and a ``tensorrt-cu12``-only install have no ``tensorrt`` distribution, and a
    package can be present but fail to load its libraries).

    Returns:
        ``{"tensorrt": "10.3.0" | "not installed (...)", "cuda-python": ..., "onnxruntime": ...,
        "torch": ...}``; the reason is given when an import fails.
    """
    versions: dict[str, str] = {}
    try:
        from segedge.engine.tensorrt_api import import_tensorrt

        versions["tensorrt"] = str(import_tensorrt().__version__)
    except SegEdgeError as exc:
        versions["tensorrt"] = f"not installed ({exc})"
    try:
        import cuda.bindings as bindings  # cuda-python >= 12.6 (the layout segedge uses)

        versions["cuda-python"] = str(getattr(bindings, "__version__", "installed"))
    except ImportError as exc:
        versions["cuda-python"] = f"not installed ({exc.msg})"
    for name in ("onnxruntime", "torch"):
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except ImportError as exc:
            versions[name] = f"not installed ({exc.msg})"
    return versions


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


def _attempt(rows: list[Row], failed: list[str], name: str, measure: Callable[[], Row]) -> None:
    """Run one backend row; a failure is recorded (one line) and the next row still runs."""
    try:
        rows.append(measure())
    except Exception as exc:  # noqa: BLE001 - a GPU check reports every backend, whatever breaks one
        failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@handle_errors
def doctor_command(
    gpu: Annotated[bool, typer.Option("--gpu", help="Also build TensorRT engines and time the GPU backends (what is missing is skipped, with the reason).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Oxford-IIIT Pet root for the PyTorch comparison and INT8 calibration.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Keep the exported ONNX and engines here (default: a temporary directory).")] = None,
    images: Annotated[int, typer.Option(min=1, help="Sample images compared against PyTorch.")] = 32,
    budget: Annotated[float, typer.Option(min=0.1, help="Seconds of timing per backend and batch size.")] = 1.0,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the results (versions, rows, skipped, failed) as JSON here.")] = None,
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
        require_engine_support("building engines")
    except TensorRTRequestError as exc:
        trt_problem = str(exc)
    versions = installed_versions()
    device = torch.cuda.get_device_name(0) if cuda else "no device visible"
    console.print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU cores")
    console.print(f"torch {versions['torch']}; CUDA: {device}")
    console.print(f"onnxruntime {versions['onnxruntime']}; providers: {', '.join(providers)}")
    console.print(f"tensorrt {versions['tensorrt']}; cuda-python {versions['cuda-python']}")

    skipped: list[str] = []
    failed: list[str] = []
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
            name = f"torch-cuda {'fp16' if fp16 else 'fp32'}"
            _attempt(rows, failed, name, lambda: _measure(Row(name), TorchRunner(None, device="cuda", fp16=fp16), sample, reference, budget))
    elif gpu:
        skipped.append("PyTorch on CUDA: torch sees no CUDA device")

    from segedge.export.onnx import export_onnx

    target = "tensorrt" if gpu and trt_problem is None else "onnxruntime"
    exported = None
    try:
        exported = export_onnx(None, workdir / "segnet-dsc-fp32.onnx", target=target, force=True).path
    except Exception as exc:  # noqa: BLE001 - e.g. onnxscript missing on a bare GPU machine: report, go on
        failed.append(f"ONNX export: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        skipped.append("ONNX Runtime and TensorRT rows: no exported ONNX")
    if exported is not None:
        _attempt(rows, failed, "onnxruntime-cpu fp32", lambda: _measure(Row("onnxruntime-cpu fp32"), OnnxRuntimeRunner(exported), sample, reference, budget))
        for provider, ep in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
            if not gpu:
                continue
            if ep in providers:
                name = f"onnxruntime-{provider} fp32"
                _attempt(rows, failed, name, lambda: _measure(Row(name), OnnxRuntimeRunner(exported, provider=provider), sample, reference, budget))
            else:
                skipped.append(f"ONNX Runtime {provider}: no {ep} (onnxruntime-gpu is not installed)")

    if gpu and trt_problem is None and exported is not None:
        options = BuildOptions.from_strings(max_shape=f"{max(BATCHES)}x3x128x128", timing_cache=workdir / "timing.cache")
        for precision in ("fp32", "fp16", "int8"):
            if precision == "int8" and sample is None:
                skipped.append("TensorRT int8: no calibration images (pass --data)")
                continue
            _attempt(rows, failed, f"tensorrt {precision}", lambda: _tensorrt_row(precision, exported, workdir, data, options, reference_runner, sample, reference, budget))
    elif gpu and trt_problem is not None:
        skipped.append(f"TensorRT engines: {trt_problem}")
    elif not gpu:
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
    for line in failed:
        console.print(f"failed: {line}")
    if json_path is not None:
        report = {
            "python": platform.python_version(), "machine": platform.machine(), "cpu_cores": os.cpu_count(),
            "cuda_device": device, "onnxruntime_providers": providers, "versions": versions,
            "sample_images": 0 if sample is None else len(sample),
            "rows": [{"backend": r.name, "agreement": r.agreement, "median_ms": {str(n): ms for n, ms in r.ms.items()}} for r in rows],
            "skipped": skipped, "failed": failed,
        }
        atomic_write_text(json_path, json.dumps(report, indent=2))
    if failed:
        raise typer.Exit(1)


def _tensorrt_row(precision, exported, workdir, data, options, reference_runner, sample, reference, budget) -> Row:
    """Build one engine of ``precision`` from the exported ONNX and measure it."""
    from segedge.engine.artifacts import build_artifact
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    calibration = None
    if precision == "int8":
        from segedge.calibration.dataset import load_calibration_set

        calibration = load_calibration_set(data, reference_runner.preprocess_config, num_images=64, seed=0)
    result = build_artifact(exported, workdir / f"segnet-dsc-{precision}.engine", precision, calibration, engine_options=options)
    with TensorRTRunner(result.engine) as runner:
        return _measure(Row(f"tensorrt {precision}"), runner, sample, reference, budget)


if __name__ == "__main__":  # scripts/gpu-check.sh runs this module directly
    typer.run(doctor_command)
