"""Live-loop statistics in constant memory: latency histograms, FPS, flicker, IoU, drift summary."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("read", "preprocess", "infer", "postprocess", "draw", "write", "latency")


class LatencyHistogram:
    """Streaming percentiles of durations in milliseconds.

    Log-spaced bins from 1 µs to 100 s (200 per decade): constant memory whatever the run
    length, and any percentile within 1.2% of its true value. Thread-safe.
    """

    BINS_PER_DECADE = 200
    LOW_MS, HIGH_MS = 1e-3, 1e5

    def __init__(self) -> None:
        decades = math.log10(self.HIGH_MS / self.LOW_MS)
        self.counts = np.zeros(int(decades * self.BINS_PER_DECADE) + 2, dtype=np.int64)
        self.total = 0
        self.sum_ms = 0.0
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        index = 0 if ms <= self.LOW_MS else int(math.log10(ms / self.LOW_MS) * self.BINS_PER_DECADE) + 1
        with self._lock:
            self.counts[min(index, len(self.counts) - 1)] += 1
            self.total += 1
            self.sum_ms += ms

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) in ms (bin centre); 0 if empty."""
        with self._lock:
            if self.total == 0:
                return 0.0
            rank = max(1, math.ceil(q / 100 * self.total))
            index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return self.LOW_MS * 10 ** ((index - 0.5) / self.BINS_PER_DECADE) if index else self.LOW_MS

    @property
    def mean(self) -> float:
        return self.sum_ms / self.total if self.total else 0.0


@dataclass
class LiveStats:
    """What a run of the live loop did."""

    frames: int = 0  # frames segmented and delivered to the sinks
    skipped: int = 0  # frames the source could not decode
    skip_reason: str | None = None  # why the first skipped frame was skipped
    missing: int = 0  # frames a file declares but that could not be read (truncated or corrupt file)
    signalled: bool = False  # stopped by Ctrl-C (SIGINT), as opposed to q / Esc or --max-frames
    dropped: int = 0  # live frames replaced by a newer one before they were segmented
    reconnects: int = 0  # times a live source was reopened
    seconds: float = 0.0  # wall time from the first frame read to the last delivered
    interrupted: bool = False  # stopped by Ctrl-C or the q / Esc key
    error: str | None = None  # why the run ended early (a source that stopped, a sink that failed)
    output: Path | None = None  # finalised video, if any
    flicker_sum: float = 0.0  # sum over frame pairs of the fraction of pixels whose class changed
    flicker_pairs: int = 0
    iou: list[float] = field(default_factory=list)  # per frame: pet IoU against ground truth (only with --gt-masks)
    object_iou: list[float] = field(default_factory=list)  # per frame: object (pet or border) IoU against ground truth
    histograms: dict[str, LatencyHistogram] = field(default_factory=lambda: {s: LatencyHistogram() for s in STAGES})
    drift: Any = None  # the drift monitor's summary (segedge.report.monitor.DriftSummary), with --reference

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, stage: str, q: float) -> float:
        return self.histograms[stage].percentile(q)

    @property
    def mean_flicker(self) -> float | None:
        """Mean fraction of pixels (model resolution) whose class changes between consecutive frames."""
        return self.flicker_sum / self.flicker_pairs if self.flicker_pairs else None

    @property
    def mean_iou(self) -> float | None:
        """Mean pet IoU over the frames with ground truth (``None`` without any)."""
        return float(np.nanmean(self.iou)) if self.iou else None

    @property
    def mean_object_iou(self) -> float | None:
        """Mean object IoU (pet or border against the whole-animal mask), ``None`` without ground truth."""
        return float(np.nanmean(self.object_iou)) if self.object_iou else None


def merged(histograms: list[LatencyHistogram]) -> LatencyHistogram:
    """One histogram holding every sample of ``histograms`` (same bins, counts added)."""
    total = LatencyHistogram()
    for hist in histograms:
        with hist._lock:
            total.counts += hist.counts
            total.total += hist.total
            total.sum_ms += hist.sum_ms
    return total


@dataclass
class MultiLiveStats:
    """What a run over several sources did: one :class:`LiveStats` per source (its own frames,
    seconds from the start to its own end, FPS, latency, drops, reconnects, error, drift) and
    the inference batches they shared."""

    names: list[str]  # the sources' names, in the order given
    sources: list[LiveStats]  # per source, same order
    seconds: float = 0.0  # wall time of the whole run
    batches: dict[int, int] = field(default_factory=dict)  # frames per inference call -> calls
    interrupted: bool = False  # stopped by Ctrl-C or the q / Esc key
    signalled: bool = False  # stopped by Ctrl-C (SIGINT)

    @property
    def frames(self) -> int:
        """Frames delivered, all sources together."""
        return sum(s.frames for s in self.sources)

    @property
    def fps(self) -> float:
        """Aggregate rate: every source's frames over the run's wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def calls(self) -> int:
        """Inference calls made."""
        return sum(self.batches.values())

    @property
    def mean_batch(self) -> float:
        """Mean frames per inference call."""
        return sum(size * n for size, n in self.batches.items()) / self.calls if self.calls else 0.0

    @property
    def failed(self) -> list[str]:
        """``"NAME: why"`` for each source that ended with an error."""
        return [f"{name}: {s.error}" for name, s in zip(self.names, self.sources) if s.error]

    def percentile_ms(self, stage: str, q: float) -> float:
        """Percentile of a stage over every source's frames."""
        return merged([s.histograms[stage] for s in self.sources]).percentile(q)
