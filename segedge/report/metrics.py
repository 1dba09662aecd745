"""Segmentation metrics from one confusion matrix, and logits error statistics.

Every score of the report is read from a :class:`ConfusionMatrix` (rows = ground truth or
reference, columns = prediction), so every backend is scored identically:

- pixel accuracy = correctly classified pixels / all pixels (micro average; the article's
  "pixel accuracy", torchmetrics ``MulticlassAccuracy(3, average="micro")``),
- IoU_c = TP_c / (TP_c + FP_c + FN_c), over the whole data set, not per image,
- mIoU = mean of IoU_c over classes that occur in the ground truth or the prediction,
- the article's IoU (:meth:`ConfusionMatrix.article_iou`): micro IoU with the background
  class ignored, as torchmetrics ``MulticlassJaccardIndex(3, average="micro",
  ignore_index=BACKGROUND)`` computes it in Matani & Singh, "Efficient Image Segmentation
  Using PyTorch" (2023), Part 2, ``test_dataset_accuracy``,
- F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) (the report gives it for the border class, the
  thin trimap outline where quantisation errors show first),
- agreement = pixel accuracy of a matrix whose rows are the reference model's argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segedge.errors import InputError


@dataclass
class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` int64 matrix, rows = ground truth,
    columns = prediction."""

    num_classes: int

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @classmethod
    def from_matrix(cls, matrix) -> "ConfusionMatrix":
        """Wrap an existing square count matrix (e.g. read back from ``report.json``).

        Raises:
            InputError: not a square matrix of non-negative integers.
        """
        array = np.asarray(matrix, dtype=np.int64)
        if array.ndim != 2 or array.shape[0] != array.shape[1] or (array < 0).any():
            raise InputError(f"a confusion matrix must be square with non-negative counts, got shape {array.shape}")
        out = cls(array.shape[0])
        out.matrix = array.copy()
        return out

    def update(self, prediction: np.ndarray, target: np.ndarray) -> "ConfusionMatrix":
        """Add a batch.

        Args:
            prediction: integer class map, any shape, values in ``[0, num_classes)``.
            target: integer class map of the same shape.

        Raises:
            InputError: shapes differ or a value is out of range.
        """
        if prediction.shape != target.shape:
            raise InputError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
        p = prediction.astype(np.int64, copy=False).ravel()
        t = target.astype(np.int64, copy=False).ravel()
        k = self.num_classes
        if p.size and (p.min() < 0 or p.max() >= k or t.min() < 0 or t.max() >= k):
            raise InputError(f"class indices must lie in [0, {k})")
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        return self

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def pixel_accuracy(self) -> float:
        """Fraction of pixels classified correctly, in [0, 1] (``nan`` if empty)."""
        return float(np.trace(self.matrix) / self.total) if self.total else float("nan")

    def iou_per_class(self) -> np.ndarray:
        """``(num_classes,)`` float64 IoU; ``nan`` for a class absent from both sides."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over classes present in ground truth or prediction (``nan`` if none)."""
        iou = self.iou_per_class()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def article_iou(self, ignore: int = 1) -> float:
        """The article's IoU: micro-averaged IoU with class ``ignore`` (background) left out.

        Pixels whose ground truth is ``ignore`` are dropped first; over the rest,
        ``sum_c TP_c / sum_c (TP_c + FP_c + FN_c)`` for every class ``c != ignore``. A pet
        pixel predicted as background is a false negative of the pet class; a background
        pixel predicted as pet counts nowhere (its row was dropped). This is what torchmetrics
        ``MulticlassJaccardIndex(num_classes, average="micro", ignore_index=ignore)`` returns
        (Matani & Singh 2023, Part 2, with ``ignore`` = ``TrimapClasses.BACKGROUND`` = 1).

        Returns:
            A ratio in [0, 1]; ``nan`` when no pixel is left.

        Raises:
            InputError: ``ignore`` is not a class index.
        """
        if not 0 <= ignore < self.num_classes:
            raise InputError(f"class to ignore must lie in [0, {self.num_classes}), got {ignore}")
        kept = self.matrix.copy()
        kept[ignore, :] = 0  # rows are the ground truth: drop its pixels
        tp = np.diag(kept).astype(np.float64)
        denom = kept.sum(0) + kept.sum(1) - tp
        others = [c for c in range(self.num_classes) if c != ignore]
        total = denom[others].sum()
        return float(tp[others].sum() / total) if total else float("nan")

    def f1(self, cls: int) -> float:
        """F1 (Dice) of class ``cls``: ``2 TP / (2 TP + FP + FN)``; ``nan`` when the class is
        absent from both sides.

        Raises:
            InputError: ``cls`` is not a class index.
        """
        if not 0 <= cls < self.num_classes:
            raise InputError(f"class must lie in [0, {self.num_classes}), got {cls}")
        tp = float(self.matrix[cls, cls])
        fp = float(self.matrix[:, cls].sum()) - tp
        fn = float(self.matrix[cls, :].sum()) - tp
        return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else float("nan")


# |diff| histogram for a streaming p99: bin 0 holds exact zeros, then BINS_PER_DECADE
# log-spaced bins per decade from 1e-9 to 1e4 (each bin spans a factor of 10**(1/100), 2.3%).
_LOG_MIN, _LOG_MAX, BINS_PER_DECADE = -9, 4, 100


class LogitsError:
    """Streaming statistics of ``|candidate - reference|`` over every logit of every image.

    Max and mean are exact. The quantiles come from a histogram with 100 log-spaced bins
    per decade between 1e-9 and 1e4, so memory stays constant on large data sets; a
    quantile is reported as the upper edge of its bin, an upper bound at most 2.3% above
    the exact value (differences below 1e-9 are binned with 1e-9).
    """

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.hist = np.zeros(1 + (_LOG_MAX - _LOG_MIN) * BINS_PER_DECADE, dtype=np.int64)

    def update(self, candidate: np.ndarray, reference: np.ndarray) -> "LogitsError":
        """Add a batch of logits.

        Args:
            candidate, reference: float arrays of the same shape, e.g. ``(N, C, H, W)``.

        Raises:
            InputError: the shapes differ.
        """
        if candidate.shape != reference.shape:
            raise InputError(f"logits {candidate.shape} and reference logits {reference.shape} differ in shape")
        diff = np.abs(candidate.astype(np.float64, copy=False) - reference).ravel()
        if not diff.size:
            return self
        self.count += diff.size
        self.sum += float(diff.sum())
        self.max = max(self.max, float(diff.max()))
        nonzero = diff[diff > 0]
        with np.errstate(divide="ignore"):
            index = np.floor((np.log10(np.maximum(nonzero, 10.0**_LOG_MIN)) - _LOG_MIN) * BINS_PER_DECADE).astype(np.int64) + 1
        np.clip(index, 1, self.hist.size - 1, out=index)
        self.hist += np.bincount(index, minlength=self.hist.size)
        self.hist[0] += diff.size - nonzero.size
        return self

    def quantile(self, q: float) -> float:
        """Upper bound of the ``q`` quantile (``q`` in [0, 1]) of |diff|; ``nan`` if empty."""
        if not self.count:
            return float("nan")
        rank = q * self.count
        index = int(np.searchsorted(np.cumsum(self.hist), rank, side="left"))
        if index == 0:
            return 0.0
        return min(self.max, 10.0 ** (_LOG_MIN + index / BINS_PER_DECADE))

    def summary(self) -> dict[str, float]:
        """``{"max", "mean", "p99"}`` of |diff| in logit units."""
        mean = self.sum / self.count if self.count else float("nan")
        return {"max": self.max if self.count else float("nan"), "mean": mean, "p99": self.quantile(0.99)}
