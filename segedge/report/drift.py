"""Accuracy drift of deployed variants against the PyTorch reference, with speed beside it.

One streaming pass over the data: each batch of images goes through the reference and every
candidate (each with its own preprocessing contract), and every model is scored from one
confusion matrix against the ground truth (when the data has labels) and one against the
reference's argmax (agreement), so memory stays constant however large the data set. The
worst images (lowest agreement) of each candidate are kept as pictures on the way.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from segedge.data.oxford_pet import OxfordPet, is_pet_root
from segedge.data.samples import DataSpec, iter_samples
from segedge.data.transforms import resize_labels
from segedge.errors import DataError, InputError
from segedge.report.evaluate import Scores, class_map
from segedge.report.metrics import LogitsError
from segedge.report.panels import worst_case_panels
from segedge.report.schema import SCHEMA_VERSION, DriftReport, ModelReport, VideoDrift, WorstCase
from segedge.report.speed import measure_latency, measure_speed
from segedge.runtime.base import Runner

__all__ = ["SCHEMA_VERSION", "DriftReport", "EvalData", "ModelReport", "compare", "load_eval_data", "measure_latency"]

Progress = Callable[[str, int, int], None]  # (stage, done, total), as segedge.cli.common.progress_bar yields

# Matani & Singh, "Efficient Image Segmentation Using PyTorch" (Towards Data Science, 2023): test-split
# pixel accuracy of SegNet (Part 2) and SegNet with depthwise-separable convolutions (Part 3).
ARTICLE = {
    "citation": 'Matani & Singh, "Efficient Image Segmentation Using PyTorch", 2023, Parts 2 and 3',
    "pixel_accuracy": {"segnet": 0.8828, "segnet-dsc": 0.8696},
}
FULL_TEST_SPLIT = 3669  # images in the official Oxford-IIIT Pet test.txt
BACKGROUND, BORDER = 1, 2  # class indices (trimap value - 1)


@dataclass
class EvalData:
    """Evaluation data, read lazily: iterate for ``(name, image, labels)`` with ``image``
    ``(H, W, 3)`` BGR uint8 and ``labels`` ``(H, W)`` uint8 class indices (``None`` when
    unlabelled). ``size`` is the number of samples listed (unreadable ones are skipped)."""

    source: str
    size: int
    labelled: bool
    iterate: Callable[[], Iterator[tuple[str, np.ndarray, np.ndarray | None]]]
    split: str | None = None
    full_test_split: bool = False  # the whole official Oxford-IIIT Pet test split

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        return self.iterate()

    def __len__(self) -> int:
        return self.size


def load_eval_data(source: str | os.PathLike[str], split: str = "test", limit: int | None = None, every: int = 1) -> EvalData:
    """Evaluation data from an Oxford-IIIT Pet root (labelled split, read lazily), an image
    folder or a video file (every ``every``-th frame, unlabelled, read into memory), through
    the shared sample iterator (:func:`segedge.data.samples.iter_samples`).

    Raises:
        DataError: nothing readable, or not a Pet root, folder or video.
    """
    path = Path(source)
    if path.is_dir() and is_pet_root(path):
        dataset = OxfordPet(path, split)
        spec = DataSpec(path, split, limit=limit or None)

        def iterate():
            for sample in iter_samples(spec):
                yield sample.name, sample.image, sample.labels

        size = min(len(dataset), limit) if limit else len(dataset)
        full = split == "test" and size == len(dataset) == FULL_TEST_SPLIT
        return EvalData(f"Oxford-IIIT Pet {split} split ({path})", size, True, iterate, split, full)
    frames = [(sample.name, sample.image, None) for sample in iter_samples(DataSpec(path, every=every, limit=limit or None))]
    if not frames:
        raise DataError(f"{path} yielded no readable image")
    return EvalData(f"{path} (unlabelled)", len(frames), False, lambda: iter(frames))


def _batches(data: EvalData, size: int) -> Iterator[list[tuple[int, str, np.ndarray, np.ndarray | None]]]:
    batch = []
    for index, (name, image, labels) in enumerate(data):
        batch.append((index, name, image, labels))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def infer_batched(runner: Runner, images: list[np.ndarray]) -> np.ndarray:
    """``(N, C, H, W)`` float32 logits, split into calls of at most ``max_batch``."""
    step = runner.max_batch or len(images)
    return np.concatenate([runner.infer(runner.preprocess(images[i : i + step])) for i in range(0, len(images), step)])


class _Scorer:
    """Everything accumulated for one model during the pass."""

    def __init__(self, runner: Runner, worst: int):
        k = len(runner.classes)
        self.runner, self.worst_n = runner, worst
        self.scores = Scores.empty(k)
        self.truth, self.agreement = self.scores.truth, self.scores.agreement
        self.logits = LogitsError()
        self.per_image: list[float] = []
        self.worst: list[tuple[float, int, str, np.ndarray]] = []  # max-heap by -agreement

    def update(self, batch, logits: np.ndarray, ref_logits: np.ndarray, ref_pred: np.ndarray, labels) -> np.ndarray:
        """Score one batch; returns this model's class map ``(N, H, W)`` uint8."""
        pred = class_map(logits).astype(np.uint8)
        self.scores.update(pred, labels, ref_pred)
        if logits is not ref_logits:
            self.logits.update(logits, ref_logits)
        for j, (index, name, image, _) in enumerate(batch):
            agree = float((pred[j] == ref_pred[j]).mean())
            self.per_image.append(round(agree, 6))
            if self.worst_n and agree < 1.0 and (len(self.worst) < self.worst_n or -agree > self.worst[0][0]):
                truth = None if labels is None else labels[j]
                item = (-agree, index, name, worst_case_panels(image, ref_pred[j], pred[j], truth, self.runner.contract.palette))
                (heapq.heappushpop if len(self.worst) == self.worst_n else heapq.heappush)(self.worst, item)
        return pred


def fp32_sources(runners: Sequence[Runner]) -> dict[int, int]:
    """For each quantized or half-precision candidate (index >= 1), the FP32 candidate it was
    made from: an FP32 artifact of the same checkpoint (its contract's ``checkpoint_sha256``,
    or the model name where none is recorded), of the same target form when there are
    several. The PyTorch reference (index 0) is never one: agreement with it is the
    ``agreement`` column already.

    Returns:
        ``{candidate index: FP32 candidate index}``; candidates with no FP32 match are absent.
    """
    from segedge.contract import Precision

    def origin(runner: Runner) -> str:
        return runner.contract.checkpoint_sha256 or f"model:{runner.contract.model}"

    fp32 = [j for j, r in enumerate(runners) if j and r.precision is Precision.FP32]
    found = {}
    for i, runner in enumerate(runners):
        if not i or runner.precision is Precision.FP32:
            continue
        same = [j for j in fp32 if origin(runners[j]) == origin(runner)]
        same_form = [j for j in same if runners[j].contract.target == runner.contract.target]
        if same_form or same:
            found[i] = (same_form or same)[0]
    return found


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")[:60]


def compare(
    reference: Runner,
    candidates: Sequence[Runner],
    data: EvalData | None,
    latency_runs: int = 50,
    batch_size: int = 8,
    worst: int = 6,
    warmup: int = 5,
    video: VideoDrift | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Score the reference and every candidate on ``data``, and time each.

    Args:
        reference: usually the PyTorch checkpoint.
        candidates: deployed variants (ONNX FP32/FP16/INT8, engines).
        data: from :func:`load_eval_data`; ``None`` with ``video`` (agreement then comes
            from the video).
        latency_runs: timed batch-1 calls per model (see :func:`measure_speed`).
        warmup: untimed calls before timing, per model and batch size.
        batch_size: images per inference call while scoring.
        worst: lowest-agreement images kept per candidate (images agreeing fully are never kept).
        video: frame-by-frame drift from :func:`segedge.report.video.video_drift`.
        progress: ``(stage, done, total)`` callback.

    Raises:
        InputError: a candidate's input size or classes differ from the reference's, or
            neither ``data`` nor ``video`` is given.
        DataError: ``data`` yields no readable image.
    """
    size = reference.preprocess_config.size
    for runner in candidates:
        if runner.preprocess_config.size != size or len(runner.classes) != len(reference.classes):
            raise InputError(
                f"{runner.name} takes {runner.preprocess_config.size} inputs with {len(runner.classes)} classes, "
                f"the reference {size} with {len(reference.classes)}: not comparable"
            )
    if data is None and video is None:
        raise InputError("give evaluation data, a video, or both")
    report = progress or (lambda stage, done, total: None)
    runners = [reference, *candidates]
    scorers = [_Scorer(runner, worst if i else 0) for i, runner in enumerate(runners)]
    if data is not None:
        speed_images = [image for _, (_, image, _) in zip(range(8), data)]
        if not speed_images:
            raise DataError(f"{data.source}: no readable image")
    else:
        from segedge.data.sources import open_source

        with open_source(video.source) as frames:  # type: ignore[union-attr]
            speed_images = [frame for _, frame in zip(range(8), frames)]
    # timed before scoring, so each model's first allocations at batch 1 and 8 count in its RSS growth
    speeds = [
        measure_speed(runner, speed_images, runs=latency_runs, warmup=warmup, on_progress=lambda d, t, n=runner.name: report(f"speed {n}", d, t))
        for runner in runners
    ]
    fp32_of = fp32_sources(runners)
    same_as_fp32 = {i: [0, 0] for i in fp32_of}  # candidate index -> [pixels equal to its FP32 model's argmax, pixels]
    if data is not None:
        done = 0
        for batch in _batches(data, batch_size):
            images = [item[2] for item in batch]
            labels = np.stack([resize_labels(item[3], *size) for item in batch]) if data.labelled else None
            ref_logits = infer_batched(reference, images)
            ref_pred = class_map(ref_logits).astype(np.uint8)
            preds = []
            for runner, scorer in zip(runners, scorers):
                logits = ref_logits if runner is reference else infer_batched(runner, images)
                preds.append(scorer.update(batch, logits, ref_logits, ref_pred, labels))
            for i, j in fp32_of.items():
                same_as_fp32[i][0] += int(np.count_nonzero(preds[i] == preds[j]))
                same_as_fp32[i][1] += preds[i].size
            done += len(batch)
            report("score", done, max(done, data.size))
    rows = []
    for i, (runner, scorer, speed) in enumerate(zip(runners, scorers, speeds)):
        rows.append(_row(runner, scorer, speed, data, video, rows[0] if rows else None, i))
        if i in fp32_of and same_as_fp32[i][1]:
            rows[-1].fp32_model = runners[fp32_of[i]].name
            rows[-1].fp32_agreement = same_as_fp32[i][0] / same_as_fp32[i][1]
    described = {
        "source": data.source if data else video.source,  # type: ignore[union-attr]
        "images": len(scorers[0].per_image) if data else video.frames,  # type: ignore[union-attr]
        "labelled": bool(data and data.labelled),
        "split": data.split if data else None,
        "article": None,
    }
    if data is not None and data.full_test_split:
        model_name = getattr(getattr(reference, "checkpoint", None), "model_name", None)
        described["article"] = {**ARTICLE, "reference_model": model_name}
    return DriftReport(described, reference.name, rows, video=video)


def _row(runner: Runner, scorer: _Scorer, speed, data: EvalData | None, video: VideoDrift | None, ref: ModelReport | None, i: int) -> ModelReport:
    labelled = data is not None and data.labelled and scorer.truth.total > 0
    m = scorer.truth
    classes = list(runner.classes)
    iou = dict(zip(classes, m.iou_per_class().tolist())) if labelled else None
    if data is not None:
        agreement = scorer.agreement.pixel_accuracy()
    else:
        agreement = 1.0 if i == 0 else next(c.agreement for c in video.candidates if c.name == runner.name)  # type: ignore[union-attr]
    one = speed.latency["1"]
    row = ModelReport(
        name=runner.name,
        artifact=str(runner.artifact) if runner.artifact else None,
        backend=str(runner.backend),
        precision=str(runner.precision),
        pixel_accuracy=m.pixel_accuracy() if labelled else None,
        miou=m.miou() if labelled else None,
        iou_per_class=iou,
        agreement=agreement,
        latency_ms={"p50": one.p50, "p90": one.p90, "p99": one.p99, "mean": one.mean, "runs": one.runs},
        size_mb=runner.size_mb,
        is_reference=i == 0,
        article_iou=m.article_iou(BACKGROUND) if labelled else None,
        border_f1=m.f1(BORDER) if labelled and len(classes) > BORDER else None,
        confusion=m.matrix.tolist() if labelled else None,
        agreement_confusion=scorer.agreement.matrix.tolist() if data is not None else None,
        per_image_agreement=scorer.per_image,
        logits_error=scorer.logits.summary() if scorer.logits.count else None,
        speed=speed,
    )
    if ref is not None:
        for metric in ("pixel_accuracy", "miou", "article_iou", "border_f1", "agreement"):
            mine, theirs = getattr(row, metric), getattr(ref, metric)
            row.deltas[metric] = None if mine is None or theirs is None else mine - theirs
        if row.iou_per_class and ref.iou_per_class:
            row.iou_delta_per_class = {c: _sub(row.iou_per_class[c], ref.iou_per_class.get(c)) for c in classes}
        slug = _slug(f"{i:02d}-{runner.artifact.stem if runner.artifact else 'model'}-{runner.precision}")
        row.worst = [
            WorstCase(name, index, -neg, f"worst/{slug}-{k}.png", panels)
            for k, (neg, index, name, panels) in enumerate(sorted(scorer.worst, key=lambda item: (-item[0], item[1])))
        ]
    return row


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)) else a - b
