"""THE evaluation function: predictions and confusion matrices over batches.

Training's validation (:func:`segedge.training.loop.evaluate`), the sensitivity scan's
:func:`~segedge.pipeline.sensitivity.score_onnx`, ``segedge doctor``'s agreement with PyTorch,
the drift report's per-model scores and ``scripts/make_embedded.py``'s model card all score
through :func:`evaluate` (or, where several models share one pass, through
:class:`Scores`), so a pixel accuracy or mIoU means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from segedge.report.metrics import ConfusionMatrix
from segedge.runtime.base import Runner

# (N, 3, H, W) float32 model inputs -> (N, C, H, W) logits (NumPy array or CPU torch tensor)
Predict = Callable[[np.ndarray], Any]
Model = Union[Runner, Predict]


def class_map(logits: Any) -> np.ndarray:
    """``(N, H, W)`` class indices: the argmax over the class axis of ``(N, C, H, W)`` logits
    (a NumPy array or a CPU torch tensor; ties go to the lowest class, as both libraries do)."""
    prediction = logits.argmax(1)
    return prediction.numpy() if hasattr(prediction, "numpy") else prediction


@dataclass
class Scores:
    """Confusion matrices accumulated over batches for one model.

    Attributes:
        truth: predictions against the ground-truth labels (``total == 0`` when none were given).
        agreement: predictions against a reference model's class maps (``total == 0`` when
            none were given); its pixel accuracy is the agreement in [0, 1].
    """

    truth: ConfusionMatrix
    agreement: ConfusionMatrix

    @classmethod
    def empty(cls, num_classes: int) -> "Scores":
        """Zeroed matrices for ``num_classes`` classes."""
        return cls(ConfusionMatrix(num_classes), ConfusionMatrix(num_classes))

    def update(self, prediction: np.ndarray, labels: np.ndarray | None = None, reference: np.ndarray | None = None) -> None:
        """Add one batch.

        Args:
            prediction: ``(N, H, W)`` integer class indices.
            labels: ``(N, H, W)`` ground-truth class indices, or ``None``.
            reference: ``(N, H, W)`` the reference model's class indices, or ``None``.
        """
        if reference is not None:
            self.agreement.update(prediction, reference)
        if labels is not None:
            self.truth.update(prediction, labels)


def _predict(model: Model) -> Predict:
    return model.infer if isinstance(model, Runner) else model


def predict_classes(model: Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``(N, H, W)`` class indices of ``model`` on ``images`` ``(N, 3, H, W)`` float32 (model
    inputs, already preprocessed), in calls of at most ``batch_size`` images."""
    predict = _predict(model)
    return np.concatenate([class_map(predict(images[i : i + batch_size])) for i in range(0, len(images), batch_size)])


def evaluate(
    model: Model,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 32,
    reference: np.ndarray | None = None,
    num_classes: int | None = None,
) -> Scores:
    """Score ``model`` on preprocessed images, batch by batch.

    Args:
        model: a :class:`~segedge.runtime.base.Runner` (its ``infer`` is called) or a callable
            taking ``(n, 3, H, W)`` float32 inputs and returning ``(n, C, H, W)`` logits.
        images: ``(N, 3, H, W)`` float32 model inputs.
        labels: ``(N, H, W)`` ground-truth class indices at the model resolution, or ``None``.
        batch_size: images per call (a runner's ``max_batch`` must allow it).
        reference: ``(N, H, W)`` a reference model's class indices (for agreement), or ``None``.
        num_classes: classes of the confusion matrices; default ``len(model.classes)`` for a
            runner (required for a callable).

    Returns:
        :class:`Scores`: ``truth`` against ``labels`` and ``agreement`` against ``reference``.

    Raises:
        InputError: a callable without ``num_classes``, or batch size below 1.
    """
    from segedge.errors import InputError

    if num_classes is None:
        if not isinstance(model, Runner):
            raise InputError("evaluate: give num_classes when the model is a plain callable")
        num_classes = len(model.classes)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    predict = _predict(model)
    scores = Scores.empty(num_classes)
    for start in range(0, len(images), batch_size):
        end = start + batch_size
        scores.update(
            class_map(predict(images[start:end])),
            None if labels is None else labels[start:end],
            None if reference is None else reference[start:end],
        )
    return scores
