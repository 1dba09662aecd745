"""Video drift: candidates against the reference frame by frame, and against per-frame
ground-truth masks when given (DAVIS layout: ``masks/00000.png ...``, 0 background, >0
object), with agreement over time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from segedge.data.sources import open_source
from segedge.errors import DataError, InputError, SourceError
from segedge.report.drift import infer_batched
from segedge.report.schema import VideoCandidate, VideoDrift
from segedge.runtime.base import Runner
from segedge.runtime.postprocess import GroundTruth



def _masks_dir(path: Path) -> Path:
    """``path`` itself, or its ``masks/`` folder (so the DAVIS clip root works too)."""
    return path / "masks" if (path / "masks").is_dir() else path


def video_drift(
    reference: Runner,
    candidates: Sequence[Runner],
    clip: str | os.PathLike[str],
    gt_masks: str | os.PathLike[str] | None = None,
    every: int = 1,
    limit: int | None = None,
    batch_size: int = 8,
    progress: Callable[[str, int, int], None] | None = None,
) -> VideoDrift:
    """Segment every ``every``-th frame of ``clip`` with each model and compare.

    Per frame: the fraction of pixels (at the model resolution) where each candidate's argmax
    equals the reference's; with ``gt_masks``, the IoU of the pet class and of the object (every
    class but background: pet or border) against the mask of that frame (matched by sorted file
    order), computed at the frame's size with the class map upsampled by nearest neighbour, as
    the live loop does (``nan`` -> ``None`` when both are empty or the frame has no mask). Each
    model sees each frame at its :meth:`~segedge.runtime.base.Runner.input_size` (the
    aspect-preserving size for a model of any input size).

    Args:
        reference, candidates: loaded models with the same input size.
        clip: video file (or image folder, or anything :func:`open_source` reads).
        gt_masks: folder of binary masks, or a folder holding ``masks/``.
        every: keep every ``every``-th frame (>= 1).
        limit: at most this many kept frames.
        batch_size: frames per inference call.
        progress: ``(stage, done, total)`` callback.

    Raises:
        InputError: ``every`` < 1 or a candidate of another input size.
        DataError: the clip yields no frame, or the masks folder holds no image.
    """
    if every < 1:
        raise InputError(f"--every must be at least 1, got {every}")
    size = reference.preprocess_config.size
    for runner in candidates:
        if runner.preprocess_config.size != size:
            raise InputError(f"{runner.name} takes {runner.preprocess_config.size} inputs, the reference {size}: not comparable")
    truth = GroundTruth.for_classes(_masks_dir(Path(gt_masks)), reference.classes) if gt_masks is not None else None
    report = progress or (lambda stage, done, total: None)
    agreement: list[list[float]] = [[] for _ in candidates]
    ious: list[list[tuple[float, float]]] = [[] for _ in range(len(candidates) + 1)]  # (pet, object) per frame
    try:
        with open_source(str(clip)) as frames:
            total = getattr(frames, "total", None) or 0
            expected = max(1, -(-total // every)) if total > 0 else 0
            expected = min(expected, limit) if limit and expected else expected
            batch: list[tuple[int, np.ndarray]] = []
            kept = 0
            for index, frame in enumerate(frames):
                if index % every:
                    continue
                if limit and kept == limit:
                    break
                batch.append((index, frame))
                kept += 1
                if len(batch) == batch_size:
                    _score(reference, candidates, batch, truth, agreement, ious)
                    batch = []
                    report("video", kept, max(kept, expected))
            if batch:
                _score(reference, candidates, batch, truth, agreement, ious)
                report("video", kept, max(kept, expected))
    except SourceError as exc:
        raise DataError(str(exc)) from None
    if not kept:
        raise DataError(f"{clip} yielded no frame")
    rows = []
    for runner, per_frame, iou in zip(candidates, agreement, ious[1:]):
        pet, whole = [p for p, _ in iou], [o for _, o in iou]
        rows.append(VideoCandidate(
            runner.name, float(np.mean(per_frame)), per_frame,
            _nullable(pet) if truth else None, _mean(pet) if truth else None,
            _nullable(whole) if truth else None, _mean(whole) if truth else None,
        ))
    return VideoDrift(str(clip), str(_masks_dir(Path(gt_masks))) if gt_masks else None, kept, every,
                      _nullable([p for p, _ in ious[0]]) if truth else None, rows,
                      _nullable([o for _, o in ious[0]]) if truth else None)


def _score(reference: Runner, candidates: Sequence[Runner], batch, truth: GroundTruth | None, agreement, ious) -> None:
    images = [frame for _, frame in batch]
    ref = infer_batched(reference, images).argmax(1).astype(np.uint8)
    preds = [ref] + [infer_batched(runner, images).argmax(1).astype(np.uint8) for runner in candidates]
    for runner, pred in zip(candidates, preds[1:]):
        if pred.shape != ref.shape:
            raise InputError(f"{runner.name} segments these frames at {pred.shape[1]}x{pred.shape[2]}, the reference at "
                             f"{ref.shape[1]}x{ref.shape[2]}: not comparable (export both with --dynamic-hw, or both without)")
    for k, pred in enumerate(preds[1:]):
        agreement[k].extend(round(float(v), 6) for v in (pred == ref).mean(axis=(1, 2)))
    if truth is None:
        return
    for k, pred in enumerate(preds):
        for j, (index, frame) in enumerate(batch):
            full = cv2.resize(pred[j], (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
            ious[k].append(truth.ious(index, full))


def _nullable(values: list[float]) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None
