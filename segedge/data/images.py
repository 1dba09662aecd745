"""Robust image reading: JPEG, PNG (RGBA and 16-bit included), GIF and anything Pillow reads.

OpenCV is the primary decoder (it is what the runtime uses on camera frames); files it
cannot decode (GIF on OpenCV builds without a GIF codec, exotic formats) fall back to
Pillow when it is installed. The result is always ``(H, W, 3)`` uint8 in **BGR** order,
OpenCV's convention, so a photo and a camera frame enter :func:`segedge.data.transforms.preprocess`
the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from segedge.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _decode_with_opencv(data: np.ndarray) -> np.ndarray | None:
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:  # 16-bit PNG: keep the 8 most significant bits
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:  # drop alpha (Oxford-IIIT Pet has RGBA PNGs named .jpg)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    return None


def _decode_with_pillow(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as pil:
            rgb = np.asarray(pil.convert("RGB"))
    except Exception:  # Pillow raises many types on corrupt files; all mean "unreadable"
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file whatever its real format (the suffix is not trusted).

    Args:
        path: image file.

    Returns:
        ``(H, W, 3)`` uint8 array, BGR channel order.

    Raises:
        DataError: the file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if raw.size == 0:
        raise DataError(f"cannot read image {path}: the file is empty")
    image = _decode_with_opencv(raw)
    if image is None:
        image = _decode_with_pillow(path)
    if image is None:
        raise DataError(f"cannot read image {path}: not a decodable image (corrupt or truncated?)")
    return image


def read_label_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel label image (trimap or mask) without any colour conversion.

    Returns:
        ``(H, W)`` uint8 array of the stored values.

    Raises:
        DataError: unreadable, or not a single-channel 8-bit image.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read label map {path}: {exc.strerror or exc}") from None
    labels = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if labels is None:
        raise DataError(f"cannot read label map {path}: not a decodable image (corrupt or truncated?)")
    if labels.ndim == 3:  # a palette or RGB mask saved with identical channels
        if not (np.array_equal(labels[..., 0], labels[..., 1]) and np.array_equal(labels[..., 0], labels[..., 2])):
            raise DataError(f"label map {path} has colour channels that differ; expected a single-channel image")
        labels = labels[..., 0]
    if labels.dtype != np.uint8:
        raise DataError(f"label map {path} is {labels.dtype}; expected 8-bit values")
    return labels


def list_images(directory: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``directory`` (by suffix, case-insensitive), sorted by name.

    Raises:
        DataError: not a directory, or it holds no image files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{directory} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files
