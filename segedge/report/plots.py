"""Plots of a :class:`~segedge.report.schema.DriftReport` as PNG bytes (matplotlib, Agg
backend, imported lazily): metric bars, latency distributions, confusion matrices,
per-image agreement, video agreement over time. Everything is drawn from the report's data."""

from __future__ import annotations

import io

import numpy as np

from segedge.report.schema import DriftReport, VideoDrift

METRICS = (("pixel_accuracy", "pixel accuracy"), ("miou", "mIoU"), ("article_iou", "article IoU"), ("border_f1", "border F1"), ("agreement", "agreement"))


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _short(name: str) -> str:
    return name.replace(" (", "\n(")


def metric_bars(report: DriftReport) -> bytes:
    """Grouped bars: each metric (in %) for every model; labelled metrics only with labels."""
    plt, fig = _figure(11, 3.6)
    ax = fig.add_subplot()
    metrics = [(key, label) for key, label in METRICS if all(getattr(m, key) is not None for m in report.models)]
    width = 0.8 / max(1, len(report.models))
    x = np.arange(len(metrics))
    for i, model in enumerate(report.models):
        values = [100 * getattr(model, key) for key, _ in metrics]
        bars = ax.bar(x + i * width, values, width, label=model.name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x + width * (len(report.models) - 1) / 2, [label for _, label in metrics])
    ax.set_ylabel("%")
    low = min((100 * getattr(m, k) for m in report.models for k, _ in metrics), default=0)
    ax.set_ylim(max(0, low - 10), 101)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("accuracy and agreement with the reference")
    return _png(plt, fig)


def latency_distributions(report: DriftReport) -> bytes:
    """Box plots of every timed call, one panel per batch size (ms per call)."""
    sizes = sorted({b for m in report.models if m.speed for b in m.speed.latency}, key=int)
    plt, fig = _figure(4.5 * max(1, len(sizes)), 3.6)
    for k, size in enumerate(sizes):
        ax = fig.add_subplot(1, len(sizes), k + 1)
        models = [m for m in report.models if m.speed and size in m.speed.latency]
        samples = [m.speed.latency[size].samples_ms for m in models]  # type: ignore[union-attr]
        ax.boxplot(samples, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(models) + 1), [_short(m.name) for m in models], fontsize=6, rotation=20)
        ax.set_ylabel("ms per call")
        runs = models[0].speed.latency[size].runs if models else 0  # type: ignore[union-attr]
        ax.set_title(f"latency, batch {size} ({runs} runs; whiskers p1-p99)", fontsize=9)
    return _png(plt, fig)


def confusion_matrices(report: DriftReport) -> bytes | None:
    """One heat map per model, rows ground truth normalised to 100%; ``None`` unlabelled."""
    models = [m for m in report.models if m.confusion is not None]
    if not models:
        return None
    classes = list(models[0].iou_per_class or range(len(models[0].confusion)))  # type: ignore[arg-type]
    plt, fig = _figure(3.0 * len(models), 3.2)
    for k, model in enumerate(models):
        ax = fig.add_subplot(1, len(models), k + 1)
        matrix = np.asarray(model.confusion, dtype=np.float64)
        rows = matrix.sum(1, keepdims=True)
        share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) * 100
        ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        for (i, j), value in np.ndenumerate(share):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color="white" if value > 60 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        if k == 0:
            ax.set_ylabel("ground truth (% of row)", fontsize=7)
        ax.set_title(_short(model.name), fontsize=7)
    return _png(plt, fig)


def agreement_distribution(report: DriftReport) -> bytes | None:
    """Histogram of per-image agreement (%) for each candidate; ``None`` without images."""
    candidates = [m for m in report.models if not m.is_reference and m.per_image_agreement]
    if not candidates:
        return None
    plt, fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    low = min(min(m.per_image_agreement) for m in candidates)
    bins = np.linspace(100 * min(low, 0.99), 100, 41)
    for model in candidates:
        ax.hist(100 * np.asarray(model.per_image_agreement), bins=bins, alpha=0.5, label=model.name)
    ax.set_xlabel("pixels agreeing with the reference, per image (%)")
    ax.set_ylabel("images")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("per-image agreement")
    return _png(plt, fig)


def video_over_time(video: VideoDrift) -> bytes:
    """Agreement with the reference per frame (and pet IoU vs the masks when given)."""
    panels = 2 if video.reference_iou is not None else 1
    plt, fig = _figure(8, 2.8 * panels)
    ax = fig.add_subplot(panels, 1, 1)
    for cand in video.candidates:
        frames = np.arange(len(cand.per_frame_agreement)) * video.every
        ax.plot(frames, 100 * np.asarray(cand.per_frame_agreement), label=f"{cand.name} (mean {100 * cand.agreement:.2f}%)")
    ax.set_ylabel("agreement (%)")
    ax.set_title(f"agreement with the reference over time: {video.source}", fontsize=9)
    ax.legend(fontsize=7)
    if video.reference_iou is not None:
        ax2 = fig.add_subplot(panels, 1, 2, sharex=ax)
        series = [("reference", video.reference_iou)] + [(c.name, c.per_frame_iou or []) for c in video.candidates]
        for name, values in series:
            y = np.array([np.nan if v is None else 100 * v for v in values])
            ax2.plot(np.arange(len(y)) * video.every, y, label=name)
        ax2.set_ylabel("pet IoU vs mask (%)")
        ax2.legend(fontsize=7)
    ax.figure.axes[-1].set_xlabel("frame")
    return _png(plt, fig)
