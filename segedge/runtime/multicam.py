"""Several sources in one live loop: their frames batched into one inference call, each source
with its own sinks, HUD, FPS, reconnects, drift monitor and end.

    reader per source --captured--> batcher + infer worker(s) --inferred--> delivery thread per source
    (decode, preprocess)            (one call for up to N sources)          (argmax, draw, sinks)

- **Batching** (as DeepStream's nvstreammux batches N sources into one inference): a worker
  takes the sources that have a frame ready, at most one frame per source and at most
  ``max_batch`` frames (``LiveOptions.max_batch``, the runner's ``max_batch``, the number of
  sources), stacks them into one ``(n, 3, h, w)`` input, infers once and copies each row of
  the logits back to its source. It never waits for a source that has no frame: the batch is
  whatever is ready. Frames are batched only with frames of the **same input size**: a model
  fed at each frame's aspect-preserving size (:meth:`Runner.input_size`) gives sources of
  different shapes different sizes, and such a frame waits for a batch of its own size.
- **Fairness**: sources are served round robin, starting after the last source served.
  Files (not ``realtime``) advance together: a file more than one frame ahead of the slowest
  running file waits, as nvstreammux forms batches of files, so a cheap clip does not take the
  CPU a costly one needs. Cameras, streams and ``realtime`` files are never held back (their
  own frame rate paces them, and a stale frame is dropped for a newer one as with one source).
- **Independence**: a source that ends, fails (a camera that cannot be reopened, a sink
  that fails) or reaches ``max_frames`` finalises its own sinks and monitor at once; the
  others go on. Only what is not one source's (the runner failing, Ctrl-C, q / Esc) stops them
  all.
- ``show``: one window per source, drawn by the calling (main) thread.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from segedge.data.sources import FrameSource
from segedge.errors import BackendUnavailableError, InputError, SegEdgeError
from segedge.runtime.base import Runner
from segedge.runtime.postprocess import GroundTruth
from segedge.runtime.sinks import Sink
from segedge.runtime.stats import MultiLiveStats
from segedge.runtime.stream import END, LiveMonitor, LiveOptions, Slot, Stream, require_display

LEAD = 2  # a file may be taken for inference while it is fewer than LEAD frames ahead of the slowest running file


@dataclass
class _End:
    """On a stream's inferred queue: its reader ended after ``total`` frames were taken."""

    total: int


class _Batcher:
    """Forms batches from the streams' captured frames (called by the infer workers)."""

    def __init__(self, streams: list[Stream], max_batch: int):
        self.streams, self.max_batch = streams, max_batch
        self.cond = threading.Condition()
        self.held: dict[int, Slot] = {}  # taken from a stream but of another input size than the batch
        self.ended: set[int] = set()  # streams that will give no more frames
        self.lockstep = [not (s.source.live or s.options.realtime) for s in streams]
        self.cursor = 0  # round robin: the next batch starts at this stream
        for stream in streams:
            stream.notify = self.notify

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def take(self, stop: threading.Event) -> list[tuple[int, Slot]] | None:
        """The next batch, ``[(stream index, slot)]``; ``None`` when every stream ended or ``stop``."""
        with self.cond:
            while True:
                if stop.is_set() or len(self.ended) == len(self.streams):
                    return None
                batch = self._gather()
                if batch:
                    return batch
                self.cond.wait(timeout=0.05)

    def _gather(self) -> list[tuple[int, Slot]]:
        count = len(self.streams)
        for k, stream in enumerate(self.streams):
            if stream.stop.is_set():  # its delivery stopped (max_frames, a sink failed): nothing more to infer
                self.ended.add(k)
        running = [s.next_sequence for k, s in enumerate(self.streams) if self.lockstep[k] and k not in self.ended]
        floor = min(running) if running else 0
        batch: list[tuple[int, Slot]] = []
        size = None
        for k in ((self.cursor + i) % count for i in range(count)):
            stream = self.streams[k]
            if k in self.ended or (self.lockstep[k] and stream.next_sequence >= floor + LEAD):
                continue
            slot = self.held.pop(k, None)
            if slot is None:
                try:
                    slot = stream.captured.get_nowait()
                except queue.Empty:
                    continue
            if slot is END:
                self.ended.add(k)
                stream.inferred.put(_End(stream.next_sequence))
                continue
            if size is None:
                size = slot.batch.shape[2:]
            elif slot.batch.shape[2:] != size:  # another input size: the next batch of its size takes it
                self.held[k] = slot
                continue
            stream.take_sequence(slot)
            batch.append((k, slot))
            if len(batch) == self.max_batch:
                break
        if batch:
            self.cursor = (batch[-1][0] + 1) % count
        return batch


class _MultiLoop:
    def __init__(self, runner: Runner, streams: list[Stream], options: LiveOptions):
        self.runner, self.streams, self.options = runner, streams, options
        limits = [len(streams), options.max_batch or len(streams), runner.max_batch or len(streams)]
        self.max_batch = max(1, min(limits))
        self.batcher = _Batcher(streams, self.max_batch)
        self.stop = threading.Event()  # every source stops (Ctrl-C, q / Esc, the runner failed)
        self.interrupted = False  # Ctrl-C or q / Esc
        self.signalled = False  # Ctrl-C
        self.paused = threading.Event()
        self.errors: list[BaseException] = []  # not one source's: the runner's
        self.batches: dict[int, int] = {}
        self._lock = threading.Lock()
        self._shown: dict[int, np.ndarray] = {}  # the newest drawn frame per source, for the windows
        self.started = time.perf_counter()

    # ---- infer ------------------------------------------------------------------------------
    def _worker(self) -> None:
        h, w = self.runner.preprocess_config.size
        classes = len(self.runner.classes)
        inputs = np.empty((self.max_batch, 3, h, w), np.float32)
        logits = np.empty((self.max_batch, classes, h, w), np.float32)
        try:
            while (batch := self.batcher.take(self.stop)) is not None:
                n = len(batch)
                size = batch[0][1].batch.shape[2:]
                if inputs.shape[2:] != size:  # an aspect-preserving input size
                    inputs = np.empty((self.max_batch, 3, *size), np.float32)
                    logits = np.empty((self.max_batch, classes, *size), np.float32)
                t0 = time.perf_counter()
                if n == 1:
                    slot = batch[0][1]
                    self.runner.infer(slot.batch, out=slot.logits)
                else:
                    for i, (_, slot) in enumerate(batch):
                        inputs[i] = slot.batch[0]
                    self.runner.infer(inputs[:n], out=logits[:n])
                    for i, (_, slot) in enumerate(batch):
                        slot.logits[0] = logits[i]
                ms = (time.perf_counter() - t0) * 1000
                with self._lock:
                    self.batches[n] = self.batches.get(n, 0) + 1
                for k, slot in batch:
                    slot.infer_ms, slot.batch_size = ms, n
                    self.streams[k].inferred.put(slot)
        except BaseException as exc:  # the runner failed: every source stops
            self.errors.append(exc)
            self.stop.set()

    # ---- deliver ------------------------------------------------------------------------------
    def _window(self, k: int) -> Callable[[np.ndarray], bool]:
        def post(frame: np.ndarray) -> bool:
            with self._lock:
                self._shown[k] = frame.copy()
            while self.paused.is_set() and not self.stop.is_set():
                time.sleep(0.05)
            return not self.stop.is_set()

        return post

    def _deliverer(self, k: int) -> None:
        stream = self.streams[k]
        window = self._window(k) if self.options.show else None
        pending: dict[int, Slot] = {}
        next_sequence, total = 0, None
        try:
            while not self.stop.is_set() and (total is None or next_sequence < total):
                try:
                    item = stream.inferred.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, _End):
                    total = item.total
                    continue
                pending[item.sequence] = item
                keep_going = True
                while keep_going and next_sequence in pending:
                    slot = pending.pop(next_sequence)
                    next_sequence += 1
                    keep_going = stream.deliver(slot, window)
                    stream.free.put(slot)
                if not keep_going:
                    break
        except BaseException as exc:  # this source failed; the others go on
            stream.errors.insert(0, exc)
        finally:
            stream.stop.set()
            self.batcher.notify()
            stream.stats.seconds = time.perf_counter() - self.started
            stream.stats.interrupted = self.interrupted
            stream.finish(failed=bool(self.errors))

    # ---- driver -------------------------------------------------------------------------------
    def run(self) -> None:
        workers = max(1, self.options.workers)
        readers = [threading.Thread(target=s.reader, name=f"segedge-read-{k}", daemon=True) for k, s in enumerate(self.streams)]
        inferers = [threading.Thread(target=self._worker, name=f"segedge-infer-{i}", daemon=True) for i in range(workers)]
        deliverers = [threading.Thread(target=self._deliverer, args=(k,), name=f"segedge-deliver-{k}") for k in range(len(self.streams))]
        for thread in readers + inferers + deliverers:
            thread.start()
        try:
            while any(t.is_alive() for t in deliverers):
                self._show() if self.options.show else time.sleep(0.05)
        finally:
            self.stop.set()
            for thread in deliverers:
                thread.join()
            for stream in self.streams:
                stream.stop.set()
            self.batcher.notify()
            for thread in readers + inferers:
                thread.join(timeout=5.0)

    def _show(self) -> None:
        with self._lock:
            frames, self._shown = self._shown, {}
        try:
            for k, frame in frames.items():
                cv2.imshow(f"segedge {self.streams[k].name}", frame)
            key = cv2.waitKey(20) & 0xFF
        except cv2.error:
            raise BackendUnavailableError("--show needs a display; write files with -o or serve with --serve") from None
        if key == ord(" "):
            self.paused.clear() if self.paused.is_set() else self.paused.set()
        elif key in (ord("q"), 27):
            self.interrupted = True
            self.stop.set()


def run_many(
    runner: Runner,
    sources: Sequence[FrameSource],
    sinks: Sequence[list[Sink]] | None = None,
    options: LiveOptions | None = None,
    gt: Sequence[GroundTruth | None] | None = None,
    on_frame: Callable[[int, int, np.ndarray], None] | None = None,
    monitors: Sequence[LiveMonitor | None] | None = None,
    names: Sequence[str] | None = None,
) -> MultiLiveStats:
    """Segment several sources together, batching their frames into shared inference calls.

    Args:
        runner: any :class:`Runner`; its ``max_batch`` bounds the batch.
        sources: opened :class:`FrameSource` objects (at least one).
        sinks: per source, where its annotated frames go (each closed when that source ends).
        options: :class:`LiveOptions`; ``max_frames`` counts per source, ``workers`` infer
            threads each run whole batches, ``max_batch`` caps the batch.
        gt: per source, its ground-truth masks (or ``None``).
        on_frame: ``(source_index, frame_index, mask)`` with the ``(h, w)`` uint8 class map at
            model resolution (reused: copy it to keep it), from that source's delivery thread.
        monitors: per source, its drift monitor (or ``None``); each is started here.
        names: the sources' names (HUD, windows); default ``source0``, ``source1``, ...

    Returns:
        :class:`MultiLiveStats`: per source its :class:`LiveStats` (``error`` set when it
        failed: its source stopped, or a sink failed), and the batch sizes.

    Raises:
        InputError: no source, ``pipelined=False``, or per-source lists of another length.
        BackendUnavailableError: ``show`` without a display.
        What the runner raised (it stops every source), or a bug, after every sink was finalised.
    """
    options = options or LiveOptions()
    count = len(sources)
    if count == 0:
        raise InputError("no source to run")
    if not options.pipelined:
        raise InputError("the sequential loop runs one source; several sources need the pipelined loop")
    sinks = list(sinks) if sinks is not None else [[] for _ in range(count)]
    gt = list(gt) if gt is not None else [None] * count
    monitors = list(monitors) if monitors is not None else [None] * count
    names = list(names) if names is not None else [f"source{k}" for k in range(count)]
    for what, values in (("sinks", sinks), ("gt", gt), ("monitors", monitors), ("names", names)):
        if len(values) != count:
            raise InputError(f"{what}: {len(values)} entries for {count} sources (one per source)")
    if options.show:
        require_display()

    def callback(k: int) -> Callable[[int, np.ndarray], None] | None:
        return None if on_frame is None else (lambda index, mask: on_frame(k, index, mask))

    streams = [Stream(runner, source, list(sinks[k]), options, gt[k], callback(k), monitors[k], names[k]) for k, source in enumerate(sources)]
    for stream in streams:
        stream.batched = True
    loop = _MultiLoop(runner, streams, options)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def interrupt(signum, frame) -> None:  # stop after the frames being delivered, as with one source
            loop.interrupted = loop.signalled = True
            loop.stop.set()

        previous = signal.signal(signal.SIGINT, interrupt)
    try:
        for monitor in monitors:
            if monitor is not None:
                monitor.start(runner)
        loop.run()
    except KeyboardInterrupt:
        loop.interrupted = loop.signalled = True
    except BaseException as exc:
        loop.errors.insert(0, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        for stream in streams:  # never started (a monitor failed to start): finalised all the same
            if not stream.finished:
                stream.finish(failed=True)
        if options.show:
            cv2.destroyAllWindows()
    stats = MultiLiveStats(names, [s.stats for s in streams], time.perf_counter() - loop.started, dict(sorted(loop.batches.items())),
                           interrupted=loop.interrupted, signalled=loop.signalled)
    for stream in streams:
        stream.stats.interrupted |= loop.interrupted
        stream.stats.signalled |= loop.signalled
        for exc in stream.errors:
            if not isinstance(exc, SegEdgeError):  # a bug: raised (after every sink was finalised)
                loop.errors.append(exc)
            elif stream.stats.error is None:
                stream.stats.error = str(exc)
    if loop.errors:
        raise loop.errors[0]
    return stats
