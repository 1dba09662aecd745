"""Render a :class:`~segedge.report.drift.DriftReport`: ``report.json`` (data first) and
``report.md`` (a table rendered from the same data)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from segedge._io import atomic_write_text
from segedge.report.drift import DriftReport


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _delta(value: float | None, ref: float | None) -> str:
    return "" if value is None or ref is None else f" ({100 * (value - ref):+.2f})"


def to_markdown(report: DriftReport) -> str:
    """A Markdown page: data description and one table row per model; accuracy deltas in
    points against the reference."""
    ref = next(m for m in report.models if m.is_reference)
    classes = list(ref.iou_per_class) if ref.iou_per_class else []
    head = ["model", "backend", "precision", "pixel accuracy", "mIoU"]
    head += [f"IoU {c}" for c in classes]
    head += ["agreement", "p50 ms", "p99 ms", "size MB"]
    lines = [
        "# segedge drift report",
        "",
        f"Data: {report.data['source']}, {report.data['images']} images. Reference: {report.reference}. "
        f"Agreement = pixels whose argmax class equals the reference's. Latency: batch 1, "
        f"{ref.latency_ms.get('runs', '?')} runs after warm-up. Deltas in points against the reference.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for m in report.models:
        row = [
            m.name + (" (reference)" if m.is_reference else ""),
            m.backend,
            m.precision,
            _pct(m.pixel_accuracy) + ("" if m.is_reference else _delta(m.pixel_accuracy, ref.pixel_accuracy)),
            _pct(m.miou) + ("" if m.is_reference else _delta(m.miou, ref.miou)),
        ]
        row += [_pct((m.iou_per_class or {}).get(c)) for c in classes]
        row += [
            _pct(m.agreement, 3),
            f"{m.latency_ms['p50']:.2f}",
            f"{m.latency_ms['p99']:.2f}",
            "n/a" if m.size_mb is None else f"{m.size_mb:.2f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    if not report.data.get("labelled"):
        lines += ["", "The data has no labels: accuracy columns are n/a; agreement is measured against the reference."]
    return "\n".join(lines) + "\n"


def write_report(report: DriftReport, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    json_path = atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")
    md_path = atomic_write_text(out / "report.md", to_markdown(report))
    return json_path, md_path
