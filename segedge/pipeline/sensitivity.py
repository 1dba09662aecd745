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
    """Pixel accuracy and mIoU in [0, 1] on an :class:`EvalSet`, and the argmax agreement in
    [0, 1] with the float model on the same images (1.0 for the float model itself)."""

    pixel_accuracy: float
    miou: float
    agreement: float = 1.0


def score_onnx(
    path: str | os.PathLike[str] | OnnxArtifact, data: EvalSet, batch_size: int = 16, reference: np.ndarray | None = None,
) -> Score:
    """Score an ONNX model (a path, or the file already opened) on the CPU against the labels
    of ``data`` and, with ``reference``, its argmax agreement with that class map; the runner
    is closed before returning.

    The runtime is the one ``--backend auto`` picks (:func:`~segedge.runtime.factory.resolve_backend`):
    a tensorrt-form INT8 model runs in OpenVINO when it is installed, whose integer
    convolutions are what an INT8 engine computes; ONNX Runtime dequantizes that form and runs
    float convolutions, which move 8% of segnet-lite0's pixels (docs/benchmarks.md, "QAT"), so
    ranking its layers there would rank ONNX Runtime's CPU fallback, not the artifact.

    Args:
        path: the ONNX model.
        data: labelled images.
        batch_size: images per call.
        reference: ``(N, H, W)`` class indices of the float model on ``data.images``, or None
            (agreement reported as 1.0).

    Raises:
        ModelFormatError: unreadable ONNX.
    """
    from segedge.runtime.factory import Backend, load_runner, resolve_backend

    where = path.path if isinstance(path, OnnxArtifact) else path
    if resolve_backend(where) is Backend.OPENVINO:
        runner = load_runner(where, backend=Backend.OPENVINO)
    else:
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(path)
    with runner:
        scores = evaluate(runner, data.images, data.labels, batch_size, reference=reference)
    agreement = scores.agreement.pixel_accuracy() if reference is not None else 1.0
    return Score(scores.truth.pixel_accuracy(), scores.truth.miou(), agreement)


def float_reference(float_onnx: str | os.PathLike[str] | OnnxArtifact, data: EvalSet, batch_size: int = 16) -> tuple[np.ndarray, Score]:
    """The float model's class map on ``data`` and its score, from one ONNX Runtime pass: the
    reference every quantized variant's agreement is counted against.

    Returns:
        ``(N, H, W)`` int64 class indices and the float model's :class:`Score` (agreement 1.0).

    Raises:
        ModelFormatError: unreadable ONNX.
    """
    from segedge.report.evaluate import predict_classes
    from segedge.report.metrics import ConfusionMatrix
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(float_onnx) as runner:
        reference = predict_classes(runner, data.images, batch_size)
        matrix = ConfusionMatrix(len(runner.classes))
    matrix.update(reference, data.labels)
    return reference, Score(matrix.pixel_accuracy(), matrix.miou())


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
        agreement_recovered: points of argmax agreement with the float model won back
            against the all-INT8 model (positive: this layer moves pixels when quantized).
    """

    layer: str
    convs: int
    score: Score
    recovered: float
    drop: float
    agreement_recovered: float = 0.0


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
    reference: np.ndarray | None = None  # (N, H, W) the float model's class map on data.images

    @classmethod
    def compute(cls, float_onnx, calibration, data, method, percentile, work: Path, target: str | None = None) -> "_Baseline":
        cache, candidate = work / "ranges.json", work / "candidate.onnx"
        source = float_onnx if isinstance(float_onnx, OnnxArtifact) else open_onnx(float_onnx)
        reference, float_score = float_reference(source, data)
        quantize_int8(source, candidate, calibration, method, percentile, cache=cache, target=target)
        int8_score = score_onnx(candidate, data, reference=reference)
        return cls(source, calibration, data, method, percentile, cache, candidate, float_score, int8_score, target, reference)

    def quantize(self, output: Path, layers: list[str]):
        """Quantize with ``layers`` kept in float, reusing the baseline's ranges."""
        return quantize_int8(
            self.float_onnx, output, self.calibration, self.method, self.percentile, exclude=layers, cache=self.cache, target=self.target,
        )

    def score_with_float(self, layers: list[str], output: Path | None = None) -> Score:
        """Quantize with ``layers`` kept in float (to ``output`` or the scratch file) and score it."""
        path = output or self.candidate
        self.quantize(path, layers)
        return score_onnx(path, self.data, reference=self.reference)

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
                _points(score.agreement, self.int8_score.agreement),
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
        met: whether every bound given holds (``drop <= max_drop``, ``agreement >= min_agreement``).
        steps: ``(float layers, drop in points)`` for every model tried.
        min_agreement: the agreement bound asked for, in percent, or None.
    """

    path: Path
    float_layers: list[str]
    score: Score
    float_score: Score
    drop: float
    max_drop: float | None
    met: bool
    steps: list[tuple[int, float]] = field(default_factory=list)
    min_agreement: float | None = None

    @property
    def agreement(self) -> float:
        """Argmax agreement of the written model with the float model, in percent."""
        return 100.0 * self.score.agreement


def mixed_precision(
    float_onnx: str | os.PathLike[str] | OnnxArtifact,
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    data: EvalSet,
    max_drop: float | None,
    method: str = "percentile",
    percentile: float = 99.9,
    ranking: SensitivityReport | None = None,
    progress: Progress | None = None,
    target: str | None = None,
    min_agreement: float | None = None,
) -> MixedPrecisionResult:
    """Keep the fewest, most sensitive layers in float until the drop is within ``max_drop``
    and the argmax agreement with the float model is at least ``min_agreement``.

    The all-INT8 model is tried first; if it misses a bound on ``data``, layers are kept in
    float one by one in the order of ``ranking`` (computed with :func:`sensitivity_scan` when
    not given), re-scoring the mixed model each time, until the bounds hold. The order is by
    pixel-accuracy points won back with ``max_drop`` alone, by agreement points won back once
    ``min_agreement`` is given (the pixels INT8 moves are mostly not errors: near-tied
    boundary pixels; segnet-lite0's first depthwise convolution moves far more of them than any
    other layer, docs/benchmarks.md "QAT"). Only layers that won something back in the scan are
    tried; if the bounds still do not hold, the best model tried (the smallest shortfall) is
    written and ``met`` is ``False``.

    Args:
        float_onnx: FP32 ONNX from ``segedge export`` (a path, or the file already opened).
        output: destination of the Q/DQ ONNX (atomic).
        calibration: calibration images.
        data: labelled held-out images.
        max_drop: allowed pixel-accuracy drop against the float model, in points (>= 0), or None.
        method, percentile: calibration method.
        ranking: a previous :func:`sensitivity_scan` of the same model, data and target.
        progress: ``progress(stage, done, total)``.
        target: INT8 form (default: the model's; see :func:`quantize_int8`).
        min_agreement: least argmax agreement with the float model on ``data``, in percent
            (0-100), or None.

    Raises:
        InputError: ``max_drop`` negative, ``min_agreement`` outside 0-100, neither bound
            given; a target the model cannot take.
        DataError, ModelFormatError, ExportError: from calibration and quantization.
    """
    if max_drop is not None and max_drop < 0:
        raise InputError(f"--max-drop must be >= 0 points, got {max_drop}")
    if min_agreement is not None and not 0 <= min_agreement <= 100:
        raise InputError(f"--min-agreement must be a percentage in [0, 100], got {min_agreement}")
    if max_drop is None and min_agreement is None:
        raise InputError("mixed precision needs a bound: --max-drop, --min-agreement or both")

    def shortfall(score: Score) -> float:
        """How far ``score`` misses the bounds, in points (0: met)."""
        drop = _points(base.float_score.pixel_accuracy, score.pixel_accuracy)
        missing = max(0.0, drop - max_drop) if max_drop is not None else 0.0
        if min_agreement is not None:
            missing += max(0.0, min_agreement - 100.0 * score.agreement)
        return missing

    with private_directory("amp") as work:
        base = _Baseline.compute(float_onnx, calibration, data, method, percentile, Path(work), target)
        steps = [(0, _points(base.float_score.pixel_accuracy, base.int8_score.pixel_accuracy))]
        best = (shortfall(base.int8_score), [], base.int8_score)
        if best[0] > 0:
            if ranking is None:
                ranking = base.scan(None, progress)
            gain = (lambda r: r.agreement_recovered) if min_agreement is not None else (lambda r: r.recovered)
            order = [r.layer for r in sorted(ranking.layers, key=lambda r: -gain(r)) if gain(r) > 0]
            for k in range(1, len(order) + 1):
                if progress:
                    progress("mixed precision (adding float layers)", k, len(order))
                score = base.score_with_float(order[:k])
                steps.append((k, _points(base.float_score.pixel_accuracy, score.pixel_accuracy)))
                missing = shortfall(score)
                if missing < best[0]:
                    best = (missing, order[:k], score)
                if missing == 0:
                    break
        missing, float_layers, score = best
        base.quantize(Path(output), float_layers)
    drop = _points(base.float_score.pixel_accuracy, score.pixel_accuracy)
    return MixedPrecisionResult(Path(output), float_layers, score, base.float_score, drop, max_drop, missing == 0, steps,
                                min_agreement)


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
