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

The per-source parts (slot ring, reader, reconnects, delivery) live in
:mod:`segedge.runtime.stream`; given several sources, :func:`run_live` runs them together
with one batching inference stage (:mod:`segedge.runtime.multicam`).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from typing import Callable, Sequence, overload

import cv2
import numpy as np

from segedge.data.sources import FrameSource
from segedge.errors import BackendUnavailableError
from segedge.runtime.base import Runner
from segedge.runtime.multicam import run_many
from segedge.runtime.postprocess import GroundTruth
from segedge.runtime.sinks import Sink
from segedge.runtime.stats import LiveStats, MultiLiveStats
from segedge.runtime.stream import END, LiveMonitor, LiveOptions, Slot, Stream, require_display

__all__ = ["LiveMonitor", "LiveOptions", "require_display", "run_live"]


class _Loop:
    """One source: its :class:`Stream` and ``options.workers`` inference threads of its own."""

    def __init__(self, runner: Runner, source: FrameSource, sinks: list[Sink], options: LiveOptions, gt: GroundTruth | None, on_frame,
                 monitor: LiveMonitor | None = None):
        self.runner, self.options = runner, options
        self.stream = Stream(runner, source, sinks, options, gt, on_frame, monitor)
        self.interrupt = threading.Event()  # set by Ctrl-C: stop after the frame being delivered

    # ---- stage 2: infer ------------------------------------------------------------------
    def _infer(self, slot: Slot) -> None:
        t0 = time.perf_counter()
        self.runner.infer(slot.batch, out=slot.logits)
        slot.infer_ms = (time.perf_counter() - t0) * 1000

    def _inferrer(self) -> None:
        stream = self.stream
        try:
            while True:
                item = stream.captured.get()
                if item is END or stream.stop.is_set():
                    stream.captured.put(END)  # let the other workers see the end too
                    break
                stream.take_sequence(item)  # taken in capture order: the delivery order
                self._infer(item)
                stream.inferred.put(item)
        except BaseException as exc:
            stream.errors.append(exc)
        finally:
            stream.inferred.put(END)

    # ---- stage 3: postprocess, draw, sinks, window ------------------------------------------
    def _deliver(self, slot: Slot) -> bool:
        return self.stream.deliver(slot, self._window if self.options.show else None)

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
            self.stream.stats.interrupted = True
            return False
        return True

    # ---- drivers ---------------------------------------------------------------------------
    def run_pipelined(self) -> None:
        stream = self.stream
        workers = max(1, self.options.workers)
        threads = [threading.Thread(target=stream.reader, name="segedge-read", daemon=True)]
        threads += [threading.Thread(target=self._inferrer, name=f"segedge-infer-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        pending: dict[int, Slot] = {}  # inferred out of order by parallel workers, delivered in order
        next_sequence, ended = 0, 0
        try:
            while not self.interrupt.is_set() and ended < workers:
                try:
                    item = stream.inferred.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is END:
                    ended += 1
                    continue
                pending[item.sequence] = item
                keep_going = True
                while keep_going and next_sequence in pending:
                    slot = pending.pop(next_sequence)
                    next_sequence += 1
                    keep_going = self._deliver(slot)
                    stream.free.put(slot)
                if not keep_going:
                    break
        finally:
            stream.stop.set()
            stream.captured.put(END)  # unblock the infer thread; the reader polls `stop`
            for thread in threads:
                thread.join(timeout=5.0)

    def run_sequential(self) -> None:
        stream = self.stream
        slot = stream.slots[0]
        while not self.interrupt.is_set() and stream.read_one(slot):
            stream.preprocess(slot)
            self._infer(slot)
            if not self._deliver(slot):
                break


@overload
def run_live(runner: Runner, source: FrameSource, sinks: list[Sink] | None = None, options: LiveOptions | None = None,
             gt: GroundTruth | None = None, on_frame: Callable[[int, np.ndarray], None] | None = None,
             monitor: LiveMonitor | None = None) -> LiveStats: ...


@overload
def run_live(runner: Runner, source: Sequence[FrameSource], sinks: Sequence[list[Sink]] | None = None, options: LiveOptions | None = None,
             gt: Sequence[GroundTruth | None] | None = None, on_frame: Callable[[int, int, np.ndarray], None] | None = None,
             monitor: Sequence[LiveMonitor | None] | None = None, names: Sequence[str] | None = None) -> MultiLiveStats: ...


def run_live(runner, source, sinks=None, options=None, gt=None, on_frame=None, monitor=None, names=None):
    """Segment every frame of ``source`` with ``runner`` and deliver it to ``sinks``.

    Given a sequence of sources, runs them together (:func:`segedge.runtime.multicam.run_many`):
    frames of every source batched into one inference call, each source with its own sinks,
    monitor, statistics and end; ``sinks``, ``gt`` and ``monitor`` are then sequences with one
    entry per source, ``on_frame`` is called as ``(source_index, frame_index, mask)``, and the
    result is a :class:`MultiLiveStats`.

    Args:
        runner: any :class:`Runner` (PyTorch, ONNX Runtime, TensorRT).
        source: an opened :class:`FrameSource` (or a sequence of them).
        sinks: where annotated frames go (video, masks, stats, MJPEG); each is closed on exit.
        options: :class:`LiveOptions`.
        gt: per-frame ground-truth masks; adds the pet IoU of each frame to the stats.
        on_frame: callback ``(frame_index, mask)`` with the ``(h, w)`` uint8 class map at
            model resolution (the array is reused: copy it to keep it).
        monitor: a drift monitor (:class:`segedge.report.monitor.DriftMonitor`) fed a
            sample of frames; its per-frame results go to the sinks' :meth:`Sink.drift`,
            its running agreement to the HUD, its summary to :attr:`LiveStats.drift`.
        names: several sources: their names (HUD, messages); default ``source0``, ``source1``, ...

    Returns:
        :class:`LiveStats`; ``error`` is set when a live source stopped for good.

    Raises:
        BackendUnavailableError: ``show`` without a display (checked before any window, see
            :func:`require_display`).
        Whatever the runner or a sink raised (a :class:`SourceError` from a video that did
            not receive every frame), after every sink was finalised; sinks are then closed
            with ``failed=True`` and keep an earlier output.
    """
    if not isinstance(source, FrameSource):
        return run_many(runner, list(source), sinks, options, gt, on_frame, monitor, names)
    options = options or LiveOptions()
    if options.show:
        require_display()
    loop = _Loop(runner, source, list(sinks or []), options, gt, on_frame, monitor)
    stream = loop.stream
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
        stream.stats.interrupted = stream.stats.signalled = True
    except BaseException as exc:  # raised below, after every sink was finalised
        stream.errors.insert(0, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        stream.stats.signalled |= loop.interrupt.is_set()
        stream.stats.interrupted |= stream.stats.signalled
        stream.stats.seconds = time.perf_counter() - started
        stream.finish(failed=False)
        if options.show:
            cv2.destroyAllWindows()
    if stream.errors:
        raise stream.errors[0]
    return stream.stats
