"""One source's share of the live loop: its slot ring, its reader (decode, reconnect with
back-off, stale-frame dropping, preprocessing) and its delivery (postprocess, overlay, HUD,
sinks, drift monitor, statistics).

:mod:`segedge.runtime.video` runs one :class:`Stream` with its own inference threads;
:mod:`segedge.runtime.multicam` runs several that share one batching inference stage. A
stream never infers: its reader puts preprocessed slots on :attr:`Stream.captured`, whoever
infers puts them on :attr:`Stream.inferred`, and :meth:`Stream.deliver` takes them in
capture order.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from segedge.data.sources import FrameSource
from segedge.errors import BackendUnavailableError
from segedge.runtime.base import Runner
from segedge.runtime.overlay import Overlay, draw_hud
from segedge.runtime.postprocess import GroundTruth, Postprocessor
from segedge.runtime.sinks import Sink
from segedge.runtime.stats import LiveStats

VIDEO_OUTPUTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v")  # what a sink's close() may return as the run's video


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
    max_frames: int | None = None  # stop after this many delivered frames (per source with several sources)
    reconnect_attempts: int = 5  # reopen tries for a live source that stops
    reconnect_delay: float = 0.5  # first back-off in seconds, doubled each try
    slots: int = 6  # frames in flight across the pipeline (per source)
    workers: int = 1  # parallel inference threads (each runs whole frames, or whole batches; order is restored)
    hud: bool = True  # draw backend, precision, FPS and latency on the frame
    show: bool = False  # display in a window (q / Esc quits, space pauses)
    pipelined: bool = True  # False: the naive sequential loop (one source only)
    max_batch: int | None = None  # several sources: frames per inference call at most (None: the runner's max_batch)


@dataclass
class Slot:
    """A frame's preallocated buffers and timings, handed around the ring."""

    batch: np.ndarray  # (1, 3, h, w) float32 preprocessed input
    logits: np.ndarray  # (1, C, h, w) float32
    frame: np.ndarray | None = None  # (H, W, 3) uint8 BGR, decoded into in place
    index: int = 0  # frame index in capture order (0-based, per source)
    t_start: float = 0.0  # perf_counter() when the read began (latency is measured from it)
    read_ms: float = 0.0
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0  # the whole inference call (the batch's, with several sources)
    sequence: int = 0  # order in which frames were taken for inference
    batch_size: int = 1  # frames in the inference call that produced the logits


END = object()  # put on a queue after a stream's last frame


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


class Stream:
    """One source: its slots, reader, delivery and statistics.

    Args:
        runner: the model (only its contract, classes and :meth:`Runner.preprocess` are used here).
        source: an opened :class:`FrameSource`.
        sinks: where this source's annotated frames go.
        options: :class:`LiveOptions`.
        gt: per-frame ground-truth masks of this source.
        on_frame: ``(frame_index, mask)`` after each delivered frame.
        monitor: this source's drift monitor.
        name: the source's name, shown on the HUD with several sources (``None``: one source).
    """

    def __init__(self, runner: Runner, source: FrameSource, sinks: list[Sink], options: LiveOptions, gt: GroundTruth | None = None,
                 on_frame: Callable[[int, np.ndarray], None] | None = None, monitor: LiveMonitor | None = None, name: str | None = None):
        self.runner, self.source, self.sinks, self.options, self.gt, self.on_frame = runner, source, sinks, options, gt, on_frame
        self.monitor, self.name = monitor, name
        h, w = runner.preprocess_config.size
        classes = len(runner.classes)
        self.slots = [Slot(np.empty((1, 3, h, w), np.float32), np.empty((1, classes, h, w), np.float32)) for _ in range(max(2, options.slots))]
        self.free: queue.Queue = queue.Queue()
        for slot in self.slots:
            self.free.put(slot)
        self.captured: queue.Queue = queue.Queue()
        self.inferred: queue.Queue = queue.Queue()
        self.stop = threading.Event()  # tells this source's reader to finish
        self.notify: Callable[[], None] | None = None  # called after each captured frame and at the end (a shared batcher waits on it)
        self.stats = LiveStats()
        self.errors: list[BaseException] = []
        self.overlay = Overlay(runner.contract.palette, alpha=options.alpha, classes=options.classes, outline=options.outline, upsample=options.upsample)
        self.post = Postprocessor(classes, h, w, options.smooth)
        self.label = f"{runner.backend} {runner.precision_label}" if name is None else f"{name}  {runner.backend} {runner.precision_label}"
        self.batched = False  # several sources: each frame's statistics name its batch size
        self.finished = False  # finish() ran: sinks finalised
        self.frame_index = 0
        self.sequence_lock = threading.Lock()
        self.next_sequence = 0  # frames taken for inference so far
        self._ema_interval: float | None = None
        self._last_delivery: float | None = None

    # ---- read ----------------------------------------------------------------------------
    def read_one(self, slot: Slot) -> bool:
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

    def _reconnect(self, slot: Slot) -> np.ndarray | None:
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

    def reader(self) -> None:
        """The reader thread: read and preprocess into free slots until the end or :attr:`stop`."""
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
                if not self.read_one(slot):
                    self.free.put(slot)
                    break
                self.preprocess(slot)
                self.captured.put(slot)
                if self.notify is not None:
                    self.notify()
        except BaseException as exc:  # surfaced by the thread that delivers
            self.errors.append(exc)
        finally:
            self.captured.put(END)
            if self.notify is not None:
                self.notify()

    def _slot_for_live(self) -> Slot | None:
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
        if stale is END:
            self.captured.put(END)
            return None
        self.stats.dropped += 1
        return stale

    def preprocess(self, slot: Slot) -> None:
        t0 = time.perf_counter()
        size = self.runner.input_size(*slot.frame.shape[:2])  # the contract's size, or the frame's aspect-preserving one
        if slot.batch.shape[2:] != size:  # once per slot for a source of one frame size
            slot.batch = np.empty((1, 3, *size), np.float32)
            slot.logits = np.empty((1, len(self.runner.classes), *size), np.float32)
        self.runner.preprocess(slot.frame, out=slot.batch)
        slot.preprocess_ms = (time.perf_counter() - t0) * 1000

    def take_sequence(self, slot: Slot) -> None:
        """Number ``slot`` in the order frames are taken for inference: the delivery order."""
        with self.sequence_lock:
            slot.sequence = self.next_sequence
            self.next_sequence += 1

    # ---- deliver: postprocess, draw, sinks -------------------------------------------------
    def deliver(self, slot: Slot, window: Callable[[np.ndarray], bool] | None = None) -> bool:
        """Postprocess, draw and hand one frame to the sinks; False to stop.

        Args:
            slot: an inferred slot, in capture order.
            window: shows the drawn frame; returns False to stop (q / Esc).
        """
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
            if self.batched:
                lines[1] += f"  batch {slot.batch_size}"
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
        if self.batched:
            info["batch"], info["dropped"] = slot.batch_size, self.stats.dropped
        if self.gt is not None:
            info["iou"], info["object_iou"] = self.gt.ious(slot.index, full)
            self.stats.iou.append(info["iou"])
            self.stats.object_iou.append(info["object_iou"])
        for sink in self.sinks:
            sink.write(frame, full, info)
        if self.monitor is not None:
            self.hand_drift()
        keep_going = True
        if window is not None:
            keep_going = window(frame)
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

    def hand_drift(self) -> None:
        """Give the monitor's finished results to the sinks (in this thread, as frames are)."""
        for result in self.monitor.drain():
            record = result.to_json()
            for sink in self.sinks:
                sink.drift(record)

    def finish(self, failed: bool) -> None:
        """Gather the source's counts, close the monitor and finalise every sink; failures are
        appended to :attr:`errors` (every sink is closed, even when one fails).

        Args:
            failed: the run (or this source) ended with an error: sinks keep an earlier output.
        """
        self.finished = True
        self.stats.skipped = self.source.skipped
        if self.monitor is not None:
            try:  # the frame still waiting is scored, so the sinks see every result
                self.stats.drift = self.monitor.close()
                self.hand_drift()
            except BaseException as exc:
                self.errors.append(exc)
        self.stats.skip_reason = getattr(self.source, "skip_reason", None)
        self.stats.missing = getattr(self.source, "missing", 0)
        for sink in self.sinks:  # a failure marks the later ones failed
            try:
                written = sink.close(failed=failed or bool(self.errors) or self.stats.error is not None)
            except Exception as exc:
                self.errors.append(exc)
                continue
            if isinstance(written, Path) and written.suffix.lower() in VIDEO_OUTPUTS:
                self.stats.output = written
