"""What is installed, which backends run here, how far each deployed variant is from PyTorch,
and how fast each is at batch 1, 8 and 32 (``segedge doctor``, ``scripts/gpu-check.sh``).

With TensorRT it builds FP32, FP16 and INT8 engines of the embedded model; with CUDA it runs
PyTorch FP32 / FP16 autocast and ONNX Runtime's CUDA and TensorRT providers; the CPU rows
(PyTorch, ONNX Runtime) run everywhere. Whatever is missing is listed as skipped, with why.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segedge.contract import Precision, Provider, Target

BATCHES = (1, 8, 32)


@dataclass
class Row:
    """One backend variant: agreement with PyTorch and timings."""

    name: str  # "tensorrt fp16", "onnxruntime-cpu int8", ...
    agreement: float | None = None  # fraction of pixels whose class equals PyTorch FP32's on the sample
    ms: dict[int, float] = field(default_factory=dict)  # batch -> median ms per call


@dataclass
class DoctorResult:
    """What ``segedge doctor`` found."""

    environment: list[str]  # one line each: Python, torch/CUDA, onnxruntime providers, TensorRT
    notes: list[str]  # what the comparison ran on
    rows: list[Row]  # one per backend variant that ran
    skipped: list[str]  # what did not run, and why
    workdir: Path  # where the exported ONNX and engines are


def package_version(dist: str) -> str:
    """Installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def median_ms(infer: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, budget_s: float) -> float:
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


def measure(row: Row, runner, sample: np.ndarray | None, reference: np.ndarray | None, budget_s: float) -> Row:
    """Fill ``row``: argmax agreement of ``runner`` with ``reference`` class maps on ``sample``
    (``(N, 3, H, W)`` float32), and the median ms per call at each batch of :data:`BATCHES`."""
    if sample is not None and reference is not None:
        labels = np.concatenate([runner.infer(sample[i : i + 8]).argmax(1) for i in range(0, len(sample), 8)])
        row.agreement = float((labels == reference).mean())
    h, w = runner.preprocess_config.size
    rng = np.random.default_rng(0)
    for n in BATCHES:
        if runner.max_batch is None or n <= runner.max_batch:
            row.ms[n] = median_ms(runner.infer, rng.random((n, 3, h, w), dtype=np.float32), budget_s)
    return row


def run_doctor(
    gpu: bool = False,
    data: Path | None = None,
    output: Path | None = None,
    images: int = 32,
    budget: float = 1.0,
) -> DoctorResult:
    """Compare every available backend with PyTorch FP32 on the embedded model.

    Args:
        gpu: also build TensorRT engines and time the GPU backends.
        data: Oxford-IIIT Pet root (or image folder) for the comparison and INT8 calibration;
            ``None`` or missing: timings only (listed as skipped).
        output: keep the exported ONNX and engines here (default: a temporary directory).
        images: sample images compared against PyTorch.
        budget: seconds of timing per backend and batch size.

    Returns:
        :class:`DoctorResult`.
    """
    import onnxruntime as ort
    import torch

    from segedge.engine.tensorrt_api import TensorRTRequestError, require_engine_support
    from segedge.runtime.onnxruntime_runner import PROVIDERS, OnnxRuntimeRunner
    from segedge.runtime.torch_runner import TorchRunner

    cuda = torch.cuda.is_available()
    providers = ort.get_available_providers()
    trt_problem = None
    try:
        trt = require_engine_support("building engines")
        trt_version = trt.__version__
    except TensorRTRequestError as exc:
        trt_problem, trt_version = str(exc), "unavailable"
    environment = [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU cores",
        f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'no device visible'}",
        f"onnxruntime {ort.__version__}; providers: {', '.join(providers)}",
        f"tensorrt {trt_version} (bindings {package_version('tensorrt')}); cuda-python {package_version('cuda-python')}",
    ]

    skipped: list[str] = []
    notes: list[str] = []
    reference_runner = TorchRunner(None)
    sample = reference = None
    if data is not None and data.exists():
        from segedge.calibration.dataset import load_calibration_set

        sample = load_calibration_set(data, reference_runner.preprocess_config, num_images=images, seed=1).images
        reference = np.concatenate([reference_runner.infer(sample[i : i + 8]).argmax(1) for i in range(0, len(sample), 8)])
        notes.append(f"comparing against PyTorch FP32 on {len(sample)} images of {data}")
    else:
        skipped.append(f"agreement with PyTorch: no sample at {data} (pass --data)" if data else "agreement with PyTorch: no sample (pass --data)")

    workdir = Path(output) if output else Path(tempfile.mkdtemp(prefix="segedge-doctor-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = [measure(Row(f"torch-cpu {Precision.FP32}"), reference_runner, sample, reference, budget)]
    if gpu and cuda:
        for fp16 in (False, True):
            label = Precision.FP16 if fp16 else Precision.FP32
            rows.append(measure(Row(f"torch-cuda {label}"), TorchRunner(None, device="cuda", fp16=fp16), sample, reference, budget))
    elif gpu:
        skipped.append("PyTorch on CUDA: torch sees no CUDA device")

    from segedge.export.onnx import export_onnx

    target = Target.TENSORRT if gpu and trt_problem is None else Target.ONNXRUNTIME
    exported = export_onnx(None, workdir / "segnet-dsc-fp32.onnx", target=target, force=True).path
    rows.append(measure(Row(f"onnxruntime-cpu {Precision.FP32}"), OnnxRuntimeRunner(exported), sample, reference, budget))
    for provider in (Provider.CUDA, Provider.TENSORRT):
        if not gpu:
            continue
        ep = PROVIDERS[provider]
        if ep in providers:
            rows.append(measure(Row(f"onnxruntime-{provider} {Precision.FP32}"), OnnxRuntimeRunner(exported, provider=provider), sample, reference, budget))
        else:
            skipped.append(f"ONNX Runtime {provider}: no {ep} (pip install 'segedge[gpu]' on a CUDA machine)")

    if gpu and trt_problem is None:
        from segedge.engine.options import BuildOptions
        from segedge.pipeline.build import build_artifact
        from segedge.runtime.tensorrt_runner import TensorRTRunner

        options = BuildOptions.from_strings(max_shape=f"{max(BATCHES)}x3x128x128", timing_cache=workdir / "timing.cache")
        for precision in Precision:
            if precision is Precision.INT8 and sample is None:
                skipped.append(f"TensorRT {precision}: no calibration images (pass --data)")
                continue
            calibration = None
            if precision is Precision.INT8:
                from segedge.calibration.dataset import load_calibration_set

                calibration = load_calibration_set(data, reference_runner.preprocess_config, num_images=64, seed=0)
            result = build_artifact(exported, workdir / f"segnet-dsc-{precision}.engine", precision, calibration, engine_options=options)
            with TensorRTRunner(result.engine) as runner:
                rows.append(measure(Row(f"tensorrt {precision}"), runner, sample, reference, budget))
    elif gpu:
        skipped.append(f"TensorRT engines: {trt_problem}")
    else:
        skipped.append("GPU backends: pass --gpu")
    return DoctorResult(environment, notes, rows, skipped, workdir)
