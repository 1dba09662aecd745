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



# The live page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere. It polls
# /stats once a second and draws with inline SVG: figures rounded, FPS and latency over the
# last minutes, and (with a drift monitor) agreement with the reference over the frames.
# Values from the server only ever reach the page through textContent and SVG attributes.
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>segedge live</title>
<style>
body{font-family:system-ui,sans-serif;background:#14161a;color:#e8e8e8;margin:16px}
h1{font-size:20px;margin:0 0 2px}.src{color:#9aa0a6;margin:0 0 12px;word-break:break-all}
.wrap{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
#view{max-width:min(100%,854px);border:1px solid #333;background:#000}
.side{flex:1;min-width:340px;max-width:560px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:8px;margin-bottom:12px}
.card{background:#1f2329;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.card span{color:#9aa0a6;font-size:12px}
h2{font-size:14px;color:#c9cdd2;margin:12px 0 4px}svg{background:#1f2329;border-radius:6px;width:100%;height:150px}
svg text{fill:#9aa0a6;font-size:11px}.legend{font-size:12px;color:#9aa0a6}.legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 10px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}td,th{padding:2px 10px 2px 0;text-align:right}th:first-child,td:first-child{text-align:left}
.off{color:#9aa0a6;font-size:13px}.alert{color:#ff6b6b}
</style></head><body>
<h1>segedge live</h1><p class="src" id="source">$title</p>
<div class="wrap"><img src="/stream" id="view" alt="live view">
<div class="side">
<div class="cards">
<div class="card"><b id="fps">-</b><span>FPS</span></div>
<div class="card"><b id="latency">-</b><span>latency ms (capture to drawn)</span></div>
<div class="card"><b id="infer">-</b><span>inference ms</span></div>
<div class="card"><b id="frame">-</b><span>frame</span></div>
<div class="card"><b id="agreement">-</b><span>agreement with reference</span></div>
<div class="card"><b id="worst">-</b><span>worst recent frame</span></div>
</div>
<h2>speed <span class="legend"><i style="background:#4fc3f7"></i>FPS<i style="background:#ffb74d"></i>latency ms</span></h2>
<svg id="perf" viewBox="0 0 500 150" preserveAspectRatio="none"></svg>
<h2>agreement with the reference, % of pixels, per scored frame <span class="legend"><i style="background:#81c784"></i>frame<i style="background:#e0e0e0"></i>running</span></h2>
<svg id="drift" viewBox="0 0 500 150" preserveAspectRatio="none"></svg>
<p class="off" id="drift-off">no drift monitor: start segedge run with --reference to compare with PyTorch live</p>
<table id="iou"></table>
</div></div>
<script>
const NS="http://www.w3.org/2000/svg";
function fmt(v,d){return (v===null||v===undefined||!isFinite(v))?"-":Number(v).toFixed(d)}
function set(id,text){document.getElementById(id).textContent=text}
function el(name,attrs,text){const e=document.createElementNS(NS,name);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;return e}
// series: [{points:[[x,y],...],color,axis:0|1}], axes: [[lo,hi,label],...] (left, optional right)
function plot(svg,series,axes,xs){
  while(svg.firstChild)svg.removeChild(svg.firstChild);
  const W=500,H=150,L=34,R=axes.length>1?34:8,T=8,B=18;
  if(!xs.length){svg.appendChild(el("text",{x:L,y:H/2},"waiting for data"));return}
  const x0=Math.min(...xs),x1=Math.max(...xs),sx=v=>L+(x1>x0?(v-x0)/(x1-x0):0.5)*(W-L-R);
  for(let g=0;g<=4;g++){const y=T+g*(H-T-B)/4;svg.appendChild(el("line",{x1:L,x2:W-R,y1:y,y2:y,stroke:"#2c323a"}))}
  axes.forEach((a,i)=>{const x=i?W-R+3:2;
    svg.appendChild(el("text",{x:x,y:T+9},fmt(a[1],a[3]||0)));svg.appendChild(el("text",{x:x,y:H-B},fmt(a[0],a[3]||0)))});
  svg.appendChild(el("text",{x:L,y:H-4},"frame "+Math.round(x0)));
  svg.appendChild(el("text",{x:W-R,y:H-4,"text-anchor":"end"},"frame "+Math.round(x1)));
  for(const s of series){const a=axes[s.axis||0],span=(a[1]-a[0])||1;
    const pts=s.points.filter(p=>p[1]!==null&&isFinite(p[1])).map(p=>sx(p[0]).toFixed(1)+","+(T+(1-(p[1]-a[0])/span)*(H-T-B)).toFixed(1)).join(" ");
    if(pts)svg.appendChild(el("polyline",{points:pts,fill:"none",stroke:s.color,"stroke-width":1.6,"vector-effect":"non-scaling-stroke","class":s.name}));
    if(s.dots&&s.points.length<=200)for(const p of pts.split(" "))if(p){const q=p.split(",");svg.appendChild(el("circle",{cx:q[0],cy:q[1],r:2.2,fill:s.color}))}}
}
function range(values,pad,floor){const v=values.filter(x=>x!==null&&isFinite(x));if(!v.length)return[0,1];
  let lo=Math.min(...v),hi=Math.max(...v);const m=Math.max((hi-lo)*pad,1e-6);lo=floor!==undefined?Math.max(floor,lo-m):lo-m;return[lo,hi+m]}
async function tick(){
  let s;try{s=await (await fetch("/stats",{cache:"no-store"})).json()}catch(e){return}
  const f=s.latest||{};
  set("fps",fmt(f.fps,1));set("latency",fmt(f.latency_ms,1));set("infer",fmt(f.infer_ms,1));set("frame",f.frame===undefined?"-":String(f.frame));
  const h=s.history||[],x=h.map(r=>r.frame);
  const fr=range(h.map(r=>r.fps),0.1,0),lr=range(h.map(r=>r.latency_ms),0.1,0);
  plot(document.getElementById("perf"),[{name:"fps",points:h.map(r=>[r.frame,r.fps]),color:"#4fc3f7",axis:0},{name:"latency",points:h.map(r=>[r.frame,r.latency_ms]),color:"#ffb74d",axis:1}],
       [[fr[0],fr[1],"FPS",0],[lr[0],lr[1],"ms",0]],x);
  const d=s.drift||[];
  document.getElementById("drift-off").style.display=d.length||s.monitor?"none":"block";
  if(!d.length&&!s.monitor)return;
  const last=d[d.length-1];
  if(last){set("agreement",fmt(last.running_pct,1)+" %");
    let w=d.slice(-(s.window||10)).reduce((a,b)=>b.agreement_pct<a.agreement_pct?b:a);set("worst","#"+w.frame+"  "+fmt(w.agreement_pct,1)+" %")}
  const ar=range(d.map(r=>r.agreement_pct),0.1);ar[1]=Math.min(100,ar[1]);
  plot(document.getElementById("drift"),[{name:"agreement",points:d.map(r=>[r.frame,r.agreement_pct]),color:"#81c784",dots:true},{name:"running",points:d.map(r=>[r.frame,r.running_pct]),color:"#e0e0e0"}],
       [[ar[0],ar[1],"%",1]],d.map(r=>r.frame));
  const table=document.getElementById("iou");while(table.firstChild)table.removeChild(table.firstChild);
  if(last&&last.iou){const head=table.insertRow();["class","IoU vs reference %"].forEach(x=>{const th=document.createElement("th");th.textContent=x;head.appendChild(th)});
    for(const k in last.iou){const r=table.insertRow();r.insertCell().textContent=k;r.insertCell().textContent=fmt(last.iou[k],2)}
    const r=table.insertRow();r.insertCell().textContent="logit error max";r.insertCell().textContent=fmt(last.logits_error_max,3)}
}
tick();setInterval(tick,1000);
</script></body></html>"""


def _rounded(value: Any, digits: int = 2) -> Any:
    """Floats rounded to ``digits`` decimals, inside dicts and lists too (for the page)."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


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

    JPEG encoding happens only while a client watches. Binds to ``host`` (127.0.0.1 unless
    told otherwise: the stream shows whatever the camera sees).

    Args:
        port: TCP port (0: any free one; see :attr:`address`).
        host: address to bind.
        title: what is shown (e.g. ``"model.onnx (onnxruntime int8) on video clip.mp4"``).
        quality: JPEG quality, 1-100.
        monitor_window: the drift monitor's running window (scored frames), if one runs.

    Raises:
        SourceError: the port cannot be bound.
    """

    HISTORY = 240  # speed samples kept for the plot (one minute at 4 a second)
    DRIFT_HISTORY = 600  # scored frames kept for the agreement plot
    SAMPLE_S = 0.25  # seconds between speed samples

    def __init__(self, port: int, host: str = "127.0.0.1", title: str = "", quality: int = 80, monitor_window: int | None = None):
        self.quality = quality
        self._jpeg: bytes | None = None
        self._stats: dict[str, Any] = {}
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.HISTORY)
        self._drift: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.DRIFT_HISTORY)
        self._monitor_window = monitor_window
        self._started = time.monotonic()
        self._last_sample = -1.0
        page = _PAGE.replace("$title", html.escape(redact_url(title))).encode()
        self._sequence = 0
        self._clients = 0
        self._cond = threading.Condition()
        self._closed = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                if self.path == "/":
                    self._send(200, "text/html; charset=utf-8", page)
                elif self.path == "/stats":
                    self._send(200, "application/json", server._stats_json())
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

    def _stats_json(self) -> bytes:
        with self._cond:
            body = {"latest": _rounded(self._stats), "history": list(self._history), "drift": list(self._drift),
                    "monitor": self._monitor_window is not None, "window": self._monitor_window}
        return json.dumps(body, allow_nan=False).encode()

    def drift(self, record: dict[str, Any]) -> None:
        pct = lambda v: None if v is None else round(100 * v, 2)  # noqa: E731
        entry = {"frame": record["frame"], "agreement_pct": pct(record["agreement"]), "running_pct": pct(record["running_agreement"]),
                 "iou": {k: pct(v) for k, v in record["iou"].items()}, "logits_error_max": _rounded(record["logits_error"].get("max"), 4)}
        with self._cond:
            self._drift.append(entry)

    def write(self, frame: np.ndarray, full_mask: np.ndarray, info: dict[str, Any]) -> None:
        now = time.monotonic() - self._started
        with self._cond:
            self._stats = info
            if now - self._last_sample >= self.SAMPLE_S:
                self._last_sample = now
                self._history.append(_rounded({"t": now, "frame": info.get("frame"), "fps": info.get("fps"),
                                               "latency_ms": info.get("latency_ms"), "infer_ms": info.get("infer_ms")}))
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
