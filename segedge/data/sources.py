"""Frame sources for the live loop: webcam index (V4L2), video file, RTSP/HTTP URL, GStreamer
pipeline, image folder, image glob or a single image. All deliver ``(H, W, 3)`` uint8 BGR frames.

A source is read with :meth:`FrameSource.read_into`, which decodes into a caller-owned
buffer when the size allows (no allocation per frame), or by plain iteration. Live sources
(cameras, streams) can be reopened with :meth:`FrameSource.reopen` after a failure; the
threaded reader of :mod:`segedge.runtime.pipeline` does that with back-off.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from segedge.data.images import IMAGE_SUFFIXES, list_images, read_image
from segedge.errors import BackendUnavailableError, DataError, InputError, SourceError

log = logging.getLogger(__name__)

# scheme://user[:password]@host -> scheme://host; up to the last "@" before the path (a password may hold "@").
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")


def redact_url(text: str) -> str:
    """Remove the credentials from every URL in ``text``.

    ``rtsp://admin:secret@10.0.0.5/stream`` becomes ``rtsp://10.0.0.5/stream``. Every source
    description, error message, summary line and statistics record goes through it, so a
    camera password given on the command line is never printed, logged or served.

    Args:
        text: any message; text without ``scheme://user@`` is returned unchanged.

    Returns:
        ``text`` with each ``user[:password]@`` after a ``scheme://`` removed.
    """
    return _CREDENTIALS.sub(r"\1", text)


class FrameSource:
    """Frames from one source; see :func:`open_source`.

    Attributes:
        description: human-readable source.
        fps: nominal frame rate in frames per second (0 if unknown).
        live: True for cameras and streams (frames are not replayable, latest wins).
        skipped: frames that could not be decoded and were skipped.
        skip_reason: why the first skipped frame was skipped.
        warn_skips: log a warning per skipped frame (``segedge run`` turns it off and reports
            the count and the first reason in its one-line summary or error instead).
        missing: frames a file declares but that could not be read at all (a truncated or
            corrupt file ended early); known once the end was reached.
        total: frame count if known.
    """

    description: str = ""
    fps: float = 0.0
    live: bool = False
    skipped: int = 0
    skip_reason: str | None = None  # why the first skipped frame was skipped
    warn_skips: bool = True  # log each skipped frame as a warning (False: the caller reports skip_reason)
    missing: int = 0
    total: int | None = None

    def read_into(self, buffer: np.ndarray | None = None) -> np.ndarray | None:
        """Next frame, decoded into ``buffer`` when its shape fits (else a new array).

        Returns:
            ``(H, W, 3)`` uint8 BGR, or ``None`` at the end of the source (or when a live
            source stops delivering; see :meth:`reopen`).
        """
        raise NotImplementedError

    def reopen(self) -> bool:
        """Try to reopen after a failure; True on success. Only live sources can."""
        return False

    def rewind(self) -> bool:
        """Restart a file or image sequence from its first frame (for ``--loop``)."""
        return False

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read_into(None)) is not None:
            yield frame

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


URL_TIMEOUT_MS = 10_000  # a stream that answers nothing for 10 s is down (OpenCV's default: 30 s)


def _interruptible(open_capture):
    """Run a blocking ``open_capture()`` in a daemon thread, so Ctrl-C in the main thread
    stops the wait at once instead of after the stream's connection timeout."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(open_capture()), name="segedge-open", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    return result[0] if result else _Closed()


class _Closed:
    """What a failed open returns: a capture that is not open."""

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return False

    def release(self) -> None:
        pass


class CaptureSource(FrameSource):
    """cv2.VideoCapture over a camera index, a file or a URL.

    Args:
        target: camera index, or a file path / URL opened with OpenCV's FFmpeg backend.
        description: human-readable name for messages.
        live: a camera or stream (latest frame wins, can be reopened).
        decode_threads: FFmpeg decoder threads for files and URLs (0: FFmpeg's default, one
            per core). The default 1 suits the live loop, whose own threads already keep
            the cores busy: FFmpeg's frame threading costs CPU time on synchronisation
            (measured here on 854x480 MPEG-4: 2.9 ms of CPU per frame with 1 thread,
            4.3 ms with 2) and adds a frame of latency per extra thread.
    """

    def __init__(self, target: int | str, description: str, live: bool, decode_threads: int = 1):
        self.target, self.description, self.live = target, description, live
        self.decode_threads = decode_threads
        self._read = 0  # frames read since the last rewind
        self.capture = self._open()
        if self.capture is None:
            hint = " (no such video device, or it is in use)" if isinstance(target, int) else (
                "" if live else " (not a video, or truncated: an MP4 cut short loses its index)")
            raise SourceError(f"cannot open {description}{hint}")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 and not live else None

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target)
        elif self.live:
            capture = _interruptible(self._open_url)
        else:
            params = [cv2.CAP_PROP_N_THREADS, self.decode_threads] if self.decode_threads > 0 else []
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            return None
        if self.live:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # never queue stale frames in the driver
        return capture

    def _open_url(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS]
        if self.decode_threads > 0:
            params += [cv2.CAP_PROP_N_THREADS, self.decode_threads]
        return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)

    def read_into(self, buffer: np.ndarray | None = None) -> np.ndarray | None:
        while True:
            try:
                ok, frame = self.capture.read(buffer) if buffer is not None else self.capture.read()
            except (cv2.error, MemoryError):
                ok, frame = False, None
            if not ok or frame is None:
                if not self.live and self.total:
                    self.missing = max(0, self.total - self._read)
                return None
            self._read += 1
            if frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8:
                return frame
            self.skipped += 1  # a corrupt or unexpected frame: skip and count it

    def reopen(self) -> bool:
        if not self.live:
            return False
        self.capture.release()
        capture = self._open()
        if capture is None:
            return False
        self.capture = capture
        return True

    def rewind(self) -> bool:
        if self.live:
            return False
        self._read = 0
        return bool(self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0))

    def close(self) -> None:
        self.capture.release()


GSTREAMER_CHECK = 'python -c "import cv2; print(cv2.getBuildInformation())" | grep GStreamer'


def gstreamer_support() -> str | None:
    """What OpenCV's build information says of GStreamer when it was built with it (``"YES
    (1.20.3)"``), else ``None`` (the ``opencv-python`` wheels from PyPI are built without)."""
    found = re.search(r"^\s*GStreamer:\s*(.+?)\s*$", cv2.getBuildInformation(), re.MULTILINE)
    return found.group(1) if found and found.group(1).upper().startswith("YES") else None


def is_gstreamer_pipeline(spec: str) -> bool:
    """A GStreamer launch line (elements joined by `` ! ``) rather than a path, URL or index."""
    return re.search(r"\s!\s", spec) is not None and not Path(spec).exists()


def check_pipeline(pipeline: str) -> None:
    """Whether OpenCV here can open the GStreamer ``pipeline`` (checked before any work).

    Raises:
        BackendUnavailableError: this OpenCV was built without GStreamer (:func:`gstreamer_support`).
        InputError: the pipeline has no ``appsink`` (OpenCV reads frames from one).
    """
    shown = redact_url(" ".join(pipeline.split()))
    if gstreamer_support() is None:
        raise BackendUnavailableError(
            f"source {shown!r} is a GStreamer pipeline, but OpenCV {cv2.__version__} here was built without GStreamer "
            f"(check: {GSTREAMER_CHECK}); install an OpenCV built with it (JetPack's on a Jetson, or the distribution's "
            "python3-opencv) instead of the opencv-python wheels"
        )
    if "appsink" not in pipeline:
        raise InputError(f"GStreamer pipeline {shown!r} has no appsink; end it with '! videoconvert ! video/x-raw,format=BGR ! appsink drop=1'")


class GStreamerSource(CaptureSource):
    """A GStreamer pipeline opened with OpenCV's GStreamer backend (``cv2.CAP_GSTREAMER``), as
    jetson-inference's videoSource opens CSI cameras and hardware decoders: for example
    ``nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 !
    nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1``
    on a Jetson. Read as a live source (newest frame wins, reopened with back-off).

    Args:
        pipeline: the launch line; it must end in an ``appsink`` (OpenCV reads frames from it).

    Raises:
        BackendUnavailableError: this OpenCV was built without GStreamer (:func:`gstreamer_support`).
        InputError: the pipeline has no ``appsink``.
        SourceError: GStreamer cannot start the pipeline.
    """

    def __init__(self, pipeline: str):
        check_pipeline(pipeline)
        super().__init__(pipeline, f"GStreamer pipeline {redact_url(' '.join(pipeline.split()))}", live=True, decode_threads=0)

    def _open_url(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self.target, cv2.CAP_GSTREAMER)


def read_sources_file(path: str | os.PathLike[str]) -> list[str]:
    """The sources of a text file, one a line (as Ultralytics reads a ``.streams`` file):
    surrounding spaces stripped, blank lines and lines starting with ``#`` skipped.

    Raises:
        InputError: the file is missing, unreadable, not text, or lists no source.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--sources {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}); expected a text file, one source a line") from None
    specs = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not specs:
        raise InputError(f"--sources {path} lists no source; expected one camera index, file, URL or pipeline a line")
    return specs


def source_name(spec: str | int) -> str:
    """A short name for a source, safe as a file name: ``camera0``, a file's or folder's stem,
    a URL's host and path without credentials, a pipeline's first element.

    Only ``A-Z a-z 0-9 . _ -`` are kept (others become ``_``), never a leading dot, at most
    48 characters; ``source`` when nothing is left.
    """
    text = str(spec).strip()
    if text.isdigit():
        name = f"camera{text}"
    elif is_gstreamer_pipeline(text):
        name = (text.split("!")[0].split() or ["gstreamer"])[0]
    elif "://" in text:
        name = redact_url(text).split("://", 1)[1].split("?")[0]
    else:
        path = Path(text)
        if any(ch in text for ch in "*?[") and not path.exists():
            path = path.parent
        name = path.stem if path.suffix and not path.is_dir() else path.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:48].strip("._-")
    return name or "source"


def source_names(specs: list[str]) -> list[str]:
    """:func:`source_name` of each spec, made unique (``libby``, ``libby-2``, ...)."""
    names: list[str] = []
    for spec in specs:
        base = name = source_name(spec)
        n = 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


class ImageFilesSource(FrameSource):
    """A sorted list of image files, read one by one; unreadable files are skipped and counted."""

    def __init__(self, files: list[Path], description: str):
        self.files, self.description, self.total = files, description, len(files)
        self._next = 0

    def read_into(self, buffer: np.ndarray | None = None) -> np.ndarray | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            try:
                return read_image(path)
            except DataError as exc:
                self.skipped += 1
                self.skip_reason = self.skip_reason or str(exc)
                log.log(logging.WARNING if self.warn_skips else logging.INFO, "skipping frame: %s", exc)
        return None

    def rewind(self) -> bool:
        self._next = 0
        return True


def open_source(spec: str | int, decode_threads: int = 1) -> FrameSource:
    """Open a frame source from a command-line style specification.

    Args:
        spec: camera index (``0`` or ``"0"``), ``rtsp://``/``http(s)://`` URL, video file,
            image file, image directory, a glob such as ``"frames/*.jpg"``, or a GStreamer
            pipeline ending in ``appsink`` (see :class:`GStreamerSource`).
        decode_threads: FFmpeg decoder threads for videos and URLs (see
            :class:`CaptureSource`; 0: FFmpeg's default).

    Raises:
        SourceError: nothing matches, or OpenCV cannot open it.
        BackendUnavailableError: a GStreamer pipeline where OpenCV has no GStreamer.
        InputError: a GStreamer pipeline without ``appsink``.
    """
    text = str(spec)
    if text.isdigit():
        return CaptureSource(int(text), f"camera {text}", live=True)
    if is_gstreamer_pipeline(text):
        return GStreamerSource(text)
    if "://" in text:
        return CaptureSource(text, f"stream {redact_url(text)}", live=True, decode_threads=decode_threads)
    path = Path(text)
    if path.is_dir():
        try:
            return ImageFilesSource(list_images(path), f"image folder {path}")
        except DataError as exc:
            raise SourceError(str(exc)) from None
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFilesSource([path], f"image {path}")
        return CaptureSource(str(path), f"video {path}", live=False, decode_threads=decode_threads)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no image matches {text}")
        return ImageFilesSource(files, f"{len(files)} images matching {text}")
    raise SourceError(f"source {redact_url(text)} is neither a camera index, a URL, a file, a folder nor a glob that matches")
