"""Real input that needs no download, for ``segedge demo`` and default checks.

The photo is scikit-image's ``chelsea`` (a real cat, shipped inside the scikit-image
wheel). :func:`make_demo_clip` turns it into a short video with simulated hand-held
camera motion (pan, zoom, small roll, exposure drift and sensor noise), so the live loop
and the video drift report run on something camera-like.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from segedge._io import atomic_path
from segedge.errors import BackendUnavailableError, DataError


def demo_image() -> np.ndarray:
    """scikit-image's ``chelsea`` photo as ``(300, 451, 3)`` uint8 BGR.

    Raises:
        BackendUnavailableError: scikit-image is not installed.
    """
    try:
        from skimage import data
    except ImportError:
        raise BackendUnavailableError("the demo photo comes from scikit-image: pip install scikit-image") from None
    return np.ascontiguousarray(data.chelsea()[:, :, ::-1])


def camera_motion_frames(image: np.ndarray, frames: int = 72, size: tuple[int, int] = (640, 480), seed: int = 0):
    """Yield ``frames`` BGR uint8 frames of ``size`` (width, height) viewing ``image``
    through a slowly wandering virtual camera."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out_w, out_h = size
    for t in range(frames):
        phase = 2 * math.pi * t / max(frames, 1)
        zoom = 1.15 + 0.12 * math.sin(phase)  # > 1 keeps the view inside the photo
        angle = 3.0 * math.sin(1.7 * phase)  # degrees of roll
        cx = w / 2 + 0.06 * w * math.sin(phase)
        cy = h / 2 + 0.05 * h * math.cos(0.8 * phase)
        scale = zoom * max(out_w / w, out_h / h)
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        matrix[0, 2] += out_w / 2 - cx
        matrix[1, 2] += out_h / 2 - cy
        frame = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        gain = 1.0 + 0.08 * math.sin(0.6 * phase)
        noise = rng.normal(0.0, 3.0, frame.shape)
        yield np.clip(frame * gain + noise, 0, 255).astype(np.uint8)


def make_demo_clip(
    path: str | os.PathLike[str], frames: int = 72, size: tuple[int, int] = (640, 480), fps: float = 24.0
) -> Path:
    """Write the simulated camera clip of :func:`demo_image` to ``path`` (MP4, mp4v codec),
    atomically.

    Raises:
        DataError: OpenCV cannot write MP4 on this machine.
    """
    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp:  # the exclusive temporary ends in .mp4: OpenCV picks the container by it
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write an MP4 video to {path} (no mp4v encoder?)")
        try:
            for frame in camera_motion_frames(demo_image(), frames, size):
                writer.write(frame)
        finally:
            writer.release()
    return path
