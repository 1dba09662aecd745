"""Frame sources for the live loop: webcam index (V4L2), video file, RTSP/HTTP URL, image
folder, image glob or a single image. All yield ``(H, W, 3)`` uint8 BGR frames."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from segedge.data.images import IMAGE_SUFFIXES, list_images, read_image
from segedge.errors import DataError, SourceError

log = logging.getLogger(__name__)


class FrameSource:
    """Iterate frames from one source; see :func:`open_source`.

    Attributes:
        description: human-readable source.
        fps: nominal frame rate (frames per second; 0 if unknown).
        live: True for cameras and streams (frames are not replayable).
        skipped: frames that could not be decoded and were skipped.
    """

    description: str = ""
    fps: float = 0.0
    live: bool = False
    skipped: int = 0
    total: int | None = None  # frame count if known

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CaptureSource(FrameSource):
    """cv2.VideoCapture over a camera index, a file or a URL."""

    def __init__(self, target: int | str, description: str, live: bool):
        self.description, self.live = description, live
        if isinstance(target, int):
            self.capture = cv2.VideoCapture(target)
        else:
            self.capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            hint = " (no such video device, or it is in use)" if isinstance(target, int) else ""
            raise SourceError(f"cannot open {description}{hint}")
        if live:
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # never queue stale frames
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 and not live else None

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self.capture.read()
            if not ok:
                return
            if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
                self.skipped += 1
                continue
            yield frame

    def close(self) -> None:
        self.capture.release()


class ImageFilesSource(FrameSource):
    """A sorted list of image files, read one by one; unreadable files are skipped."""

    def __init__(self, files: list[Path], description: str):
        self.files, self.description, self.total = files, description, len(files)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.files:
            try:
                yield read_image(path)
            except DataError as exc:
                self.skipped += 1
                log.warning("skipping frame: %s", exc)


def open_source(spec: str | int) -> FrameSource:
    """Open a frame source from a command-line style specification.

    Args:
        spec: camera index (``0`` or ``"0"``), ``rtsp://``/``http(s)://`` URL, video file,
            image file, image directory, or a glob such as ``"frames/*.jpg"``.

    Raises:
        SourceError: nothing matches, or OpenCV cannot open it.
    """
    text = str(spec)
    if text.isdigit():
        return CaptureSource(int(text), f"camera {text}", live=True)
    if "://" in text:
        return CaptureSource(text, f"stream {text}", live=True)
    path = Path(text)
    if path.is_dir():
        try:
            return ImageFilesSource(list_images(path), f"image folder {path}")
        except DataError as exc:
            raise SourceError(str(exc)) from None
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFilesSource([path], f"image {path}")
        return CaptureSource(str(path), f"video {path}", live=False)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no image matches {text}")
        return ImageFilesSource(files, f"{len(files)} images matching {text}")
    raise SourceError(f"source {text} is neither a camera index, a URL, a file, a folder nor a glob that matches")


def source_exists(spec: str) -> bool:
    """Cheap check used by the CLI before loading a model."""
    return spec.isdigit() or "://" in spec or os.path.exists(spec) or bool(glob.glob(spec))
