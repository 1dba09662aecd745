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
# Limits that keep a hostile or careless file from exhausting a 4-8 GB edge device: a 1.2 MB
# PNG can declare 20000x20000 pixels (1.2 GB decoded as BGR, several GB while decoding).
# 64 Mpixel is 8x a 4K frame (192 MB as BGR); 256 MiB is far above any camera's JPEG.
MAX_IMAGE_PIXELS = 64 * 2**20  # pixels (width x height) an image header may declare
MAX_IMAGE_BYTES = 256 * 2**20  # bytes of an image file


def _check_size(path: Path, what: str) -> None:
    """Refuse a file larger than :data:`MAX_IMAGE_BYTES` or whose header declares more than
    :data:`MAX_IMAGE_PIXELS`, before anything is decoded (Pillow reads only the header)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if size > MAX_IMAGE_BYTES:
        raise DataError(f"{what} {path} is {size / 2**20:.0f} MiB; images over {MAX_IMAGE_BYTES // 2**20} MiB are refused")
    try:
        from PIL import Image
    except ImportError:  # no header reader: OpenCV's own limit (1 Gpixel) still applies
        return
    refusal = f"images over {MAX_IMAGE_PIXELS // 2**20} Mpixel are refused (a decompression bomb? resize it first)"
    try:
        with Image.open(path) as pil:
            width, height = pil.size
    except Image.DecompressionBombError:  # Pillow's own header check, past 2x its limit
        raise DataError(f"{what} {path} declares over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 10**6} Mpixel; {refusal}") from None
    except Exception:  # not a format Pillow knows, or a corrupt header: the decoders decide
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{what} {path} declares {width}x{height} pixels; {refusal}")


def _decode_with_opencv(data: np.ndarray) -> np.ndarray | None:
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except (cv2.error, MemoryError):  # OpenCV refuses or runs out of memory: unreadable
        return None
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
            if pil.size[0] * pil.size[1] > MAX_IMAGE_PIXELS:
                return None
            rgb = np.asarray(pil.convert("RGB"))
    except (Exception, MemoryError):  # Pillow raises many types on corrupt files; all mean "unreadable"
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file whatever its real format (the suffix is not trusted).

    Args:
        path: image file.

    Returns:
        ``(H, W, 3)`` uint8 array, BGR channel order.

    Raises:
        DataError: the file is missing, empty, truncated or not an image, or larger than
            :data:`MAX_IMAGE_BYTES` or :data:`MAX_IMAGE_PIXELS` (checked from the header,
            before decoding).
    """
    path = Path(path)
    _check_size(path, "image")
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
        DataError: unreadable, not a single-channel 8-bit image, or over the size limits.
    """
    path = Path(path)
    _check_size(path, "label map")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read label map {path}: {exc.strerror or exc}") from None
    try:
        labels = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    except (cv2.error, MemoryError):
        labels = None
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
