"""Speed of a loaded model: latency percentiles and throughput per batch size, and memory.

Latency is wall-clock time of :meth:`Runner.infer` on an already preprocessed batch (the
model alone: no decoding, preprocessing or argmax), measured with ``time.perf_counter``
after untimed warm-up calls. Memory is the growth of the process's resident set size (RSS,
read from ``/proc/self/statm``) from before the warm-up to the highest value sampled after
each call: the working memory inference adds on top of the loaded model (the weights are
about the artifact size). It is meaningful for a model's first calls only (an ONNX Runtime
arena, once grown, is kept), so :func:`segedge.report.drift.compare` times every model before
scoring. RSS is process-wide and allocators keep freed pages, so treat it
as an estimate; it is ``None`` where ``/proc`` is absent.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from segedge.errors import InputError
from segedge.runtime.base import Runner

BATCH_SIZES = (1, 8)


def rss_mb() -> float | None:
    """Resident set size of this process in MB (10^6 bytes), ``None`` without ``/proc``."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Latency:
    """Timed calls at one batch size. Units: ms per call, images per second."""

    batch: int
    runs: int  # timed calls
    warmup: int  # untimed calls before them
    p50: float
    p90: float
    p99: float
    mean: float
    throughput: float  # images/s = batch * runs / total timed seconds
    samples_ms: list[float] = field(default_factory=list)  # every timed call, in order

    @classmethod
    def from_samples(cls, batch: int, warmup: int, samples_ms: Sequence[float]) -> "Latency":
        times = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        return cls(
            batch, len(times), warmup, float(p50), float(p90), float(p99), float(times.mean()),
            float(batch * len(times) / (times.sum() / 1000)), [round(float(t), 4) for t in times],
        )


@dataclass
class SpeedReport:
    """Speed of one model: a :class:`Latency` per batch size (key ``"1"``, ``"8"``; a batch
    above the artifact's maximum is left out), the artifact size and the RSS growth."""

    latency: dict[str, Latency]
    size_mb: float | None  # artifact on disk, 10^6 bytes
    peak_rss_delta_mb: float | None  # see the module docstring

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SpeedReport":
        return cls({k: Latency(**v) for k, v in data["latency"].items()}, data["size_mb"], data["peak_rss_delta_mb"])


def _timed(runner: Runner, batch: np.ndarray, runs: int, warmup: int, memory: list[float]) -> list[float]:
    for _ in range(warmup):
        runner.infer(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(batch)
        times.append((time.perf_counter() - start) * 1000)
        rss = rss_mb()
        if rss is not None:
            memory.append(rss)
    return times


def measure_latency(runner: Runner, batch: np.ndarray, runs: int = 50, warmup: int = 5) -> dict[str, float]:
    """Latency of ``batch`` in ms over ``runs`` timed calls after ``warmup`` untimed ones:
    ``{"p50", "p90", "p99", "mean", "runs"}``.

    Raises:
        InputError: ``runs`` < 1, or the batch does not fit the runner (see :meth:`Runner.infer`).
    """
    if runs < 1:
        raise InputError(f"latency needs at least one timed run, got {runs}")
    result = Latency.from_samples(batch.shape[0], warmup, _timed(runner, batch, runs, warmup, []))
    return {"p50": result.p50, "p90": result.p90, "p99": result.p99, "mean": result.mean, "runs": runs}


def measure_speed(
    runner: Runner,
    images: Sequence[np.ndarray],
    runs: int = 50,
    warmup: int = 5,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    on_progress: Callable[[int, int], None] | None = None,
) -> SpeedReport:
    """Time ``runner`` at each batch size on real images.

    Args:
        runner: a loaded model.
        images: BGR uint8 images; a batch of ``b`` repeats them cyclically.
        runs: timed calls at batch 1; larger batches get ``max(3, runs // 4)`` (each
            call costs about ``b`` times more).
        warmup: untimed calls before the timed ones, at every batch size.
        batch_sizes: batch sizes to time; those above ``runner.max_batch`` are skipped.
        on_progress: called ``(done, total)`` after each batch size.

    Raises:
        InputError: no image, or ``runs`` < 1.
    """
    if not len(images):
        raise InputError("speed needs at least one image")
    if runs < 1:
        raise InputError(f"speed needs at least one timed run, got {runs}")
    sizes = [b for b in batch_sizes if runner.max_batch is None or b <= runner.max_batch]
    before = rss_mb()
    memory: list[float] = []
    latency: dict[str, Latency] = {}
    for done, b in enumerate(sizes, start=1):
        batch = runner.preprocess([images[i % len(images)] for i in range(b)])
        count = runs if b == 1 else max(3, runs // 4)
        latency[str(b)] = Latency.from_samples(b, warmup, _timed(runner, batch, count, warmup, memory))
        if on_progress:
            on_progress(done, len(sizes))
    peak = None if before is None or not memory else round(max(0.0, max(memory) - before), 2)
    return SpeedReport(latency, runner.size_mb, peak)
