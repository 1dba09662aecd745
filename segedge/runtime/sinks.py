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

from segedge.errors import SourceError


class Sink:
    """Receives each delivered frame (annotated, in place) and its class map."""

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        """Consume one frame: ``frame`` ``(H, W, 3)`` uint8 BGR with the overlay drawn,
        ``full_mask`` ``(H, W)`` uint8 classes, ``info`` the frame's statistics."""

    def close(self) -> Path | None:
        """Finalise; returns the file written, if any."""
        return None


class VideoSink(Sink):
    """MP4 (mp4v) writer that appears at ``path`` only once complete: frames go to a
    temporary file beside it, which is released (writing the MP4 index) and renamed.

    Raises:
        SourceError: OpenCV cannot open an MP4 writer there.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float):
        self.path = Path(path)
        self.fps = fps or 25.0
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise SourceError(f"OpenCV cannot write video {self.path} (no mp4v encoder?)")
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        if self.writer is not None:
            self.writer.release()
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path


class MaskSink(Sink):
    """One PNG per frame, ``DIR/NNNNNN.png``, holding class indices (0 pet, 1 background,
    2 border) at frame resolution; each file is written to a temporary name and renamed."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        final = self.directory / f"{info['frame']:06d}.png"
        tmp = final.with_name(f".{final.name}.tmp.png")
        cv2.imwrite(str(tmp), full_mask)
        os.replace(tmp, final)


class StatsSink(Sink):
    """JSON lines, one object per frame (frame index, per-stage ms, FPS, flicker, IoU)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._handle = open(self.path, "w", encoding="utf-8", buffering=1)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        self._handle.write(json.dumps(info) + "\n")

    def close(self) -> Path | None:
        self._handle.close()
        return self.path


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

    def close(self) -> Path | None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        return None
