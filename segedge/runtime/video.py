"""The live loop: read a frame, segment it, draw the overlay and the FPS, write and/or show.

Every artifact the loop writes is finalised even on Ctrl-C or an error: the video is
written to a temporary file beside the destination, released (which writes the MP4 index)
and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from segedge.data.sources import FrameSource
from segedge.errors import BackendUnavailableError, SourceError
from segedge.runtime.base import Runner
from segedge.runtime.overlay import Overlay, draw_hud

STAGES = ("read", "preprocess", "infer", "draw", "write")


class VideoSink:
    """MP4 (mp4v) writer that appears at ``path`` only once complete.

    Raises:
        SourceError: OpenCV cannot open an MP4 writer.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)
        self.writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, size)
        if not self.writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise SourceError(f"OpenCV cannot write video {self.path} (no mp4v encoder?)")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise; returns the path, or ``None`` (nothing left behind) if no frame was written."""
        self.writer.release()
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path


@dataclass
class LiveStats:
    """What a run of the live loop did."""

    frames: int = 0  # frames segmented
    skipped: int = 0  # frames the source could not decode
    seconds: float = 0.0  # wall time of the loop
    interrupted: bool = False  # stopped by Ctrl-C or the q / Esc key
    output: Path | None = None  # finalised video, if any
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, stage: str, q: float) -> float:
        values = self.stage_ms.get(stage) or [0.0]
        return float(np.percentile(values, q))


def run_live(
    runner: Runner,
    source: FrameSource,
    output: str | os.PathLike[str] | None = None,
    show: bool = False,
    alpha: float = 0.5,
    max_frames: int | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> LiveStats:
    """Segment every frame of ``source`` with ``runner``.

    Args:
        runner: any :class:`Runner` (PyTorch, ONNX Runtime, TensorRT).
        source: opened :class:`FrameSource`.
        output: optional ``.mp4`` for the annotated frames (finalised on any exit).
        show: display in a window (``q`` or Esc quits).
        alpha: overlay opacity.
        max_frames: stop after this many frames.
        on_frame: optional callback ``(frame_index, mask)`` with the ``(h, w)`` uint8 class
            map at model resolution (used by accuracy-on-video checks).

    Returns:
        :class:`LiveStats` with per-stage timings in milliseconds.

    Raises:
        BackendUnavailableError: ``show`` without a display.
        SourceError: the output cannot be written.
    """
    overlay = Overlay(alpha=alpha)
    stats = LiveStats()
    sink: VideoSink | None = None
    batch = np.empty((1, 3, *runner.preprocess_config.size), dtype=np.float32)
    label = f"{runner.backend} {runner.precision}"
    ema_ms: float | None = None
    started = time.perf_counter()
    frames = iter(source)
    try:
        while max_frames is None or stats.frames < max_frames:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            t1 = time.perf_counter()
            runner.preprocess(frame, out=batch)
            t2 = time.perf_counter()
            mask = runner.infer(batch)[0].argmax(0).astype(np.uint8)
            t3 = time.perf_counter()
            overlay.draw(frame, mask)
            frame_ms = (t3 - t0) * 1000
            ema_ms = frame_ms if ema_ms is None else 0.9 * ema_ms + 0.1 * frame_ms
            draw_hud(frame, f"{label}  {1000 / ema_ms:5.1f} FPS  infer {(t3 - t2) * 1000:5.1f} ms")
            t4 = time.perf_counter()
            if output is not None:
                if sink is None:
                    sink = VideoSink(output, source.fps, (frame.shape[1], frame.shape[0]))
                sink.write(frame)
            if show:
                try:
                    cv2.imshow("segedge", frame)
                    key = cv2.waitKey(1) & 0xFF
                except cv2.error:
                    raise BackendUnavailableError("--show needs a display; write a file with -o instead") from None
                if key in (ord("q"), 27):
                    stats.interrupted = True
                    break
            t5 = time.perf_counter()
            for stage, ms in zip(STAGES, ((t1 - t0), (t2 - t1), (t3 - t2), (t4 - t3), (t5 - t4))):
                stats.stage_ms[stage].append(ms * 1000)
            if on_frame is not None:
                on_frame(stats.frames, mask)
            stats.frames += 1
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        stats.seconds = time.perf_counter() - started
        stats.skipped = source.skipped
        if sink is not None:
            stats.output = sink.close()
        if show:
            cv2.destroyAllWindows()
    return stats
