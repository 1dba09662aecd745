"""Where annotated frames go: video file, PNG masks, JSON-lines stats, MJPEG over HTTP.

Every sink is finalised by :meth:`Sink.close`, which the live loop calls on every exit
(end of source, Ctrl-C, an error), so nothing is left half-written.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segedge._io import atomic_write_bytes
from segedge.errors import InputError, SourceError


class Sink:
    """Receives each delivered frame (annotated, in place) and its class map."""

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        """Consume one frame: ``frame`` ``(H, W, 3)`` uint8 BGR with the overlay drawn,
        ``full_mask`` ``(H, W)`` uint8 classes, ``info`` the frame's statistics."""

    def close(self, failed: bool = False) -> Path | None:
        """Finalise; returns the file written, if any.

        Args:
            failed: the run ended with an error. A file sink then leaves an earlier output
                untouched and keeps what it wrote aside (``NAME.partial.SUFFIX``); with no
                earlier output, what it wrote (whole, finalised) takes the name.
        """
        return None


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")  # containers OpenCV writes mp4v into


def _partial_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}.partial{path.suffix}")


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
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)

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
            os.chmod(self._tmp, 0o644)
            if failed and os.path.lexists(self.path):  # never replace an earlier recording with a failed run's frames
                self.partial = _partial_name(self.path)
                os.replace(self._tmp, self.partial)
                return None
            if self.overwrite:
                os.replace(self._tmp, self.path)
            else:
                os.link(self._tmp, self.path)  # exclusive: fails if the output appeared meanwhile
            return self.path
        except FileExistsError:
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
    """JSON lines, one object per frame (frame index, per-stage ms, FPS, flicker, IoU).

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
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(name)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", buffering=1)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        try:
            self._handle.write(json.dumps(info) + "\n")
            self.lines += 1
        except OSError as exc:
            raise SourceError(f"cannot write statistics {self.path}: {exc.strerror or exc}") from None

    def close(self, failed: bool = False) -> Path | None:
        try:
            self._handle.close()
            if failed and self.lines == 0:  # nothing recorded: nothing to keep
                return None
            os.chmod(self._tmp, 0o644)
            if failed and os.path.lexists(self.path):
                self.partial = _partial_name(self.path)
                os.replace(self._tmp, self.partial)
                return None
            if self.overwrite:
                os.replace(self._tmp, self.path)
            else:
                os.link(self._tmp, self.path)
            return self.path
        except FileExistsError:
            raise SourceError(f"{self.path} appeared during the run; pass --force to overwrite it") from None
        except OSError as exc:
            raise SourceError(f"cannot write statistics {self.path}: {exc.strerror or exc}") from None
        finally:
            if os.path.lexists(self._tmp):
                self._tmp.unlink()


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>segedge live</title>
<style>body{{font-family:sans-serif;background:#111;color:#eee;margin:1em}}img{{max-width:100%}}
pre{{background:#222;padding:.5em}}</style></head><body><h1>segedge live: {title}</h1>
<img src="/stream" alt="live view"><pre id="stats">waiting for frames</pre>
<script>setInterval(async()=>{{try{{const r=await fetch('/stats');
document.getElementById('stats').textContent=JSON.stringify(await r.json(),null,1)}}catch(e){{}}}},1000)</script>
</body></html>"""


class MjpegServer(Sink):
    """Serves the annotated stream as MJPEG (``/stream``), a page showing it with live
    statistics (``/``) and the statistics as JSON (``/stats``), for headless edge boxes.

    JPEG encoding happens only while a client watches. Binds to ``host`` (127.0.0.1 unless
    told otherwise: the stream shows whatever the camera sees).

    Raises:
        SourceError: the port cannot be bound.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", title: str = "", quality: int = 80):
        self.quality = quality
        self._jpeg: bytes | None = None
        self._stats: dict[str, Any] = {}
        self._sequence = 0
        self._clients = 0
        self._cond = threading.Condition()
        self._closed = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                if self.path == "/":
                    body = _PAGE.format(title=title).encode()
                    self._send(200, "text/html; charset=utf-8", body)
                elif self.path == "/stats":
                    with server._cond:
                        body = json.dumps(server._stats).encode()
                    self._send(200, "application/json", body)
                elif self.path == "/stream":
                    server._stream(self)
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

    def _stream(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        with self._cond:
            self._clients += 1
        seen = -1
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._sequence != seen, timeout=5.0)
                    if self._closed:
                        return
                    jpeg, seen = self._jpeg, self._sequence
                if jpeg is None:
                    continue
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n")
                handler.wfile.write(jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._cond:
                self._clients -= 1

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        with self._cond:
            self._stats = info
            watching = self._clients > 0
        if not watching:
            return
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._cond:
                self._jpeg = encoded.tobytes()
                self._sequence += 1
                self._cond.notify_all()

    def close(self, failed: bool = False) -> Path | None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        return None
