"""THE preprocessing: one function shared by training, evaluation and every runtime backend.

Its parameters (:class:`PreprocessConfig`) are saved in every checkpoint, in the ONNX
metadata (key ``segedge.preprocess``) and in the TensorRT engine's sidecar, and every
runner rebuilds its preprocessing from the artifact it loads, so a deployed model cannot
drift from the one that was trained.

Default values follow Matani & Singh, "Efficient Image Segmentation Using PyTorch",
Part 2: images resized to 128x128 with nearest-neighbour interpolation (torchvision
``Resize(..., InterpolationMode.NEAREST)``, applied to image and trimap alike), RGB,
``ToTensor`` scaling to [0, 1], no mean/std normalisation (the model starts with a
BatchNorm2d on its input).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from segedge.contract import PreprocessConfig
from segedge.errors import InputError

__all__ = ["INTERPOLATIONS", "PreprocessConfig", "preprocess", "resize_labels"]  # PreprocessConfig lives in segedge.contract

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
}


def preprocess(
    images: np.ndarray | Sequence[np.ndarray],
    config: PreprocessConfig = PreprocessConfig(),
    out: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Turn BGR uint8 frames into the model's input batch.

    Resize to ``size`` (default ``config.size``; an aspect-preserving size from
    :meth:`segedge.contract.Contract.input_size_for` for a model of any input size) with
    ``config.interpolation``, reorder channels to
    ``config.channel_order``, scale by ``config.scale``, subtract ``config.mean`` and divide
    by ``config.std`` per channel when they are set, and lay out NCHW.

    Args:
        images: one ``(H, W, 3)`` uint8 BGR image, or a sequence of them (sizes may differ),
            as OpenCV decodes them.
        config: preprocessing parameters (from the checkpoint or artifact).
        out: optional preallocated ``(N, 3, height, width)`` float32 array to fill (the live
            loop reuses one buffer instead of allocating per frame).
        size: ``(height, width)`` of the model input in pixels; default ``config.size``.

    Returns:
        ``(N, 3, height, width)`` float32, C-contiguous; ``out`` when given.

    Raises:
        InputError: an image that is not ``(H, W, 3)`` uint8, or ``out`` of the wrong shape.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    n = len(images)
    h, w = size or config.size
    if out is None:
        out = np.empty((n, 3, h, w), dtype=np.float32)
    elif out.shape != (n, 3, h, w) or out.dtype != np.float32:
        raise InputError(f"output buffer must be float32 {(n, 3, h, w)}, got {out.dtype} {out.shape}")
    code = cv2.COLOR_BGR2RGB if config.channel_order == "RGB" else None
    if config.mean is not None or config.std is not None:
        mean = np.array(config.mean or (0.0, 0.0, 0.0), np.float32).reshape(3, 1, 1)
        inv_std = (1.0 / np.array(config.std or (1.0, 1.0, 1.0), np.float32)).reshape(3, 1, 1)
    else:
        mean = inv_std = None
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 BGR image, got {image.dtype} {image.shape}")
        resized = cv2.resize(image, (w, h), interpolation=INTERPOLATIONS[config.interpolation])
        if code is not None:
            resized = cv2.cvtColor(resized, code)
        np.multiply(resized.transpose(2, 0, 1), np.float32(config.scale), out=out[i], casting="unsafe")
        if mean is not None:
            out[i] -= mean
            out[i] *= inv_std
    return out


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(H, W)`` uint8 class map to ``(height, width)`` with nearest neighbour,
    the interpolation that never invents a class (the article resizes trimaps this way)."""
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
