"""What is installed, which backends run here, how far each deployed variant is from PyTorch,
and how fast each is at batch 1, 8 and 32 (``segedge doctor``, ``scripts/gpu-check.sh``).

With TensorRT it builds FP32, FP16 and INT8 engines of the embedded model; with CUDA it runs
PyTorch FP32 / FP16 autocast and ONNX Runtime's CUDA and TensorRT providers; the CPU rows
(PyTorch, ONNX Runtime) run everywhere. Whatever is missing is listed as skipped, with why.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segedge._io import make_private_directory
from segedge.contract import Precision, Provider, Target
from segedge.report.evaluate import evaluate, predict_classes

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
    failed: list[str] = field(default_factory=list)  # what was tried and broke (one line each); the other rows still ran
    versions: dict[str, str] = field(default_factory=dict)  # from :func:`installed_versions`

    def to_dict(self) -> dict:
        """JSON-ready form (``segedge doctor --json``, ``scripts/gpu-check.sh``)."""
        return {
            "environment": self.environment, "versions": self.versions, "notes": self.notes,
            "rows": [{"backend": r.name, "agreement": r.agreement, "median_ms": {str(n): ms for n, ms in r.ms.items()}} for r in self.rows],
            "skipped": self.skipped, "failed": self.failed, "workdir": str(self.workdir),
        }


def installed_versions() -> dict[str, str]:
    """TensorRT and cuda-python as this Python sees them, by importing them (never by package
    metadata: JetPack's apt TensorRT and a ``tensorrt-cu12``-only install have no ``tensorrt``
    distribution, and a package can be present but fail to load its libraries).

    Returns:
        ``{"tensorrt": "10.3.0" | "not installed (why)", "cuda-python": ...}``.
    """
    from segedge.engine.tensorrt_api import import_tensorrt
    from segedge.errors import SegEdgeError

    versions: dict[str, str] = {}
    try:
        versions["tensorrt"] = str(import_tensorrt().__version__)
    except SegEdgeError as exc:
        versions["tensorrt"] = f"not installed ({exc})"
    try:
        import cuda.bindings as bindings  # cuda-python >= 12.6, the layout segedge uses

        versions["cuda-python"] = str(getattr(bindings, "__version__", "installed"))
    except ImportError as exc:
        versions["cuda-python"] = f"not installed ({exc.msg})"
    return versions


def _attempt(rows: list[Row], failed: list[str], name: str, run: Callable[[], Row]) -> None:
    """Run one backend row; a failure is recorded in one line and the next row still runs."""
    try:
        rows.append(run())
    except Exception as exc:  # noqa: BLE001 - a GPU check reports every backend, whatever breaks one
        failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


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
        row.agreement = evaluate(runner, sample, batch_size=8, reference=reference).agreement.pixel_accuracy()
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
        require_engine_support("building engines")
    except TensorRTRequestError as exc:
        trt_problem = str(exc)
    versions = installed_versions()
    environment = [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU cores",
        f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'no device visible'}",
        f"onnxruntime {ort.__version__}; providers: {', '.join(providers)}",
        f"tensorrt {versions['tensorrt']}; cuda-python {versions['cuda-python']}",
    ]

    skipped: list[str] = []
    failed: list[str] = []
    notes: list[str] = []
    reference_runner = TorchRunner(None)
    sample = reference = None
    if data is not None and data.exists():
        from segedge.calibration.dataset import load_calibration_set

        sample = load_calibration_set(data, reference_runner.preprocess_config, num_images=images, seed=1).images
        reference = predict_classes(reference_runner, sample, batch_size=8)
        notes.append(f"comparing against PyTorch FP32 on {len(sample)} images of {data}")
    else:
        skipped.append(f"agreement with PyTorch: no sample at {data} (pass --data)" if data else "agreement with PyTorch: no sample (pass --data)")

    workdir = Path(output) if output else make_private_directory("doctor")  # kept: it holds the artifacts the table names
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = [measure(Row(f"torch-cpu {Precision.FP32}"), reference_runner, sample, reference, budget)]
    if gpu and cuda:
        for fp16 in (False, True):
            label = f"torch-cuda {Precision.FP16 if fp16 else Precision.FP32}"
            _attempt(rows, failed, label, lambda: measure(Row(label), TorchRunner(None, device="cuda", fp16=fp16), sample, reference, budget))
    elif gpu:
        skipped.append("PyTorch on CUDA: torch sees no CUDA device")

    from segedge.onnx.export import export_onnx

    target = Target.TENSORRT if gpu and trt_problem is None else Target.ONNXRUNTIME
    exported = None
    try:
        exported = export_onnx(None, workdir / "default-fp32.onnx", target=target, force=True).path
    except Exception as exc:  # noqa: BLE001 - e.g. onnxscript missing on a bare GPU machine: report, go on
        failed.append(f"ONNX export: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        skipped.append("ONNX Runtime and TensorRT rows: no exported ONNX")
    if exported is not None:
        label = f"onnxruntime-cpu {Precision.FP32}"
        _attempt(rows, failed, label, lambda: measure(Row(label), OnnxRuntimeRunner(exported), sample, reference, budget))
    from segedge.runtime.factory import openvino_installed

    if exported is not None and openvino_installed():
        from segedge.runtime.openvino_runner import OpenVINORunner

        def openvino_row() -> Row:
            standard = exported if target is Target.TENSORRT else export_onnx(None, workdir / "default-fp32-standard.onnx", target=Target.TENSORRT, force=True).path
            with OpenVINORunner(standard) as runner:
                return measure(Row(f"openvino-cpu {Precision.FP32}"), runner, sample, reference, budget)

        _attempt(rows, failed, f"openvino-cpu {Precision.FP32}", openvino_row)
    elif exported is not None:
        skipped.append("OpenVINO: not installed (pip install 'segedge[openvino]')")
    for provider in (Provider.CUDA, Provider.TENSORRT):
        if not gpu or exported is None:
            continue
        ep = PROVIDERS[provider]
        if ep in providers:
            label = f"onnxruntime-{provider} {Precision.FP32}"
            _attempt(rows, failed, label, lambda: measure(Row(label), OnnxRuntimeRunner(exported, provider=provider), sample, reference, budget))
        else:
            skipped.append(f"ONNX Runtime {provider}: no {ep} (onnxruntime-gpu is not installed; on a CUDA machine: pip uninstall -y onnxruntime && pip install 'segedge[gpu]')")

    if gpu and trt_problem is None and exported is not None:
        from segedge.engine.options import BuildOptions

        options = BuildOptions.from_strings(max_shape=f"{max(BATCHES)}x3x128x128", timing_cache=workdir / "timing.cache")
        for precision in Precision:
            if precision is Precision.INT8 and sample is None:
                skipped.append(f"TensorRT {precision}: no calibration images (pass --data)")
                continue
            _attempt(rows, failed, f"tensorrt {precision}", lambda: _tensorrt_row(precision, exported, workdir, data, options, reference_runner, sample, reference, budget))
    elif gpu and trt_problem is not None:
        skipped.append(f"TensorRT engines: {trt_problem}")
    elif not gpu:
        skipped.append("GPU backends: pass --gpu")
    return DoctorResult(environment, notes, rows, skipped, workdir, failed, versions)


def _tensorrt_row(precision, exported, workdir, data, options, reference_runner, sample, reference, budget) -> Row:
    """Build one engine of ``precision`` from the exported ONNX and measure it."""
    from segedge.pipeline.build import build_artifact
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    calibration = None
    if precision is Precision.INT8:
        from segedge.calibration.dataset import load_calibration_set

        calibration = load_calibration_set(data, reference_runner.preprocess_config, num_images=64, seed=0)
    result = build_artifact(exported, workdir / f"default-{precision}.engine", precision, calibration, engine_options=options)
    with TensorRTRunner(result.engine) as runner:
        return measure(Row(f"tensorrt {precision}"), runner, sample, reference, budget)
