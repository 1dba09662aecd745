"""The public Python API (re-exported by :mod:`segedge`): one call per step, any artifact in.

Names follow the field: ``create_model`` / ``list_models`` (timm), runners with ``infer``
(Polygraphy), ``load`` for any artifact. Every function accepts what the previous step
returned, a path, or (for a model) any ``torch.nn.Module`` with a :class:`~segedge.contract.Contract`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

from segedge.contract import CalibrationMethod, Contract, Precision, Provider, Target
from segedge.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from segedge.calibration.dataset import CalibrationSet
    from segedge.calibration.quantize import QuantizeResult
    from segedge.onnx.export import ExportResult
    from segedge.models.checkpoint import Checkpoint
    from segedge.pipeline.build import BuildResult
    from segedge.report.drift import EvalData
    from segedge.report.schema import DriftReport
    from segedge.runtime.base import Runner

PathLike = Union[str, "os.PathLike[str]"]


def _checkpoint(model: Any, contract: Contract | None) -> "Checkpoint":
    """A :class:`Checkpoint` from a Checkpoint, a ``.pt`` path, ``None`` (the embedded model)
    or any ``nn.Module`` (with ``contract``)."""
    from torch import nn

    from segedge.models.checkpoint import Checkpoint, load_checkpoint

    if isinstance(model, Checkpoint):
        return model
    if isinstance(model, nn.Module):
        return Checkpoint.from_module(model, contract)
    if contract is not None:
        raise InputError("contract= applies to an nn.Module or a foreign ONNX; a checkpoint carries its own")
    return load_checkpoint(model)


def export(
    model: "Checkpoint | nn.Module | PathLike | None",
    output: PathLike,
    contract: Contract | None = None,
    target: Target | str = Target.TENSORRT,
    precision: Precision | str = Precision.FP32,
    **options: Any,
) -> "ExportResult":
    """Export a model to ONNX with its contract embedded, and check its parity.

    Args:
        model: a :class:`~segedge.models.checkpoint.Checkpoint`, a ``.pt`` path, ``None``
            (the embedded default ``segnet-lite0``), any ``nn.Module`` mapping ``(N, 3, H, W)``
            float32 to ``(N, C, H, W)`` logits (give ``contract``), or a foreign ``.onnx``
            (its unpools rewritten, if any; ``contract`` embedded when given).
        output: destination ``.onnx`` (atomic).
        contract: preprocessing, classes and palette of an ``nn.Module`` or foreign ONNX.
        target: ``tensorrt`` (standard ops) or ``onnxruntime`` (MaxUnpool) form.
        precision: ``fp32`` or ``fp16``.
        **options: of :func:`segedge.onnx.export.export_onnx` (``opset``, ``dynamic_batch``,
            ``dynamic_hw``, ``exporter``, ``lint``, ``force``, ``parity_images``).

    Raises:
        InputError, CheckpointError, ModelFormatError, ExportError: see
        :func:`~segedge.onnx.export.export_onnx` and :func:`~segedge.onnx.export.rewrite_onnx`.
    """
    from segedge.onnx.export import export_onnx, rewrite_onnx

    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx":
        allowed = {k: v for k, v in options.items() if k in ("lint", "force")}
        return rewrite_onnx(model, output, target, precision, contract=contract, **allowed)
    return export_onnx(_checkpoint(model, contract), output, target=target, precision=precision, **options)


def calibration_set(
    source: "CalibrationSet | PathLike | Sequence[np.ndarray]",
    contract: Contract,
    num_images: int = 64,
    seed: int = 0,
    every: int = 5,
) -> "CalibrationSet":
    """Calibration images preprocessed by ``contract``: an Oxford-IIIT Pet root, an image
    folder or a video (``num_images`` drawn, seeded), or BGR uint8 frames as they are.

    Raises:
        DataError: nothing readable.
    """
    from segedge.calibration.dataset import CalibrationSet, calibration_set_from_arrays, load_calibration_sets

    if isinstance(source, CalibrationSet):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_calibration_sets([Path(source)], contract.preprocess, num_images=num_images, seed=seed, every=every)
    return calibration_set_from_arrays(list(source), contract.preprocess, f"{len(source)} given images")


def quantize(
    onnx: PathLike,
    output: PathLike,
    calibration: "CalibrationSet | PathLike | Sequence[np.ndarray]",
    method: CalibrationMethod | str = CalibrationMethod.PERCENTILE,
    percentile: float = 99.9,
    **options: Any,
) -> "QuantizeResult":
    """Calibrate an FP32 ONNX and write its Q/DQ INT8 form (see
    :func:`segedge.calibration.quantize.quantize_int8` for ``options``: ``exclude``, ``cache``,
    ``batch_size``). ``calibration`` may be a path or BGR frames, preprocessed by the ONNX's
    own contract.

    Raises:
        DataError, InputError, ModelFormatError, ExportError: see ``quantize_int8``.
    """
    from segedge.calibration.quantize import quantize_int8
    from segedge.onnx.artifact import open_onnx

    source = open_onnx(onnx)  # once: its contract preprocesses the calibration set, the quantizer takes the model
    calibration = calibration_set(calibration, source.contract)
    return quantize_int8(source, output, calibration, CalibrationMethod(method).value, percentile, **options)


def build(
    onnx: PathLike,
    output: PathLike,
    precision: Precision | str = Precision.FP32,
    calibration: "CalibrationSet | PathLike | Sequence[np.ndarray] | None" = None,
    **options: Any,
) -> "BuildResult":
    """The deployable artifact of ``precision`` from an FP32 ONNX: ``X.onnx`` (ONNX Runtime)
    or ``X.engine`` (TensorRT). See :func:`segedge.pipeline.build.build_artifact` for
    ``options`` (``method``, ``percentile``, ``calib_cache``, ``engine_options``).

    Raises:
        InputError, DataError, ModelFormatError, ExportError, BackendUnavailableError: see
        ``build_artifact``.
    """
    from segedge.onnx.artifact import open_onnx
    from segedge.pipeline.build import build_artifact

    source = open_onnx(onnx)  # once, for the calibration set's preprocessing and the build
    if calibration is not None:
        calibration = calibration_set(calibration, source.contract)
    return build_artifact(source, output, precision, calibration, **options)


def load(
    artifact: "Checkpoint | nn.Module | PathLike | None" = None,
    contract: Contract | None = None,
    provider: Provider | str = Provider.CPU,
    threads: int = 0,
) -> "Runner":
    """Any artifact as a :class:`~segedge.runtime.base.Runner`: ``.pt`` (PyTorch), ``.onnx``
    (ONNX Runtime), ``.engine`` (TensorRT), an in-memory checkpoint or ``nn.Module`` (with
    ``contract``), or ``None`` for the embedded default ``segnet-lite0``.

    The runner exposes ``runner.contract``, ``infer`` (batches), ``predict`` (class maps) and
    ``segment(frame) -> (class_map, overlay)``.

    Raises:
        InputError, CheckpointError, ModelFormatError, BackendUnavailableError: from the backend.
    """
    from segedge.runtime.factory import load_runner

    if artifact is None or isinstance(artifact, (str, os.PathLike)):
        if contract is not None:
            raise InputError("contract= applies to an nn.Module; an artifact file carries its own (embed one with export)")
        return load_runner(artifact, provider=provider, threads=threads)
    from segedge.runtime.torch_runner import TorchRunner

    return TorchRunner(_checkpoint(artifact, contract), threads=threads)


def compare(
    reference: "Runner | PathLike | None",
    candidates: "Sequence[Runner | PathLike]",
    data: "EvalData | PathLike | Sequence[np.ndarray]",
    limit: int | None = None,
    every: int = 1,
    **options: Any,
) -> "DriftReport":
    """Score candidates against a reference (agreement, logit error, accuracy with labels,
    latency) into a :class:`~segedge.report.schema.DriftReport`.

    Args:
        reference: the reference runner or artifact (usually the PyTorch model).
        candidates: deployed variants, runners or artifact paths.
        data: an Oxford-IIIT Pet root (labelled), an image folder or a video,
            :class:`~segedge.report.drift.EvalData`, or ``(H, W, 3)`` uint8 BGR images (unlabelled).
        limit: at most this many images or frames.
        every: every n-th frame of a video.
        **options: of :func:`segedge.report.drift.compare` (``latency_runs``, ``batch_size``, ...).

    Runners this call loads from paths are closed before it returns (their sessions, GPU
    contexts); runners passed in are the caller's and stay open.

    Raises:
        InputError: candidates not comparable with the reference; DataError: no readable image.
    """
    from segedge.report.drift import EvalData, load_eval_data
    from segedge.report.drift import compare as drift_compare
    from segedge.runtime.base import Runner

    loaded: list[Runner] = []  # runners opened here from paths: closed here; the caller's own stay open

    def runner(item: Any) -> Runner:
        if isinstance(item, Runner):
            return item
        loaded.append(load(item))
        return loaded[-1]

    if isinstance(data, (str, os.PathLike)):
        data = load_eval_data(data, limit=limit, every=every)
    elif not isinstance(data, EvalData):
        items = [(f"image {i}", image, None) for i, image in enumerate(list(data)[:limit])]
        data = EvalData(f"{len(items)} given images (unlabelled)", len(items), False, lambda: iter(items))
    try:
        return drift_compare(runner(reference), [runner(c) for c in candidates], data, **options)
    finally:
        for opened in loaded:
            opened.close()
