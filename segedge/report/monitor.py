"""A drift monitor inside the live loop: the deployed model against its reference, while it runs.

The live loop hands the monitor a sample of frames (every ``every``-th, or as many as the
CPU allows with ``every=0``): the preprocessed input batch the candidate saw and the
candidate's logits, copied into one of two preallocated buffers. A worker thread of its own,
at the lowest scheduling priority (``nice`` 19 on Linux), runs the reference on the SAME
input and scores the frame with the drift report's metric code
(:class:`~segedge.report.metrics.ConfusionMatrix` rows = reference argmax, columns =
candidate argmax, and :class:`~segedge.report.metrics.LogitsError`), so a frame's agreement
here equals ``segedge report --video`` on that frame.

The live path never waits for the reference: when a new frame is due while the worker is
still busy and a frame is already waiting, the waiting one is replaced by the newer one and
counted as skipped. ``wait=True`` (offline checks, tests) makes the loop wait instead, so
every due frame is scored.

Per scored frame the monitor keeps a running agreement over the last ``window`` scored
frames; when it drops below ``alert_below`` (percent) it logs one line with the frame number
and saves the frame's reference | candidate | disagreement panel (the drift report's
worst-case picture) in ``alert_dir``. Per-frame results reach ``on_result`` (called from the
worker thread) and the loop's sinks; :meth:`DriftMonitor.close` returns a
:class:`DriftSummary` (mean, p5 and worst-frame agreement with frame numbers), kept in
constant memory whatever the run length.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from segedge._io import atomic_write_bytes
from segedge.errors import InputError
from segedge.onnx.metadata import file_sha256
from segedge.report.metrics import ConfusionMatrix, LogitsError
from segedge.report.panels import worst_case_panels
from segedge.runtime.base import Runner

log = logging.getLogger(__name__)

AGREEMENT_BINS = 10_000  # summary histogram: 0.01-point bins, so p5 is exact to 0.01 point


@dataclass
class FrameDrift:
    """The candidate against the reference on one frame (model resolution).

    Attributes:
        frame: frame index in capture order (0-based).
        agreement: fraction of pixels where the two argmax class maps agree, in [0, 1].
        iou: IoU per class name of the candidate's class map against the reference's
            (``nan`` for a class absent from both).
        logits_error: ``{"max", "mean", "p99"}`` of ``|candidate - reference|`` logits.
        reference_ms: wall time of the reference inference in ms.
        running: mean agreement over the last ``window`` scored frames, this one included.
    """

    frame: int
    agreement: float
    iou: dict[str, float]
    logits_error: dict[str, float]
    reference_ms: float
    running: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, figures rounded (agreement and IoU to 6 decimals, ms to 2)."""
        return {
            "frame": self.frame,
            "agreement": round(self.agreement, 6),
            "running_agreement": round(self.running, 6),
            "iou": {k: (None if not math.isfinite(v) else round(v, 6)) for k, v in self.iou.items()},
            "logits_error": {k: (None if not math.isfinite(v) else round(v, 6)) for k, v in self.logits_error.items()},
            "reference_ms": round(self.reference_ms, 2),
        }


@dataclass
class DriftAlert:
    """The running agreement fell below the alert threshold at ``frame``."""

    frame: int
    running: float  # mean agreement of the window, in [0, 1]
    panel: Path | None  # reference | candidate | disagreement picture of that frame


@dataclass
class DriftSummary:
    """What the monitor saw over a run. Agreements are fractions in [0, 1]."""

    reference: str  # the reference runner's name
    every: int  # every N-th frame was due for scoring (0: adaptive, as many as the CPU allowed)
    due: int = 0  # frames handed to the monitor for scoring
    scored: int = 0  # frames the reference scored
    skipped: int = 0  # due frames replaced by a newer one before the reference was free
    mean: float | None = None  # mean per-frame agreement over the scored frames
    p5: float | None = None  # 5th percentile of the per-frame agreement (0.01-point bins)
    worst: float | None = None  # lowest per-frame agreement ...
    worst_frame: int | None = None  # ... and its frame index
    pixel_agreement: float | None = None  # every scored pixel pooled (the report's "agreement")
    iou: dict[str, float] = field(default_factory=dict)  # per class, every scored pixel pooled
    logits_error: dict[str, float] = field(default_factory=dict)  # max, mean, p99 over every scored logit
    alerts: list[DriftAlert] = field(default_factory=list)
    waited: bool = False  # the loop waited for the reference (a file: every due frame scored) instead of skipping

    @property
    def policy(self) -> str:
        """How due frames met a busy reference: ``every due frame`` (waited) or ``skip when busy``."""
        return "every due frame" if self.waited else "skip when busy"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (agreements in percent, rounded to 3 decimals)."""
        pct = lambda v: None if v is None or not math.isfinite(v) else round(100 * v, 3)  # noqa: E731
        return {
            "reference": self.reference, "every": self.every, "due": self.due, "scored": self.scored, "skipped": self.skipped,
            "policy": self.policy,
            "mean_pct": pct(self.mean), "p5_pct": pct(self.p5), "worst_pct": pct(self.worst), "worst_frame": self.worst_frame,
            "pixel_agreement_pct": pct(self.pixel_agreement), "iou_pct": {k: pct(v) for k, v in self.iou.items()},
            "logits_error": {k: (None if not math.isfinite(v) else round(v, 6)) for k, v in self.logits_error.items()},
            "alerts": [{"frame": a.frame, "running_pct": pct(a.running), "panel": str(a.panel) if a.panel else None} for a in self.alerts],
        }


class _Buffer:
    def __init__(self, batch_shape: tuple[int, ...], logits_shape: tuple[int, ...]):
        self.batch = np.empty(batch_shape, np.float32)
        self.logits = np.empty(logits_shape, np.float32)
        self.frame = -1


def _merge_logits_error(total: LogitsError, part: LogitsError) -> None:
    total.count += part.count
    total.sum += part.sum
    total.max = max(total.max, part.max)
    total.hist += part.hist


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority to ``nice`` (Linux: a thread has its own nice value)."""
    if nice > 0 and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:  # not permitted in some containers: the monitor still skips when behind
            pass


def input_image(batch: np.ndarray, runner: Runner) -> np.ndarray:
    """The image the model saw, back from its preprocessed input.

    Args:
        batch: ``(1, 3, h, w)`` float32 preprocessed input.
        runner: whose preprocessing made it (scale, channel order, optional mean/std).

    Returns:
        ``(h, w, 3)`` BGR uint8.
    """
    config = runner.preprocess_config
    image = batch[0].transpose(1, 2, 0).astype(np.float32)
    std, mean = getattr(config, "std", None), getattr(config, "mean", None)  # x = (pixel * scale - mean) / std
    if std is not None:
        image = image * np.asarray(std, np.float32)
    if mean is not None:
        image = image + np.asarray(mean, np.float32)
    image = np.clip(np.rint(image / config.scale), 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if config.channel_order == "RGB" else np.ascontiguousarray(image)


class DriftMonitor:
    """Scores a sample of live frames against a reference runner in a low-priority thread.

    Args:
        reference: the model to compare with (PyTorch checkpoint or any artifact) with the
            candidate's preprocessing and classes.
        every: score every ``every``-th frame (frame index modulo ``every`` == 0); 0 hands
            the monitor every frame and it scores as many as it can (adaptive).
        window: scored frames in the running agreement (HUD, alerts).
        alert_below: percent; when the running agreement over a full window falls below it,
            one warning line and a panel PNG (re-armed once it recovers). ``None``: off.
        alert_dir: folder for the alert panels (``drift-alert-NNNNNN.png``); default: the
            current directory.
        on_result: called with each :class:`FrameDrift`, from the monitor's worker thread.
        wait: the live loop waits for the reference instead of skipping frames (offline
            checks; the live FPS then falls to the reference's pace).
        name: the source's name when several sources run, each with its monitor: alert panels
            are then ``drift-alert-NAME-NNNNNN.png`` and alert lines name the source.
        nice: scheduling niceness of the worker thread on Linux (19: the lowest priority,
            it runs on CPU time nothing else wants; 0: the same as the loop).

    Raises:
        InputError: ``every`` < 0, ``window`` < 1 or ``alert_below`` outside [0, 100].
    """

    def __init__(
        self,
        reference: Runner,
        every: int = 2,
        window: int = 10,
        alert_below: float | None = None,
        alert_dir: str | os.PathLike[str] | None = None,
        on_result: Callable[[FrameDrift], None] | None = None,
        wait: bool = False,
        nice: int = 19,
        name: str | None = None,
    ):
        if every < 0:
            raise InputError(f"--reference-every must be >= 0 (0: adaptive), got {every}")
        if window < 1:
            raise InputError(f"the agreement window must hold at least 1 frame, got {window}")
        if alert_below is not None and not 0 <= alert_below <= 100:
            raise InputError(f"--alert-below is a percentage in [0, 100], got {alert_below}")
        self.reference, self.every, self.window = reference, every, window
        self.alert_below = alert_below
        self.alert_dir = Path(alert_dir) if alert_dir is not None else Path.cwd()
        self.on_result, self.wait, self.nice, self.name = on_result, wait, nice, name
        self._cond = threading.Condition()
        self._free: list[_Buffer] = []
        self._pending: _Buffer | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._results: collections.deque[FrameDrift] = collections.deque()
        self._recent: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self._armed = True
        self._errors: list[BaseException] = []
        self._summary = DriftSummary(reference.name, every)
        self._histogram = np.zeros(AGREEMENT_BINS + 1, np.int64)
        self._sum = 0.0
        self._candidate: Runner | None = None

    # ---- live-loop side (the loop's main thread) -------------------------------------------
    def check(self, candidate: Runner) -> None:
        """Whether the reference can score ``candidate``'s input.

        Raises:
            InputError: the reference preprocesses differently or has other classes (the
                two cannot share one input).
        """
        ref = self.reference
        if ref.preprocess_config != candidate.preprocess_config:
            raise InputError(
                f"the reference {ref.name} preprocesses as {ref.preprocess_config}, the candidate {candidate.name} as "
                f"{candidate.preprocess_config}: they cannot share one input; give a reference of the same contract"
            )
        if tuple(ref.classes) != tuple(candidate.classes):
            raise InputError(f"the reference {ref.name} has classes {list(ref.classes)}, the candidate {list(candidate.classes)}")
        if candidate.contract.any_size and ref.preprocess_config.resize == "aspect" and not ref.contract.any_size:
            raise InputError(
                f"the candidate {candidate.name} takes each frame at its aspect-preserving size, the reference {ref.name} "
                "only its trained size; give the checkpoint, or an ONNX exported with --dynamic-hw, as the reference"
            )

    def start(self, candidate: Runner) -> None:
        """Allocate the buffers for ``candidate``'s shapes and start the worker.

        Raises:
            InputError: see :meth:`check`.
        """
        self.check(candidate)
        self._candidate = candidate
        h, w = candidate.preprocess_config.size
        k = len(candidate.classes)
        self._free = [_Buffer((1, 3, h, w), (1, k, h, w)) for _ in range(2)]  # one being scored, one waiting
        self._ref_logits = np.empty((1, k, h, w), np.float32)
        self._pooled = ConfusionMatrix(k)
        self._pooled_error = LogitsError()
        self._thread = threading.Thread(target=self._worker, name="segedge-reference", daemon=True)
        self._thread.start()

    def due(self, frame: int) -> bool:
        """Whether ``frame`` is one the monitor scores (``every``-th, or any when adaptive)."""
        return self.every == 0 or frame % self.every == 0

    def offer(self, frame: int, batch: np.ndarray, logits: np.ndarray) -> None:
        """Hand over one frame: its ``(1, 3, h, w)`` float32 input and ``(1, C, h, w)`` float32
        candidate logits (copied; the caller may reuse its buffers). Returns at once unless
        ``wait``; a frame not :meth:`due` is ignored.

        Raises:
            Whatever the worker raised on an earlier frame (the reference failed).
        """
        if self._errors:
            raise self._errors[0]
        if not self.due(frame):
            return
        with self._cond:
            self._summary.due += 1
            if self.wait:
                self._cond.wait_for(lambda: (self._pending is None and self._free) or self._closing)
            if self._pending is not None:  # the worker is busy and a frame already waits: this newer one replaces it
                buffer, self._pending = self._pending, None
                self._summary.skipped += 1
            elif self._free:  # with two buffers, one is free whenever none waits
                buffer = self._free.pop()
            else:  # closing after a failure
                return
        if buffer.batch.shape != batch.shape or buffer.logits.shape != logits.shape:  # an aspect-preserving input size
            buffer.batch, buffer.logits = np.empty(batch.shape, np.float32), np.empty(logits.shape, np.float32)
        np.copyto(buffer.batch, batch)
        np.copyto(buffer.logits, logits)
        buffer.frame = frame
        with self._cond:
            self._pending = buffer
            self._cond.notify_all()

    def drain(self) -> list[FrameDrift]:
        """Results scored since the last call, in frame order."""
        with self._cond:
            out = list(self._results)
            self._results.clear()
        return out

    def running(self) -> tuple[float, int, float] | None:
        """``(running agreement, worst recent frame, its agreement)`` over the window, or ``None``."""
        with self._cond:
            if not self._recent:
                return None
            worst_frame, worst = min(self._recent, key=lambda item: item[1])
            return sum(a for _, a in self._recent) / len(self._recent), worst_frame, worst

    def hud_line(self) -> str:
        """One HUD line: running agreement (%) and the worst recent frame."""
        state = self.running()
        if state is None:
            return "agreement: waiting for the reference"
        running, frame, worst = state
        skipped = f"  skipped {self._summary.skipped}" if self._summary.skipped else ""
        return f"agreement {100 * running:5.1f}%  worst #{frame} {100 * worst:5.1f}%{skipped}"

    def close(self) -> DriftSummary:
        """Score the frame still waiting, stop the worker and summarise.

        Raises:
            Whatever the reference raised in the worker.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._errors:
            raise self._errors[0]
        return self.summary()

    def summary(self) -> DriftSummary:
        """The :class:`DriftSummary` so far."""
        with self._cond:
            s = self._summary
            s.waited = self.wait
            if s.scored:
                s.mean = self._sum / s.scored
                rank = max(1, math.ceil(0.05 * s.scored))
                s.p5 = int(np.searchsorted(np.cumsum(self._histogram), rank)) / AGREEMENT_BINS
                s.pixel_agreement = self._pooled.pixel_accuracy()
                s.iou = dict(zip(self.reference.classes, (float(v) for v in self._pooled.iou_per_class())))
                s.logits_error = self._pooled_error.summary()
            return s

    # ---- worker side ------------------------------------------------------------------------
    def _worker(self) -> None:
        _lower_priority(self.nice)
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._pending is not None or self._closing)
                    buffer, self._pending = self._pending, None
                if buffer is None:
                    return
                try:
                    result, alert = self._score(buffer)
                    if alert:
                        self._alert(buffer, result)
                finally:
                    with self._cond:
                        self._free.append(buffer)
                        self._cond.notify_all()
                if self.on_result is not None:
                    self.on_result(result)
        except BaseException as exc:  # surfaced by offer() / close() in the loop's thread
            self._errors.append(exc)
            with self._cond:
                self._closing = True
                self._cond.notify_all()

    def _score(self, buffer: _Buffer) -> tuple[FrameDrift, bool]:
        t0 = time.perf_counter()
        if self._ref_logits.shape != buffer.logits.shape:
            self._ref_logits = np.empty(buffer.logits.shape, np.float32)
        reference_logits = self.reference.infer(buffer.batch, out=self._ref_logits)
        reference_ms = (time.perf_counter() - t0) * 1000
        reference = reference_logits[0].argmax(0).astype(np.uint8)  # NumPy's tie rule, as the report
        candidate = buffer.logits[0].argmax(0).astype(np.uint8)
        matrix = ConfusionMatrix(len(self.reference.classes)).update(candidate, reference)  # rows: reference
        error = LogitsError().update(buffer.logits, reference_logits)
        agreement = matrix.pixel_accuracy()
        alert = False
        with self._cond:
            s = self._summary
            s.scored += 1
            self._sum += agreement
            self._histogram[int(round(agreement * AGREEMENT_BINS))] += 1
            if s.worst is None or agreement < s.worst:
                s.worst, s.worst_frame = agreement, buffer.frame
            self._pooled.matrix += matrix.matrix
            _merge_logits_error(self._pooled_error, error)
            self._recent.append((buffer.frame, agreement))
            running = sum(a for _, a in self._recent) / len(self._recent)
            if self.alert_below is not None and len(self._recent) == self.window:
                below = 100 * running < self.alert_below
                alert, self._armed = below and self._armed, not below
            result = FrameDrift(
                buffer.frame, agreement, dict(zip(self.reference.classes, (float(v) for v in matrix.iou_per_class()))),
                error.summary(), reference_ms, running,
            )
            self._results.append(result)
        return result, alert

    def _alert(self, buffer: _Buffer, result: FrameDrift) -> None:
        """Log one line and save the frame's reference | candidate | disagreement panel."""
        reference = self._ref_logits[0].argmax(0).astype(np.uint8)
        candidate = buffer.logits[0].argmax(0).astype(np.uint8)
        model = self._candidate or self.reference
        panel = worst_case_panels(input_image(buffer.batch, model), reference, candidate, None, model.contract.palette)
        stem = f"drift-alert-{self.name}-{buffer.frame:06d}" if self.name else f"drift-alert-{buffer.frame:06d}"
        path: Path | None = self.alert_dir / f"{stem}.png"
        ok, encoded = cv2.imencode(".png", panel)
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            atomic_write_bytes(path, encoded.tobytes())
        except OSError as exc:
            log.warning("could not save the drift panel %s: %s", path, exc)
            path = None
        where = f"; panel {path}" if path else ""
        log.warning(
            "drift alert%s at frame %d: agreement with the reference %.2f%% over the last %d scored frames, below %g%%%s",
            f" on {self.name}" if self.name else "", result.frame, 100 * result.running, self.window, self.alert_below, where,
        )
        with self._cond:
            self._summary.alerts.append(DriftAlert(result.frame, result.running, path))


# ---- choosing the reference ---------------------------------------------------------------------
def _recorded_checkpoint(candidate: Runner) -> tuple[str, str]:
    """``(sha256, model name)`` of the checkpoint the candidate's contract records ("" if none)."""
    contract = candidate.contract
    return contract.checkpoint_sha256 or "", contract.model or ""


def find_reference_checkpoint(candidate: Runner) -> tuple[Path | None, str]:
    """The checkpoint an artifact was exported from, when it can be found here.

    Looks for a ``.pt`` file whose SHA-256 equals the one recorded in the candidate's
    contract (:attr:`Contract.checkpoint_sha256`): the embedded checkpoints, then the ``.pt``
    files beside the artifact (at most 1 GB each).

    Returns:
        ``(path, note)``: the checkpoint (``None``: the embedded default ``segnet-lite0``,
        because the recorded one is not found) and one line saying which was chosen and why.
    """
    from segedge.models.checkpoint import EMBEDDED, DEFAULT_MODEL

    sha, model = _recorded_checkpoint(candidate)
    if not sha:
        return None, f"{candidate.name} records no checkpoint; reference: the embedded {DEFAULT_MODEL}"
    for name, embedded in EMBEDDED.items():
        if embedded.is_file() and file_sha256(embedded) == sha:
            return embedded, f"reference: the embedded {name}, the checkpoint {candidate.name} was exported from"
    folder = candidate.artifact.parent if candidate.artifact is not None else None
    for path in sorted(folder.glob("*.pt")) if folder is not None and folder.is_dir() else []:
        if path.is_file() and path.stat().st_size < 1 << 30 and file_sha256(path) == sha:
            return path, f"reference: {path}, the checkpoint {candidate.name} was exported from"
    return None, (f"the checkpoint {candidate.name} was exported from ({model or 'unknown model'}, sha256 {sha[:12]}...) "
                  f"is not beside it; reference: the embedded {DEFAULT_MODEL} (give --reference CHECKPOINT)")


def load_reference(spec: str | os.PathLike[str] | None, candidate: Runner) -> tuple[Runner, str]:
    """Load the reference runner for the monitor.

    Args:
        spec: a checkpoint or any artifact; ``None`` or ``"auto"``: the checkpoint recorded
            in the candidate's contract if it is found (:func:`find_reference_checkpoint`),
            else the embedded model.
        candidate: the live model.

    Returns:
        ``(runner, note)``: a reference running in the calling thread only (one intra-op
        thread, no spinning), and a line naming it.

    Raises:
        InputError, CheckpointError, ModelFormatError, BackendUnavailableError: from loading.
    """
    from segedge.runtime.factory import load_runner

    note = ""
    if spec is None or str(spec) == "auto":
        path, note = find_reference_checkpoint(candidate)
        spec = path
    runner = load_runner(spec, threads=1, spin=False) if spec is not None else load_runner(None, threads=1)
    return runner, note or f"reference: {runner.name}"
