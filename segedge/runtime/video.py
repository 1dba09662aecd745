"""The live loop: capture, preprocess + infer, and postprocess + draw + sinks, overlapped.

Pipelined (default), three threads hand preallocated *slots* (a frame buffer, an input
batch, a logits buffer) around a ring, so nothing is allocated per frame and the runner is
never idle waiting for I/O:

    reader thread   --captured-->   infer thread(s)   --inferred-->   main thread   --free--> reader
    (decode, preprocess)            (infer only)                      (argmax, draw, sinks, window)

The infer threads do nothing but inference, so an accelerator (TensorRT, CUDA) is fed the
next preprocessed frame the moment it finishes one, while the CPU decodes, draws and
encodes around it.

With ``workers > 1`` several frames are inferred at once (each with fewer intra-op
threads: on a small CPU, parallel frames use the cores better than one parallel frame) and
the main thread restores capture order before delivery.

- A live source (camera, stream) is read continuously: when the loop falls behind, the older
  captured frame is dropped for the newer one (counted), so latency never accumulates. A
  live source that stops is reopened with exponential back-off; when that fails the run ends
  with :attr:`LiveStats.error` set.
- A file is read without dropping (the reader waits for a free slot), unless ``realtime``
  paces it at its frame rate and drops like a camera.
- Ctrl-C, q / Esc in the window, the end of the source or an error all stop the threads and
  finalise every sink.
- A drift monitor (``monitor``, :mod:`segedge.report.monitor`) is handed each delivered
  frame's input batch and logits by the main thread, in capture order, before the slot goes
  back to the ring; it copies the frames it samples and scores them against its reference
  in a thread of its own, so the loop never waits for it (see :class:`LiveMonitor`).

``pipelined=False`` runs the same stages one after another in one thread: the naive loop
the benchmark compares against.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from segedge.data.sources import FrameSource
from segedge.errors import BackendUnavailableError
from segedge.runtime.base import Runner
from segedge.runtime.overlay import Overlay, draw_hud
from segedge.runtime.postprocess import GroundTruth, Postprocessor
from segedge.runtime.sinks import Sink
from segedge.runtime.stats import LiveStats


@dataclass
class LiveOptions:
    """How the live loop runs and draws."""

    alpha: float = 0.5  # overlay opacity
    classes: tuple[int, ...] | None = None  # class indices to draw (default: those with a colour)
    outline: bool = False  # draw class boundaries instead of filled regions
    upsample: str = "linear"  # linear: bilinear class scores, argmax at frame size; nearest: class map resized (faster)
    smooth: float = 0.0  # temporal smoothing of class probabilities, 0 (off) to <1
    realtime: bool = False  # pace files at their frame rate and drop frames like a camera
    loop: bool = False  # restart files at their end (kiosks, soak tests)
    max_frames: int | None = None  # stop after this many delivered frames
    reconnect_attempts: int = 5  # reopen tries for a live source that stops
    reconnect_delay: float = 0.5  # first back-off in seconds, doubled each try
    slots: int = 6  # frames in flight across the pipeline
    workers: int = 1  # parallel inference threads (each runs whole frames; order is restored)
    hud: bool = True  # draw backend, precision, FPS and latency on the frame
    show: bool = False  # display in a window (q / Esc quits, space pauses)
    pipelined: bool = True  # False: the naive sequential loop


@dataclass
class _Slot:
    batch: np.ndarray
    logits: np.ndarray
    frame: np.ndarray | None = None
    index: int = 0
    t_start: float = 0.0
    read_ms: float = 0.0
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    sequence: int = 0  # order in which frames were taken for inference


_END = object()


class LiveMonitor(Protocol):
    """What the loop asks of a drift monitor (:class:`segedge.report.monitor.DriftMonitor`).

    The loop calls :meth:`start` once, :meth:`offer` for every delivered frame with its
    preprocessed input and the candidate's logits (the monitor copies what it keeps and must
    return at once), :meth:`drain` after each frame for results to hand to the sinks,
    :meth:`hud_line` for the HUD, and :meth:`close` at the end (its summary goes to
    :attr:`LiveStats.drift`).
    """

    def start(self, candidate: Runner) -> None: ...

    def offer(self, frame: int, batch: np.ndarray, logits: np.ndarray) -> None: ...

    def drain(self) -> list[Any]: ...

    def hud_line(self) -> str: ...

    def close(self) -> Any: ...


class _Loop:
    def __init__(self, runner: Runner, source: FrameSource, sinks: list[Sink], options: LiveOptions, gt: GroundTruth | None, on_frame,
                 monitor: LiveMonitor | None = None):
        self.runner, self.source, self.sinks, self.options, self.gt, self.on_frame = runner, source, sinks, options, gt, on_frame
        self.monitor = monitor
        h, w = runner.preprocess_config.size
        classes = len(runner.classes)
        self.slots = [_Slot(np.empty((1, 3, h, w), np.float32), np.empty((1, classes, h, w), np.float32)) for _ in range(max(2, options.slots))]
        self.free: queue.Queue = queue.Queue()
        for slot in self.slots:
            self.free.put(slot)
        self.captured: queue.Queue = queue.Queue()
        self.inferred: queue.Queue = queue.Queue()
        self.stop = threading.Event()  # tells the reader and infer threads to finish
        self.interrupt = threading.Event()  # set by Ctrl-C: stop after the frame being delivered
        self.stats = LiveStats()
        self.errors: list[BaseException] = []
        self.overlay = Overlay(runner.contract.palette, alpha=options.alpha, classes=options.classes, outline=options.outline, upsample=options.upsample)
        self.post = Postprocessor(classes, h, w, options.smooth)
        self.label = f"{runner.backend} {runner.precision}"
        self.frame_index = 0
        self._sequence_lock = threading.Lock()
        self._next_sequence = 0
        self._ema_interval: float | None = None
        self._last_delivery: float | None = None

    # ---- stage 1: read -------------------------------------------------------------------
    def _read_one(self, slot: _Slot) -> bool:
        """Read the next frame into ``slot``; handles end of file, loop and reconnects."""
        start = time.perf_counter()
        frame = self.source.read_into(slot.frame)
        while frame is None:
            if self.stop.is_set():
                return False
            if self.options.loop and self.source.rewind():
                frame = self.source.read_into(slot.frame)
                if frame is None:
                    return False
                break
            if not self.source.live:
                return False
            frame = self._reconnect(slot)
            if frame is None:
                return False
        slot.frame, slot.t_start = frame, start
        slot.read_ms = (time.perf_counter() - start) * 1000
        slot.index = self.frame_index
        self.frame_index += 1
        return True

    def _reconnect(self, slot: _Slot) -> np.ndarray | None:
        delay = self.options.reconnect_delay
        for attempt in range(1, self.options.reconnect_attempts + 1):
            if self.stop.wait(delay):
                return None
            if self.source.reopen():
                frame = self.source.read_into(slot.frame)
                if frame is not None:
                    self.stats.reconnects += 1
                    return frame
            delay *= 2
        waited = self.options.reconnect_delay * (2 ** self.options.reconnect_attempts - 1)
        self.stats.error = (
            f"{self.source.description} stopped delivering frames and could not be reopened "
            f"({self.options.reconnect_attempts} attempts over {waited:.1f} s)"
        )
        return None

    def _reader(self) -> None:
        latest_only = self.source.live or self.options.realtime
        period = 1.0 / self.source.fps if self.options.realtime and self.source.fps > 0 else 0.0
        next_due = time.perf_counter()
        try:
            while not self.stop.is_set():
                try:
                    slot = self.free.get(timeout=0.05) if not latest_only else self._slot_for_live()
                except queue.Empty:
                    continue
                if slot is None:
                    continue
                if period:
                    next_due += period
                    if (delay := next_due - time.perf_counter()) > 0:
                        time.sleep(delay)
                if not self._read_one(slot):
                    self.free.put(slot)
                    break
                self._preprocess(slot)
                self.captured.put(slot)
        except BaseException as exc:  # surfaced by the main thread
            self.errors.append(exc)
        finally:
            self.captured.put(_END)

    def _slot_for_live(self) -> _Slot | None:
        """A free slot, or the oldest captured frame not yet taken (dropped for a newer one)."""
        try:
            return self.free.get_nowait()
        except queue.Empty:
            pass
        try:
            stale = self.captured.get_nowait()
        except queue.Empty:
            time.sleep(0.002)
            return None
        if stale is _END:
            self.captured.put(_END)
            return None
        self.stats.dropped += 1
        return stale

    def _preprocess(self, slot: _Slot) -> None:
        t0 = time.perf_counter()
        size = self.runner.input_size(*slot.frame.shape[:2])  # the contract's size, or the frame's aspect-preserving one
        if slot.batch.shape[2:] != size:  # once per slot for a source of one frame size
            slot.batch = np.empty((1, 3, *size), np.float32)
            slot.logits = np.empty((1, len(self.runner.classes), *size), np.float32)
        self.runner.preprocess(slot.frame, out=slot.batch)
        slot.preprocess_ms = (time.perf_counter() - t0) * 1000

    # ---- stage 2: infer ------------------------------------------------------------------
    def _infer(self, slot: _Slot) -> None:
        t0 = time.perf_counter()
        self.runner.infer(slot.batch, out=slot.logits)
        slot.infer_ms = (time.perf_counter() - t0) * 1000

    def _inferrer(self) -> None:
        try:
            while True:
                item = self.captured.get()
                if item is _END or self.stop.is_set():
                    self.captured.put(_END)  # let the other workers see the end too
                    break
                with self._sequence_lock:  # taken in capture order: the delivery order
                    item.sequence = self._next_sequence
                    self._next_sequence += 1
                self._infer(item)
                self.inferred.put(item)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.inferred.put(_END)

    # ---- stage 3: postprocess, draw, sinks -------------------------------------------------
    def _deliver(self, slot: _Slot) -> bool:
        """Postprocess, draw and hand one frame to the sinks; False to stop."""
        t0 = time.perf_counter()
        if self.monitor is not None:  # a copy of the same input and logits; returns at once
            self.monitor.offer(slot.index, slot.batch, slot.logits)
        if self.post.mask.shape != slot.logits.shape[2:]:  # the input size follows the frame's aspect
            self.post = Postprocessor(len(self.runner.classes), *slot.logits.shape[2:], self.options.smooth)
        mask = self.post(slot.logits[0])
        if self.post.flicker is not None:
            self.stats.flicker_sum += self.post.flicker
            self.stats.flicker_pairs += 1
        t1 = time.perf_counter()
        frame = slot.frame
        self.overlay.draw(frame, mask, self.post.scores)
        full = self.overlay.full_mask
        if self.options.hud:
            fps = 1000.0 / self._ema_interval if self._ema_interval else 0.0
            infer = self.stats.histograms["infer"]
            lines = [f"{self.label}  {fps:5.1f} FPS", f"infer p50 {infer.percentile(50):5.1f} ms  p99 {infer.percentile(99):5.1f} ms"]
            if self.monitor is not None:
                lines.append(self.monitor.hud_line())
            draw_hud(frame, lines)
        t2 = time.perf_counter()
        info = {
            "frame": slot.index, "read_ms": slot.read_ms, "preprocess_ms": slot.preprocess_ms, "infer_ms": slot.infer_ms,
            "postprocess_ms": (t1 - t0) * 1000, "draw_ms": (t2 - t1) * 1000,
            "latency_ms": (t2 - slot.t_start) * 1000,  # capture to drawn (the sinks come after)
            "fps": 1000.0 / self._ema_interval if self._ema_interval else None,  # smoothed delivery rate
            "class_fraction": (np.bincount(mask.ravel(), minlength=len(self.runner.classes)) / mask.size).round(4).tolist(),
            "flicker": self.post.flicker,
        }
        if self.gt is not None:
            info["iou"], info["object_iou"] = self.gt.ious(slot.index, full)
            self.stats.iou.append(info["iou"])
            self.stats.object_iou.append(info["object_iou"])
        for sink in self.sinks:
            sink.write(frame, full, info)
        if self.monitor is not None:
            self._hand_drift()
        keep_going = True
        if self.options.show:
            keep_going = self._window(frame)
        t3 = time.perf_counter()
        now = t3
        if self._last_delivery is not None:
            interval = (now - self._last_delivery) * 1000
            self._ema_interval = interval if self._ema_interval is None else 0.9 * self._ema_interval + 0.1 * interval
        self._last_delivery = now
        h = self.stats.histograms
        for stage, ms in (("read", slot.read_ms), ("preprocess", slot.preprocess_ms), ("infer", slot.infer_ms),
                          ("postprocess", (t1 - t0) * 1000), ("draw", (t2 - t1) * 1000), ("write", (t3 - t2) * 1000),
                          ("latency", (t3 - slot.t_start) * 1000)):
            h[stage].add(ms)
        self.stats.frames += 1
        if self.on_frame is not None:
            self.on_frame(slot.index, mask)
        if self.options.max_frames is not None and self.stats.frames >= self.options.max_frames:
            return False
        return keep_going

    def _hand_drift(self) -> None:
        """Give the monitor's finished results to the sinks (in this thread, as frames are)."""
        for result in self.monitor.drain():
            record = result.to_json()
            for sink in self.sinks:
                sink.drift(record)

    def _window(self, frame: np.ndarray) -> bool:
        try:
            cv2.imshow("segedge", frame)
            key = cv2.waitKey(1) & 0xFF
            if key == ord(" "):  # paused until space again, or quit
                while (key := cv2.waitKey(50) & 0xFF) not in (ord(" "), ord("q"), 27):
                    pass
        except cv2.error:
            raise BackendUnavailableError("--show needs a display; write a file with -o or serve with --serve") from None
        if key in (ord("q"), 27):
            self.stats.interrupted = True
            return False
        return True

    # ---- drivers ---------------------------------------------------------------------------
    def run_pipelined(self) -> None:
        workers = max(1, self.options.workers)
        threads = [threading.Thread(target=self._reader, name="segedge-read", daemon=True)]
        threads += [threading.Thread(target=self._inferrer, name=f"segedge-infer-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        pending: dict[int, _Slot] = {}  # inferred out of order by parallel workers, delivered in order
        next_sequence, ended = 0, 0
        try:
            while not self.interrupt.is_set() and ended < workers:
                try:
                    item = self.inferred.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    ended += 1
                    continue
                pending[item.sequence] = item
                keep_going = True
                while keep_going and next_sequence in pending:
                    slot = pending.pop(next_sequence)
                    next_sequence += 1
                    keep_going = self._deliver(slot)
                    self.free.put(slot)
                if not keep_going:
                    break
        finally:
            self.stop.set()
            self.captured.put(_END)  # unblock the infer thread; the reader polls `stop`
            for thread in threads:
                thread.join(timeout=5.0)

    def run_sequential(self) -> None:
        slot = self.slots[0]
        while not self.interrupt.is_set() and self._read_one(slot):
            self._preprocess(slot)
            self._infer(slot)
            if not self._deliver(slot):
                break


def require_display() -> None:
    """Refuse ``--show`` where no window can open, before any window is tried: on Linux,
    Qt aborts the whole process (SIGABRT) when neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``
    is set, which no ``try`` can catch.

    Raises:
        BackendUnavailableError: no display (Linux without X11/Wayland, unless
            ``QT_QPA_PLATFORM`` names a platform that needs none, such as ``offscreen``).
    """
    if not sys.platform.startswith("linux"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return
    raise BackendUnavailableError("--show needs a display (DISPLAY or WAYLAND_DISPLAY is unset); write a file with -o or serve with --serve")


def run_live(
    runner: Runner,
    source: FrameSource,
    sinks: list[Sink] | None = None,
    options: LiveOptions | None = None,
    gt: GroundTruth | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    monitor: LiveMonitor | None = None,
) -> LiveStats:
    """Segment every frame of ``source`` with ``runner`` and deliver it to ``sinks``.

    Args:
        runner: any :class:`Runner` (PyTorch, ONNX Runtime, TensorRT).
        source: an opened :class:`FrameSource`.
        sinks: where annotated frames go (video, masks, stats, MJPEG); each is closed on exit.
        options: :class:`LiveOptions`.
        gt: per-frame ground-truth masks; adds the pet IoU of each frame to the stats.
        on_frame: callback ``(frame_index, mask)`` with the ``(h, w)`` uint8 class map at
            model resolution (the array is reused: copy it to keep it).
        monitor: a drift monitor (:class:`segedge.report.monitor.DriftMonitor`) fed a
            sample of frames; its per-frame results go to the sinks' :meth:`Sink.drift`,
            its running agreement to the HUD, its summary to :attr:`LiveStats.drift`.

    Returns:
        :class:`LiveStats`; ``error`` is set when a live source stopped for good.

    Raises:
        BackendUnavailableError: ``show`` without a display (checked before any window, see
            :func:`require_display`).
        Whatever the runner or a sink raised (a :class:`SourceError` from a video that did
            not receive every frame), after every sink was finalised; sinks are then closed
            with ``failed=True`` and keep an earlier output.
    """
    options = options or LiveOptions()
    if options.show:
        require_display()
    loop = _Loop(runner, source, list(sinks or []), options, gt, on_frame, monitor)
    started = time.perf_counter()
    # Ctrl-C sets a flag checked between frames instead of raising mid-frame, so every sink
    # holds the same whole frames when the run stops.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: loop.interrupt.set())
    try:
        if monitor is not None:
            monitor.start(runner)
        loop.run_pipelined() if options.pipelined else loop.run_sequential()
    except KeyboardInterrupt:
        loop.stats.interrupted = loop.stats.signalled = True
    except BaseException as exc:  # raised below, after every sink was finalised
        loop.errors.insert(0, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        loop.stats.signalled |= loop.interrupt.is_set()
        loop.stats.interrupted |= loop.stats.signalled
        loop.stats.seconds = time.perf_counter() - started
        loop.stats.skipped = source.skipped
        if monitor is not None:
            try:  # the frame still waiting is scored, so the sinks see every result
                loop.stats.drift = monitor.close()
                loop._hand_drift()
            except BaseException as exc:
                loop.errors.append(exc)
        loop.stats.skip_reason = getattr(source, "skip_reason", None)
        loop.stats.missing = getattr(source, "missing", 0)
        for sink in loop.sinks:  # every sink is closed, even when one fails (a failure marks the later ones failed)
            try:
                written = sink.close(failed=bool(loop.errors) or loop.stats.error is not None)
            except Exception as exc:
                loop.errors.append(exc)
                continue
            if isinstance(written, Path) and written.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov", ".m4v"):
                loop.stats.output = written
        if options.show:
            cv2.destroyAllWindows()
    if loop.errors:
        raise loop.errors[0]
    return loop.stats
