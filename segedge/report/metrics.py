"""Segmentation metrics from one confusion matrix: pixel accuracy, IoU per class, mIoU.

Definitions (standard; as used by Matani & Singh and by PASCAL VOC / Cityscapes):

- pixel accuracy = correctly classified pixels / all pixels (micro average, the article's
  "pixel accuracy"),
- IoU_c = TP_c / (TP_c + FP_c + FN_c), computed over the whole data set, not per image,
- mIoU = mean of IoU_c over classes that occur in the ground truth or the prediction.
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
