"""Where INT8 loses accuracy, and automatic mixed precision that wins it back.

Sensitivity analysis (the layer-wise method of Wu et al., "Integer Quantization for Deep
Learning Inference: Principles and Empirical Evaluation", NVIDIA 2020, section 4.2, and of
Polygraphy/TensorRT's ``--layer-precisions`` debugging): quantize the whole model, then
quantize it again with one layer at a time kept in float, and score each variant on held-out
labelled images. The points of pixel accuracy a layer wins back when it stays in float rank
the layers from most to least sensitive.

Automatic mixed precision keeps the fewest, most sensitive layers in float until the
pixel-accuracy drop against the float model is within a bound: layers are added in
sensitivity order and the model is re-scored after each, so the bound is checked on the
actual mixed model, not assumed from the single-layer scan (sensitivities do not add up).

Calibration runs once: every variant reuses the same activation ranges through the
calibration cache, so a scan costs one calibration plus one quantization and one
evaluation per layer.

Held-out data: by default the labelled split's images that were not used for calibration.
Choosing layers on the test split and then reporting on it would flatter the result.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segedge._io import private_directory
from segedge.calibration.dataset import CalibrationSet
from segedge.calibration.quantize import conv_layers, quantize_int8
from segedge.data.oxford_pet import is_pet_root
from segedge.data.samples import DataSpec, load_arrays
from segedge.data.transforms import PreprocessConfig
from segedge.errors import DataError, InputError
from segedge.onnx.artifact import OnnxArtifact, open_onnx
from segedge.report.evaluate import evaluate

Progress = Callable[[str, int, int], None]


@dataclass
class EvalSet:
    """Labelled held-out images, preprocessed.

    Attributes:
        images: ``(N, 3, H, W)`` float32 model inputs.
        labels: ``(N, H, W)`` uint8 class indices at the model resolution.
        source: description for reports.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.images)


def held_out_set(
    root: str | os.PathLike[str],
    config: PreprocessConfig,
    split: str = "trainval",
    limit: int = 100,
    exclude: CalibrationSet | None = None,
) -> EvalSet:
    """Labelled images of an Oxford-IIIT Pet split, without the calibration images.

    Args:
        root: Oxford-IIIT Pet root.
        config: the model's preprocessing.
        split: ``trainval`` (default: the images calibration did not use) or ``test``.
        limit: at most this many images, in list order.
        exclude: calibration set whose images are left out (matched by file name).

    Raises:
        DataError: not a Pet root, or no readable image is left.
    """
    if not is_pet_root(root):
        raise DataError(f"{root} is not an Oxford-IIIT Pet root (images/ and annotations/trimaps/); sensitivity needs labelled data")
    used = frozenset(exclude.names) if exclude is not None else frozenset()
    images, labels, _ = load_arrays(
        DataSpec(root, split, limit=limit or None, exclude=used), config,
        empty=lambda: f"{root}: no held-out image left in split {split!r} after removing the calibration images",
    )
    note = ", calibration images excluded" if used else ""
    return EvalSet(images, labels, f"{len(images)} images of the {split} split of {root}{note}")  # type: ignore[arg-type]


@dataclass
class Score:
    """Pixel accuracy and mIoU in [0, 1] on an :class:`EvalSet`."""

    pixel_accuracy: float
    miou: float


def score_onnx(path: str | os.PathLike[str] | OnnxArtifact, data: EvalSet, batch_size: int = 16) -> Score:
    """Score an ONNX model (a path, or the file already opened) with ONNX Runtime (CPU) against
    the labels of ``data``; the runner is closed before returning.

    Raises:
        ModelFormatError: unreadable ONNX.
    """
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path) as runner:
        matrix = evaluate(runner, data.images, data.labels, batch_size).truth
    return Score(matrix.pixel_accuracy(), matrix.miou())


def _points(a: float, b: float) -> float:
    """Difference in percentage points."""
    return 100.0 * (a - b)


@dataclass
class LayerSensitivity:
    """One layer kept in float, everything else INT8.

    Attributes:
        layer: layer name (PyTorch module path, e.g. ``uc1.seq.3``).
        convs: Conv nodes of the layer.
        score: score of the model with this layer in float.
        recovered: pixel-accuracy points won back against the all-INT8 model (positive:
            this layer costs accuracy when quantized).
        drop: pixel-accuracy drop against the float model, in points.
    """

    layer: str
    convs: int
    score: Score
    recovered: float
    drop: float


@dataclass
class SensitivityReport:
    """Result of :func:`sensitivity_scan`; ``layers`` ranked most sensitive first."""

    float_score: Score
    int8_score: Score
    layers: list[LayerSensitivity]
    eval_source: str
    method: str

    @property
    def int8_drop(self) -> float:
        """Pixel-accuracy drop of the all-INT8 model, in points."""
        return _points(self.float_score.pixel_accuracy, self.int8_score.pixel_accuracy)

    def to_dict(self) -> dict:
        return asdict(self) | {"int8_drop": self.int8_drop}


def sensitivity_scan(
    float_onnx: str | os.PathLike[str] | OnnxArtifact,
    calibration: CalibrationSet,
    data: EvalSet,
    method: str = "percentile",
    percentile: float = 99.9,
    layers: list[str] | None = None,
    progress: Progress | None = None,
    target: str | None = None,
) -> SensitivityReport:
    """Rank the quantizable layers of ``float_onnx`` by the accuracy INT8 costs in each.

    Args:
        float_onnx: FP32 ONNX from ``segedge export`` (a path, or the file already opened).
        calibration: calibration images (calibrated once; ranges shared by every variant).
        data: labelled held-out images.
        method, percentile: calibration method (see :func:`quantize_int8`).
        layers: restrict the scan to these layers (default: every Conv layer).
        progress: ``progress(stage, done, total)``.
        target: INT8 form, ``tensorrt`` or ``onnxruntime`` (default: the model's; see
            :func:`quantize_int8`).

    Raises:
        DataError, ModelFormatError, ExportError: from calibration and quantization.
        InputError: a named layer does not exist; a target the model cannot take.
    """
    with private_directory("sens") as work:
        base = _Baseline.compute(float_onnx, calibration, data, method, percentile, Path(work), target)
        return base.scan(layers, progress)


@dataclass
class _Baseline:
    """FP32 and all-INT8 scores, and the calibration (cached ranges) every variant reuses."""

    float_onnx: OnnxArtifact  # opened once, quantized once per variant
    calibration: CalibrationSet
    data: EvalSet
    method: str
    percentile: float
    cache: Path
    candidate: Path
    float_score: Score
    int8_score: Score
    target: str | None = None

    @classmethod
    def compute(cls, float_onnx, calibration, data, method, percentile, work: Path, target: str | None = None) -> "_Baseline":
        cache, candidate = work / "ranges.json", work / "candidate.onnx"
        source = float_onnx if isinstance(float_onnx, OnnxArtifact) else open_onnx(float_onnx)
        float_score = score_onnx(source, data)
        quantize_int8(source, candidate, calibration, method, percentile, cache=cache, target=target)
        return cls(
            source, calibration, data, method, percentile, cache, candidate, float_score, score_onnx(candidate, data), target,
        )

    def quantize(self, output: Path, layers: list[str]):
        """Quantize with ``layers`` kept in float, reusing the baseline's ranges."""
        return quantize_int8(
            self.float_onnx, output, self.calibration, self.method, self.percentile, exclude=layers, cache=self.cache, target=self.target,
        )

    def score_with_float(self, layers: list[str], output: Path | None = None) -> Score:
        """Quantize with ``layers`` kept in float (to ``output`` or the scratch file) and score it."""
        path = output or self.candidate
        self.quantize(path, layers)
        return score_onnx(path, self.data)

    def scan(self, layers: list[str] | None, progress: Progress | None) -> SensitivityReport:
        all_layers = conv_layers(self.float_onnx.model)
        names = list(all_layers) if layers is None else layers
        unknown = [n for n in names if n not in all_layers]
        if unknown:
            raise InputError(f"no quantizable layer named {unknown[0]!r}")
        stage = "sensitivity (one layer in float at a time)"
        results = []
        for i, layer in enumerate(names):
            if progress:
                progress(stage, i, len(names))
            score = self.score_with_float([layer])
            results.append(LayerSensitivity(
                layer, len(all_layers[layer]), score,
                _points(score.pixel_accuracy, self.int8_score.pixel_accuracy),
                _points(self.float_score.pixel_accuracy, score.pixel_accuracy),
            ))
        if progress:
            progress(stage, len(names), len(names))
        results.sort(key=lambda r: -r.recovered)
        return SensitivityReport(self.float_score, self.int8_score, results, self.data.source, self.method)


@dataclass
class MixedPrecisionResult:
    """Result of :func:`mixed_precision`.

    Attributes:
        path: the Q/DQ ONNX written (float layers without Q/DQ).
        float_layers: layers kept in float, most sensitive first.
        score: score of the written model on the held-out data.
        float_score: score of the float model.
        drop: pixel-accuracy drop against the float model, in points.
        met: whether ``drop <= max_drop``.
        steps: ``(float layers, drop in points)`` for every model tried.
    """

    path: Path
    float_layers: list[str]
    score: Score
    float_score: Score
    drop: float
    max_drop: float
    met: bool
    steps: list[tuple[int, float]] = field(default_factory=list)


def mixed_precision(
    float_onnx: str | os.PathLike[str] | OnnxArtifact,
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    data: EvalSet,
    max_drop: float,
    method: str = "percentile",
    percentile: float = 99.9,
    ranking: SensitivityReport | None = None,
    progress: Progress | None = None,
    target: str | None = None,
) -> MixedPrecisionResult:
    """Keep the fewest, most sensitive layers in float until the drop is within ``max_drop``.

    The all-INT8 model is tried first; if its pixel-accuracy drop on ``data`` exceeds
    ``max_drop`` points, layers are kept in float one by one in the order of
    ``ranking`` (computed with :func:`sensitivity_scan` when not given), re-scoring the
    mixed model each time, until the bound holds. Only layers that won accuracy back in the
    scan are tried; if the bound is still not met, the best model tried is written and
    ``met`` is ``False``.

    Args:
        float_onnx: FP32 ONNX from ``segedge export`` (a path, or the file already opened).
        output: destination of the Q/DQ ONNX (atomic).
        calibration: calibration images.
        data: labelled held-out images.
        max_drop: allowed pixel-accuracy drop against the float model, in points (>= 0).
        method, percentile: calibration method.
        ranking: a previous :func:`sensitivity_scan` of the same model, data and target.
        progress: ``progress(stage, done, total)``.
        target: INT8 form (default: the model's; see :func:`quantize_int8`).

    Raises:
        InputError: ``max_drop`` negative; a target the model cannot take.
        DataError, ModelFormatError, ExportError: from calibration and quantization.
    """
    if max_drop < 0:
        raise InputError(f"--max-drop must be >= 0 points, got {max_drop}")
    with private_directory("amp") as work:
        base = _Baseline.compute(float_onnx, calibration, data, method, percentile, Path(work), target)
        drop = _points(base.float_score.pixel_accuracy, base.int8_score.pixel_accuracy)
        steps = [(0, drop)]
        best = (drop, [], base.int8_score)
        if drop > max_drop:
            if ranking is None:
                ranking = base.scan(None, progress)
            order = [r.layer for r in ranking.layers if r.recovered > 0]
            for k in range(1, len(order) + 1):
                if progress:
                    progress("mixed precision (adding float layers)", k, len(order))
                score = base.score_with_float(order[:k])
                drop = _points(base.float_score.pixel_accuracy, score.pixel_accuracy)
                steps.append((k, drop))
                if drop < best[0]:
                    best = (drop, order[:k], score)
                if drop <= max_drop:
                    break
        drop, float_layers, score = best
        base.quantize(Path(output), float_layers)
    return MixedPrecisionResult(Path(output), float_layers, score, base.float_score, drop, max_drop, drop <= max_drop, steps)


def plot_sensitivity(report: SensitivityReport, path: str | os.PathLike[str]) -> Path:
    """Bar chart (PNG, written atomically) of the points each layer wins back in float."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segedge._io import atomic_path

    layers = report.layers
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(layers) + 1.6))
    values = [r.recovered for r in layers]
    ax.barh(range(len(layers)), values, color=["#d9534f" if v > 0 else "#999999" for v in values])
    ax.set_yticks(range(len(layers)), [r.layer for r in layers], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("pixel-accuracy points won back when the layer stays in float")
    ax.set_title(
        f"INT8 sensitivity ({report.method}); all-INT8 drop {report.int8_drop:.2f} points\n{report.eval_source}",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
