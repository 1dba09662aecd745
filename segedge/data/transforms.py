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

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from segedge.errors import InputError

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
}


MAX_INPUT_PIXELS = 16 * 2**20  # a model input of 4096x4096 is far beyond any segmentation network on an edge device


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of :func:`preprocess`; stored with every artifact."""

    height: int = 128  # model input height in pixels
    width: int = 128  # model input width in pixels
    interpolation: str = "nearest"  # image resize: nearest | linear | area | cubic (article: nearest)
    channel_order: str = "RGB"  # channel order the model expects (frames arrive BGR from OpenCV)
    scale: float = 1.0 / 255.0  # uint8 -> float multiplier: [0, 255] -> [0, 1]

    def __post_init__(self) -> None:
        if not (isinstance(self.height, int) and isinstance(self.width, int)) or isinstance(self.height, bool) or isinstance(self.width, bool):
            raise InputError(f"input size must be whole pixels, got {self.height!r}x{self.width!r}")
        if self.height <= 0 or self.width <= 0:
            raise InputError(f"input size must be positive, got {self.height}x{self.width}")
        if self.height * self.width > MAX_INPUT_PIXELS:  # a tampered record would allocate GBs per frame
            raise InputError(f"input size {self.height}x{self.width} is over the {MAX_INPUT_PIXELS // 2**20} Mpixel limit of a model input")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)):
            raise InputError(f"scale must be a finite number, got {self.scale!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(
                f"unknown interpolation {self.interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}"
            )
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input."""
        return self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        """Rebuild from :meth:`to_dict` output.

        Raises:
            InputError: unknown keys or invalid values (an artifact from another tool).
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown preprocessing parameters {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"preprocessing metadata is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError("preprocessing metadata must be a JSON object")
        return cls.from_dict(data)


def preprocess(
    images: np.ndarray | Sequence[np.ndarray],
    config: PreprocessConfig = PreprocessConfig(),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Turn BGR uint8 frames into the model's input batch.

    Resize to ``config.size`` (``config.interpolation``), reorder channels to
    ``config.channel_order``, scale by ``config.scale`` and lay out NCHW.

    Args:
        images: one ``(H, W, 3)`` uint8 BGR image, or a sequence of them (sizes may differ),
            as OpenCV decodes them.
        config: preprocessing parameters (from the checkpoint or artifact).
        out: optional preallocated ``(N, 3, height, width)`` float32 array to fill (the live
            loop reuses one buffer instead of allocating per frame).

    Returns:
        ``(N, 3, height, width)`` float32, C-contiguous; ``out`` when given.

    Raises:
        InputError: an image that is not ``(H, W, 3)`` uint8, or ``out`` of the wrong shape.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    n = len(images)
    h, w = config.size
    if out is None:
        out = np.empty((n, 3, h, w), dtype=np.float32)
    elif out.shape != (n, 3, h, w) or out.dtype != np.float32:
        raise InputError(f"output buffer must be float32 {(n, 3, h, w)}, got {out.dtype} {out.shape}")
    code = cv2.COLOR_BGR2RGB if config.channel_order == "RGB" else None
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 BGR image, got {image.dtype} {image.shape}")
        resized = cv2.resize(image, (w, h), interpolation=INTERPOLATIONS[config.interpolation])
        if code is not None:
            resized = cv2.cvtColor(resized, code)
        np.multiply(resized.transpose(2, 0, 1), np.float32(config.scale), out=out[i], casting="unsafe")
    return out


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(H, W)`` uint8 class map to ``(height, width)`` with nearest neighbour,
    the interpolation that never invents a class (the article resizes trimaps this way)."""
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
