"""Where annotated frames go: video file, PNG masks, JSON-lines stats, MJPEG over HTTP.

Every sink is finalised by :meth:`Sink.close`, which the live loop calls on every exit
(end of source, Ctrl-C, an error), so nothing is left half-written.
"""

from __future__ import annotations

import collections
import html
import http.server
import json
import math
import os
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segedge._io import atomic_write_bytes, settle, temp_file
from segedge.data.sources import redact_url
from segedge.errors import InputError, SourceError
from segedge.runtime.pages import GRID_PAGE, PAGE
from segedge.runtime.stats import LatencyHistogram


class Sink:
    """Receives each delivered frame (annotated, in place) and its class map."""

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        """Consume one frame: ``frame`` ``(H, W, 3)`` uint8 BGR with the overlay drawn,
        ``full_mask`` ``(H, W)`` uint8 classes, ``info`` the frame's statistics."""

    def drift(self, record: dict[str, Any]) -> None:
        """Consume one drift-monitor result (:meth:`segedge.report.monitor.FrameDrift.to_json`:
        ``frame``, ``agreement``, ``running_agreement``, ``iou``, ``logits_error``,
        ``reference_ms``); it arrives after its frame, from the same thread as :meth:`write`."""

    def close(self, failed: bool = False) -> Path | None:
        """Finalise; returns the file written, if any.

        Args:
            failed: the run ended with an error. A file sink then leaves an earlier output
                untouched and keeps what it wrote aside (``NAME.partial.SUFFIX``); with no
                earlier output, what it wrote (whole, finalised) takes the name.
        """
        return None


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")  # containers OpenCV writes mp4v into


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Frames a finished video file declares and can be opened with (0 when OpenCV cannot
    open it, e.g. an MP4 without its index after a full disk)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened() or not capture.read()[0]:
            return 0
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


class VideoSink(Sink):
    """MP4 (mp4v) writer that appears at ``path`` only once complete and verified: frames go
    to an exclusive temporary file beside it, which is released (writing the MP4 index),
    reopened to count its frames, and renamed.

    OpenCV's writer reports no write errors (a full disk gives a file without its index), so
    the count is the check. Frames whose size differs from the first are resized to it
    (counted in :attr:`resized`) instead of being silently dropped by the encoder.

    Args:
        path: destination video.
        fps: frame rate written in the file (25 when unknown).
        overwrite: replace an existing ``path``; False creates it exclusively.

    Raises:
        SourceError: OpenCV cannot open an MP4 writer for the frames (from :meth:`write`), or
            the finished file does not hold every frame (from :meth:`close`; the earlier
            ``path`` is then kept and the temporary file removed).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, overwrite: bool = True):
        self.path = Path(path)
        self.fps = fps or 25.0
        self.overwrite = overwrite
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.resized = 0  # frames of another size than the first, resized to it
        self.size: tuple[int, int] | None = None  # (width, height) in pixels
        self.partial: Path | None = None  # where a failed run's frames were kept
        fd, self._tmp = temp_file(self.path, self.path.suffix or ".mp4")  # OpenCV picks the container by the suffix
        os.close(fd)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise SourceError(
                    f"OpenCV cannot open an mp4v writer for {self.size[0]}x{self.size[1]} frames at {self.path} "
                    "(frames need at least 2x2 pixels; the suffix must be .mp4, .mov, .m4v, .avi or .mkv)"
                )
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
            self.resized += 1
        self.writer.write(frame)
        self.frames += 1

    def close(self, failed: bool = False) -> Path | None:
        try:
            if self.writer is not None:
                self.writer.release()
                self.writer = None
            if self.frames == 0:
                return None
            written = count_video_frames(self._tmp)
            if written != self.frames:
                kept = f"the earlier {self.path.name} is kept" if self.path.exists() else "nothing was written"
                raise SourceError(f"video {self.path} is incomplete: the finished file holds {written} of {self.frames} frames (disk full?); {kept}")
            written, self.partial = settle(self._tmp, self.path, failed, self.overwrite)
            return written
        except (FileExistsError, InputError):  # created exclusively without --force
            raise SourceError(f"{self.path} appeared while recording; pass --force to overwrite it") from None
        except OSError as exc:
            raise SourceError(f"cannot write video {self.path}: {exc.strerror or exc}") from None
        finally:
            if os.path.lexists(self._tmp):
                self._tmp.unlink()


class MaskSink(Sink):
    """One PNG per frame, ``DIR/NNNNNN.png``, holding class indices (0 pet, 1 background,
    2 border) at frame resolution. Each file is encoded in memory and written through an
    exclusive temporary file renamed into place (a planted symlink is replaced, never
    followed).

    Raises:
        InputError: ``directory`` is a file, or its parent folder is missing.
        SourceError: a mask cannot be written (from :meth:`write`).
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"--save-masks {self.directory} is a file; expected a folder")
        if not self.directory.parent.is_dir():
            raise InputError(f"--save-masks: folder {self.directory.parent} does not exist (create it first)")
        self.directory.mkdir(exist_ok=True)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        ok, encoded = cv2.imencode(".png", full_mask)
        if not ok:
            raise SourceError(f"cannot encode the mask of frame {info['frame']} as PNG")
        try:
            atomic_write_bytes(self.directory / f"{info['frame']:06d}.png", encoded.tobytes(), durable=False)
        except OSError as exc:
            raise SourceError(f"cannot write masks in {self.directory}: {exc.strerror or exc}") from None


class StatsSink(Sink):
    """JSON lines, one object per frame (frame index, per-stage ms, FPS, latency, flicker,
    IoU) and, with a drift monitor, one per scored frame: ``{"drift": {"frame", "agreement",
    "running_agreement", "iou": {class: IoU}, "logits_error": {"max", "mean", "p99"},
    "reference_ms"}}`` (agreement and IoU as fractions), written when the reference has
    scored it (a few frames later).

    Lines go to an exclusive temporary file beside ``path`` that replaces it at
    :meth:`close`, so a symlink at ``path`` is never followed and an earlier stats file is
    kept when the run fails (the new lines are then kept aside as ``NAME.partial.SUFFIX``).

    Raises:
        SourceError: the file cannot be written.
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        self.partial: Path | None = None
        self.lines = 0  # frames recorded
        fd, self._tmp = temp_file(self.path)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", buffering=1)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        try:
            self._handle.write(json.dumps(info) + "\n")
            self.lines += 1
        except OSError as exc:
            raise SourceError(f"cannot write statistics {self.path}: {exc.strerror or exc}") from None

    def drift(self, record: dict[str, Any]) -> None:
        try:
            self._handle.write(json.dumps({"drift": record}) + "\n")
        except OSError as exc:
            raise SourceError(f"cannot write statistics {self.path}: {exc.strerror or exc}") from None

    def close(self, failed: bool = False) -> Path | None:
        try:
            self._handle.close()
            if failed and self.lines == 0:  # nothing recorded: nothing to keep
                return None
            written, self.partial = settle(self._tmp, self.path, failed, self.overwrite)
            return written
        except (FileExistsError, InputError):  # created exclusively without --force
            raise SourceError(f"{self.path} appeared during the run; pass --force to overwrite it") from None
        except OSError as exc:
            raise SourceError(f"cannot write statistics {self.path}: {exc.strerror or exc}") from None
        finally:
            if os.path.lexists(self._tmp):
                self._tmp.unlink()



def _rounded(value: Any, digits: int = 2) -> Any:
    """Floats rounded to ``digits`` decimals, inside dicts and lists too (for the page)."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


class _Channel:
    """One source's share of the server: its newest JPEG, latest figures and history."""

    def __init__(self, name: str, history: int, drift_history: int):
        self.name = name
        self.jpeg: bytes | None = None
        self.sequence = 0
        self.clients = 0
        self.stats: dict[str, Any] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self.drift: collections.deque[dict[str, Any]] = collections.deque(maxlen=drift_history)
        self.latency = LatencyHistogram()
        self.last_sample = -1.0
        self.ended = False
        self.failed = False


class MjpegServer(Sink):
    """Serves the annotated stream as MJPEG (``/stream``), a page for people (``/``) and the
    statistics as JSON (``/stats``), for headless edge boxes.

    The page shows the stream beside rounded figures (FPS, latency, inference time, frame),
    a plot of FPS and latency over the frames of the last :attr:`HISTORY` samples (4 a second), and, with
    a drift monitor, the agreement with the reference per scored frame and its running
    mean, the per-class IoU and the logit error of the last scored frame: inline SVG drawn
    by a few lines of JavaScript, nothing loaded from elsewhere. The title (source name) is
    HTML-escaped and URL credentials are removed from it (:func:`redact_url`).

    ``/stats``: ``{"latest": frame info (rounded), "history": [{"t" s, "frame", "fps",
    "latency_ms", "infer_ms"}], "drift": [{"frame", "agreement_pct", "running_pct", "iou"
    (percent per class), "logits_error_max"}], "monitor": bool, "window": int}``.

    With ``sources`` (several sources in one run), the server is not a sink itself: each
    source writes through its own :meth:`sink`, ``/`` is a grid with one tile per source (its
    stream from ``/stream/K``, FPS, latency p50/p99, inference time, batch size, frame,
    agreement, an FPS plot) and the aggregate rate, and ``/stats`` is ``{"sources": [{"name",
    "latest", "history", "drift", "latency_p99_ms", "ended", "failed"}], "monitor", "window"}``.
    The server stops when every source's sink is closed.

    JPEG encoding happens only while a client watches. Binds to ``host`` (127.0.0.1 unless
    told otherwise: the stream shows whatever the camera sees).

    Args:
        port: TCP port (0: any free one; see :attr:`address`).
        host: address to bind.
        title: what is shown (e.g. ``"model.onnx (onnxruntime int8) on video clip.mp4"``).
        quality: JPEG quality, 1-100.
        monitor_window: the drift monitor's running window (scored frames), if one runs.
        sources: the names of several sources, shown as text in their tiles (``None``: one source).

    Raises:
        SourceError: the port cannot be bound.
    """

    HISTORY = 240  # speed samples kept for the plot (one minute at 4 a second)
    DRIFT_HISTORY = 600  # scored frames kept for the agreement plot
    SAMPLE_S = 0.25  # seconds between speed samples

    def __init__(self, port: int, host: str = "127.0.0.1", title: str = "", quality: int = 80, monitor_window: int | None = None,
                 sources: list[str] | None = None):
        self.quality = quality
        self.grid = sources is not None
        self._channels = [_Channel(name, self.HISTORY, self.DRIFT_HISTORY) for name in (sources if sources is not None else [title])]
        self._monitor_window = monitor_window
        self._started = time.monotonic()
        page = (GRID_PAGE if self.grid else PAGE).replace("$title", html.escape(redact_url(title))).encode()
        self._cond = threading.Condition()
        self._closed = False
        self._open_sinks = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                channel = server._stream_channel(self.path)
                if self.path == "/":
                    self._send(200, "text/html; charset=utf-8", page)
                elif self.path == "/stats":
                    self._send(200, "application/json", server._stats_json())
                elif channel is not None:
                    server._stream(self, channel)
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code, kind, body):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        try:
            self.httpd = Server((host, port), Handler)
        except OSError as exc:
            raise SourceError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        self.address = self.httpd.server_address
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="segedge-mjpeg", daemon=True)
        self._thread.start()

    def _stream_channel(self, path: str) -> _Channel | None:
        """The channel ``/stream`` (the first) or ``/stream/K`` names, else ``None``."""
        if path == "/stream":
            return self._channels[0]
        head, _, index = path.rpartition("/")
        if head == "/stream" and index.isdigit() and int(index) < len(self._channels):
            return self._channels[int(index)]
        return None

    def sink(self, index: int) -> Sink:
        """The sink of source ``index`` (several sources); the server stops when all are closed."""
        with self._cond:
            self._open_sinks += 1
        return _ChannelSink(self, self._channels[index])

    def _stream(self, handler: http.server.BaseHTTPRequestHandler, channel: _Channel) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        with self._cond:
            channel.clients += 1
        seen = -1
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or channel.sequence != seen, timeout=5.0)
                    if self._closed:
                        return
                    jpeg, seen = channel.jpeg, channel.sequence
                if jpeg is None:
                    continue
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n")
                handler.wfile.write(jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._cond:
                channel.clients -= 1

    def _stats_json(self) -> bytes:
        with self._cond:
            if not self.grid:
                channel = self._channels[0]
                body = {"latest": _rounded(channel.stats), "history": list(channel.history), "drift": list(channel.drift),
                        "monitor": self._monitor_window is not None, "window": self._monitor_window}
            else:
                body = {"sources": [{"name": c.name, "latest": _rounded(c.stats), "history": list(c.history), "drift": list(c.drift),
                                     "latency_p99_ms": round(c.latency.percentile(99), 2) if c.latency.total else None,
                                     "ended": c.ended, "failed": c.failed} for c in self._channels],
                        "monitor": self._monitor_window is not None, "window": self._monitor_window}
        return json.dumps(body, allow_nan=False).encode()

    def drift(self, record: dict[str, Any]) -> None:
        self._drift(self._channels[0], record)

    def _drift(self, channel: _Channel, record: dict[str, Any]) -> None:
        pct = lambda v: None if v is None else round(100 * v, 2)  # noqa: E731
        entry = {"frame": record["frame"], "agreement_pct": pct(record["agreement"]), "running_pct": pct(record["running_agreement"]),
                 "iou": {k: pct(v) for k, v in record["iou"].items()}, "logits_error_max": _rounded(record["logits_error"].get("max"), 4)}
        with self._cond:
            channel.drift.append(entry)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        self._write(self._channels[0], frame, info)

    def _write(self, channel: _Channel, frame: np.ndarray, info: dict[str, Any]) -> None:
        now = time.monotonic() - self._started
        if info.get("latency_ms") is not None:
            channel.latency.add(info["latency_ms"])
        with self._cond:
            channel.stats = info
            if now - channel.last_sample >= self.SAMPLE_S:
                channel.last_sample = now
                channel.history.append(_rounded({"t": now, "frame": info.get("frame"), "fps": info.get("fps"),
                                                 "latency_ms": info.get("latency_ms"), "infer_ms": info.get("infer_ms")}))
            watching = channel.clients > 0
        if not watching:
            return
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._cond:
                channel.jpeg = encoded.tobytes()
                channel.sequence += 1
                self._cond.notify_all()

    def _channel_closed(self, channel: _Channel, failed: bool) -> None:
        with self._cond:
            channel.ended, channel.failed = True, failed
            self._open_sinks -= 1
            last = self._open_sinks == 0
        if last:
            self.close()

    def close(self, failed: bool = False) -> Path | None:
        with self._cond:
            if self._closed:
                return None
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        return None


class _ChannelSink(Sink):
    """What one of several sources writes to a shared :class:`MjpegServer`."""

    def __init__(self, server: MjpegServer, channel: _Channel):
        self.server, self.channel = server, channel

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        self.server._write(self.channel, frame, info)

    def drift(self, record: dict[str, Any]) -> None:
        self.server._drift(self.channel, record)

    def close(self, failed: bool = False) -> Path | None:
        self.server._channel_closed(self.channel, failed)
        return None
