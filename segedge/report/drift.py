"""Accuracy drift of deployed variants against the PyTorch reference, with speed beside it.

Every model (the reference included) preprocesses the same images with its own
preprocessing contract, and is scored from one confusion matrix per model against the
ground truth (when the data has labels) and against the reference's argmax (agreement).
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import segedge
from segedge.data.oxford_pet import OxfordPet, is_pet_root
from segedge.data.transforms import PreprocessConfig, resize_labels
from segedge.errors import DataError, InputError
from segedge.report.metrics import ConfusionMatrix
from segedge.runtime.base import Runner

SCHEMA_VERSION = 1


@dataclass
class EvalData:
    """Images (BGR uint8) and optional labels ``(H, W)`` uint8 class maps at image size."""

    images: list[np.ndarray]
    labels: list[np.ndarray] | None
    source: str
    names: list[str]


def load_eval_data(source: str | os.PathLike[str], split: str = "test", limit: int | None = None, every: int = 1) -> EvalData:
    """Evaluation data from an Oxford-IIIT Pet root (labelled split), an image folder or a
    video file (every ``every``-th frame; unlabelled).

    Raises:
        DataError: nothing readable.
    """
    path = Path(source)
    if path.is_dir() and is_pet_root(path):
        dataset = OxfordPet(path, split)
        images, labels, names = [], [], []
        for sample, image, classes in dataset.iter_readable(limit):
            images.append(image)
            labels.append(classes)
            names.append(sample.name)
        if not images:
            raise DataError(f"{path}: no readable sample in split {split!r}")
        return EvalData(images, labels, f"Oxford-IIIT Pet {split} split ({path})", names)
    from segedge.data.sources import open_source
    from segedge.errors import SourceError

    images = []
    try:
        with open_source(str(path)) as frames:
            for i, frame in enumerate(frames):
                if limit and len(images) == limit:
                    break
                if i % every == 0:
                    images.append(frame)
    except SourceError as exc:
        raise DataError(str(exc)) from None
    if not images:
        raise DataError(f"{path} yielded no readable image")
    return EvalData(images, None, f"{path} (unlabelled)", [f"frame {i * every:05d}" for i in range(len(images))])


@dataclass
class ModelReport:
    """One row of the report: a model scored on the evaluation data. Accuracy fields are
    ``None`` when the data has no labels. Units: ratios in [0, 1], milliseconds, MB."""

    name: str
    artifact: str | None
    backend: str
    precision: str
    pixel_accuracy: float | None
    miou: float | None
    iou_per_class: dict[str, float] | None
    agreement: float  # pixels whose argmax equals the reference's
    latency_ms: dict[str, float]  # batch-1 latency: p50, p99 (and mean), after warm-up
    size_mb: float | None
    is_reference: bool = False


@dataclass
class DriftReport:
    """The whole comparison; rendered to JSON (schema ``SCHEMA_VERSION``) and Markdown."""

    data: dict[str, object]
    reference: str
    models: list[ModelReport]
    schema_version: int = SCHEMA_VERSION
    segedge_version: str = segedge.__version__
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_latency(runner: Runner, batch: np.ndarray, runs: int = 50, warmup: int = 5) -> dict[str, float]:
    """Batch latency in ms over ``runs`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        runner.infer(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(batch)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50": float(np.percentile(times, 50)),
        "p99": float(np.percentile(times, 99)),
        "mean": float(np.mean(times)),
        "runs": runs,
    }


def _predict_all(runner: Runner, images: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(images), batch_size):
        out.append(runner.predict(list(images[start : start + batch_size])))
    return np.concatenate(out)


def compare(
    reference: Runner,
    candidates: Sequence[Runner],
    data: EvalData,
    latency_runs: int = 50,
    batch_size: int = 8,
    on_progress: Callable[[str], None] | None = None,
) -> DriftReport:
    """Score the reference and every candidate on ``data``.

    Args:
        reference: usually the PyTorch checkpoint.
        candidates: deployed variants (ONNX FP32/FP16/INT8, engines).
        data: from :func:`load_eval_data`.
        latency_runs: timed batch-1 calls per model.
        batch_size: images per inference call while scoring.
        on_progress: called with each model's name before it is scored.

    Raises:
        InputError: a candidate's input size differs from the reference's.
    """
    size = reference.preprocess_config.size
    for runner in candidates:
        if runner.preprocess_config.size != size:
            raise InputError(
                f"{runner.name} takes {runner.preprocess_config.size} inputs, the reference {size}: not comparable"
            )
    labels = [resize_labels(lab, *size) for lab in data.labels] if data.labels is not None else None
    reference_pred: np.ndarray | None = None
    rows = []
    for index, runner in enumerate([reference, *candidates]):
        if on_progress:
            on_progress(runner.name)
        pred = _predict_all(runner, data.images, min(batch_size, runner.max_batch or batch_size))
        if reference_pred is None:
            reference_pred = pred
        accuracy: dict[str, object] = {"pixel_accuracy": None, "miou": None, "iou_per_class": None}
        if labels is not None:
            matrix = ConfusionMatrix(len(runner.classes))
            matrix.update(pred, np.stack(labels))
            accuracy = {
                "pixel_accuracy": matrix.pixel_accuracy(),
                "miou": matrix.miou(),
                "iou_per_class": dict(zip(runner.classes, matrix.iou_per_class().tolist())),
            }
        latency = measure_latency(runner, runner.preprocess(data.images[0]), runs=latency_runs)
        rows.append(
            ModelReport(
                name=runner.name,
                artifact=str(runner.artifact) if runner.artifact else None,
                backend=runner.backend,
                precision=runner.precision,
                agreement=float((pred == reference_pred).mean()),
                latency_ms=latency,
                size_mb=runner.size_mb,
                is_reference=index == 0,
                **accuracy,  # type: ignore[arg-type]
            )
        )
    described = {"source": data.source, "images": len(data.images), "labelled": labels is not None}
    return DriftReport(described, reference.name, rows)
