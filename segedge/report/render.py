"""Render a :class:`~segedge.report.schema.DriftReport`: ``report.json`` (data first),
``report.md`` and a self-contained ``report.html`` (every plot and picture embedded as a
base64 PNG ``data:`` URI), all from the same objects. Tables are built once as rows of
strings (:func:`summary_table`, :func:`speed_table`, :func:`class_table`) and shared by the
Markdown, the HTML and the terminal."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from segedge._io import atomic_write_bytes, atomic_write_text, staged_directory
from segedge.errors import InputError
from segedge.report import plots
from segedge.report.schema import DriftReport
from segedge.report.speed import SpeedReport

Table = tuple[list[str], list[list[str]]]


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def _delta(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f" ({100 * value:+.2f})"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, fmt)


def article_line(report: DriftReport) -> str | None:
    """The article's pixel accuracies next to the measured one, on the full test split only."""
    article = report.data.get("article")
    if not article:
        return None
    ref = report.models[0]
    published = ", ".join(f"{name} {100 * value:.2f}%" for name, value in article["pixel_accuracy"].items())
    model = article.get("reference_model")
    expected = article["pixel_accuracy"].get(model) if model else None
    mine = f"measured here: {model or report.reference} {_pct(ref.pixel_accuracy)}"
    if expected is not None and ref.pixel_accuracy is not None:
        mine += f" ({100 * (ref.pixel_accuracy - expected):+.2f} points against the article's {100 * expected:.2f}%)"
    return f"Article reference ({article['citation']}), pixel accuracy on the full Oxford-IIIT Pet test split: {published}; {mine}."


def summary_table(report: DriftReport) -> Table:
    """One row per model: accuracy with deltas (points) against the reference, agreement
    (with the reference, and with the FP32 artifact an INT8 or FP16 model was made from when
    that is a candidate too: PTQ and QAT side by side), the worst image's agreement, logits error, batch-1 latency and size (the model name
    carries the backend and precision)."""
    labelled = bool(report.data.get("labelled"))
    head = ["model"]
    if labelled:
        head += ["pixel accuracy", "mIoU", "article IoU", "border F1"]
    head += ["agreement"]
    with_fp32 = any(m.fp32_agreement is not None for m in report.models)
    if with_fp32:
        head += ["agreement vs FP32"]
    head += ["worst image", "|logit diff| max / p99", "p50 ms", "p99 ms", "MB"]
    rows = []
    for m in report.models:
        d = m.deltas
        row = [m.name + (" (reference)" if m.is_reference else "")]
        if labelled:
            row += [_pct(m.pixel_accuracy) + _delta(d.get("pixel_accuracy")), _pct(m.miou) + _delta(d.get("miou")),
                    _pct(m.article_iou) + _delta(d.get("article_iou")), _pct(m.border_f1) + _delta(d.get("border_f1"))]
        err = m.logits_error
        row += [_pct(m.agreement, 3)]
        if with_fp32:
            row += [_pct(m.fp32_agreement, 3) if m.fp32_agreement is not None else ""]
        row += [
            _pct(min(m.per_image_agreement), 2) if m.per_image_agreement and not m.is_reference else "",
            f"{_num(err['max'], '.3g')} / {_num(err['p99'], '.3g')}" if err else "",
            f"{m.latency_ms['p50']:.2f}", f"{m.latency_ms['p99']:.2f}", _num(m.size_mb),
        ]
        rows.append(row)
    return head, rows


def speed_table(models: Sequence[tuple[str, SpeedReport | None]]) -> Table:
    """Latency p50/p90/p99 (ms) and throughput (images/s) per batch size, runs, artifact
    size (MB) and RSS growth (MB), one row per ``(name, speed)``."""
    sizes = sorted({b for _, speed in models if speed for b in speed.latency}, key=int)
    head = ["model"]
    for b in sizes:
        head += [f"b{b} p50 ms", f"b{b} p90 ms", f"b{b} p99 ms", f"b{b} img/s", f"b{b} runs"]
    head += ["size MB", "RSS +MB"]
    rows = []
    for name, speed in models:
        row = [name]
        for b in sizes:
            lat = speed.latency.get(b) if speed else None
            row += [f"{lat.p50:.2f}", f"{lat.p90:.2f}", f"{lat.p99:.2f}", f"{lat.throughput:.1f}", str(lat.runs)] if lat else ["n/a"] * 5
        row += [_num(speed.size_mb if speed else None), _num(speed.peak_rss_delta_mb if speed else None, ".1f")]
        rows.append(row)
    return head, rows


def class_table(report: DriftReport) -> Table | None:
    """IoU per class for every model, deltas in points; ``None`` unlabelled."""
    ref = report.models[0]
    if not ref.iou_per_class:
        return None
    classes = list(ref.iou_per_class)
    rows = [[m.name] + [_pct((m.iou_per_class or {}).get(c)) + _delta((m.iou_delta_per_class or {}).get(c)) for c in classes]
            for m in report.models]
    return ["model"] + [f"IoU {c}" for c in classes], rows


def _notes(report: DriftReport) -> list[str]:
    ref = report.models[0]
    runs = ref.latency_ms.get("runs", "?")
    notes = [
        f"Data: {report.data['source']}, {report.data['images']} images. Reference: {report.reference}.",
        "Agreement = pixels whose argmax class equals the reference's. Deltas in points against the reference. "
        "Article IoU = micro IoU with background ignored (torchmetrics MulticlassJaccardIndex, ignore_index=background). "
        f"Latency: model call on a preprocessed batch, {runs} runs at batch 1 after warm-up. "
        "RSS +MB: growth of the process's resident memory during inference (an estimate).",
    ]
    pairs = [f"{m.name} against {m.fp32_model}" for m in report.models if m.fp32_model]
    if pairs:
        notes.append("Agreement vs FP32 = pixels whose argmax class equals that of the FP32 artifact the model was made from "
                     "(same checkpoint, same target form preferred): " + "; ".join(pairs) + ".")
    line = article_line(report)
    if line:
        notes.append(line)
    if not report.data.get("labelled"):
        notes.append("The data has no labels: accuracy columns are n/a; agreement is measured against the reference.")
    return notes


def _md_table(table: Table) -> list[str]:
    head, rows = table
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def to_markdown(report: DriftReport) -> str:
    """A Markdown page: notes, the summary, per-class, speed and video tables, and links to
    the worst-case pictures (relative paths, written by :func:`write_report`)."""
    lines = ["# segedge drift report", ""] + [n + "\n" for n in _notes(report)] + _md_table(summary_table(report))
    classes = class_table(report)
    if classes:
        lines += ["", "## IoU per class", ""] + _md_table(classes)
    lines += ["", "## Speed", ""] + _md_table(speed_table([(m.name, m.speed) for m in report.models]))
    for m in report.models:
        if m.worst:
            lines += ["", f"## Worst images: {m.name}", "", "reference | candidate | ground truth | disagreement (red)", ""]
            lines += [f"- {c.name}: agreement {_pct(c.agreement, 2)}  \n  ![{c.name}]({c.image})" for c in m.worst]
    if report.video:
        v = report.video
        lines += ["", f"## Video: {v.source}", "", f"{v.frames} frames (every {v.every}); ground truth: {v.gt_masks or 'none'}", ""]
        lines += _md_table(video_table(report))
    return "\n".join(lines) + "\n"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _html_table(table: Table, cls: str = "") -> str:
    head, rows = table
    out = [f'<table class="{cls}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</tbody></table>"


def _figure(png: bytes | None, alt: str) -> str:
    return "" if png is None else f'<figure><img alt="{html.escape(alt)}" src="{_data_uri(png)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:6px}
figcaption{font-size:12px;color:#555}img{max-width:100%}.note{font-size:13px;color:#444}"""


def to_html(report: DriftReport, figures: dict[str, bytes | None] | None = None) -> str:
    """A self-contained HTML page: tables, plots and worst-case pictures as ``data:`` URIs.

    Args:
        report: the report.
        figures: PNG plots by name, from :func:`make_figures` (made here when ``None``).
    """
    figures = make_figures(report) if figures is None else figures
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>segedge drift report</title><style>{_CSS}</style></head><body>",
             "<h1>segedge drift report</h1>"] + [f'<p class="note">{html.escape(n)}</p>' for n in _notes(report)]
    parts += ["<h2>Summary</h2>", _html_table(summary_table(report), "summary"), _figure(figures.get("metrics"), "metrics per model")]
    classes = class_table(report)
    if classes:
        parts += ["<h2>IoU per class</h2>", _html_table(classes, "classes"), _figure(figures.get("confusion"), "confusion matrices (vs ground truth)")]
    parts += ["<h2>Speed</h2>", _html_table(speed_table([(m.name, m.speed) for m in report.models]), "speed"), _figure(figures.get("latency"), "latency distributions")]
    if figures.get("agreement"):
        parts += ["<h2>Agreement per image</h2>", _figure(figures["agreement"], "per-image agreement distribution")]
    for m in report.models:
        if m.worst:
            parts.append(f"<h2>Worst images: {html.escape(m.name)}</h2><p class='note'>reference | candidate | ground truth | disagreement (red)</p>")
            parts += [_figure(_png(c.panels), f"{c.name}: agreement {_pct(c.agreement)}") for c in m.worst if c.panels is not None]
    if report.video:
        parts += [f"<h2>Video: {html.escape(report.video.source)}</h2>", _html_table(video_table(report), "video"), _figure(figures.get("video"), "agreement over time")]
    return "\n".join(parts) + "</body></html>\n"


def video_table(report: DriftReport) -> Table:
    """Mean and worst frame agreement per candidate, mean object IoU (pet or border) and pet
    IoU vs the masks (empty without a video)."""
    v = report.video
    if v is None:
        return ["model"], []
    head = ["model", "mean agreement", "min frame agreement", "mean object IoU", "mean pet IoU"]
    rows = [[c.name, _pct(c.agreement, 3), _pct(min(c.per_frame_agreement), 2), _pct(c.mean_object_iou), _pct(c.mean_iou)]
            for c in v.candidates]
    if v.reference_iou is not None:
        def mean(values):
            finite = [x for x in values or [] if x is not None]
            return _pct(float(np.mean(finite)) if finite else None)

        rows.insert(0, [f"{report.reference} (reference)", "", "", mean(v.reference_object_iou), mean(v.reference_iou)])
    return head, rows


def make_figures(report: DriftReport) -> dict[str, bytes | None]:
    """Every plot of the report as PNG bytes (``None`` where it does not apply)."""
    figures = {
        "metrics": plots.metric_bars(report),
        "latency": plots.latency_distributions(report),
        "confusion": plots.confusion_matrices(report),
        "agreement": plots.agreement_distribution(report),
        "video": plots.video_over_time(report.video) if report.video else None,
    }
    return figures


def write_report(report: DriftReport, out_dir: str | os.PathLike[str], html_page: bool = True) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md``, the worst-case pictures (``worst/*.png``) and,
    with ``html_page``, ``report.html`` into ``out_dir``.

    The whole folder is written aside (a fresh folder beside ``out_dir``) and renamed into
    place only when every file is complete, so a full disk or an interruption leaves the
    earlier report whole, never a mix of new and old files.

    Returns:
        The JSON and Markdown paths (``report.html`` lies beside them).

    Raises:
        InputError: ``out_dir`` is a file, or a folder holding files other than a report's
            (it would be replaced whole).
        OSError: the disk is full or the folder not writable; ``out_dir`` is then untouched.
    """
    out = Path(out_dir)
    check_report_folder(out)
    with staged_directory(out) as staged:
        for m in report.models:
            for case in m.worst:
                if case.panels is not None:
                    atomic_write_bytes(staged / case.image, _png(case.panels), durable=False)
        atomic_write_text(staged / "report.json", json.dumps(report.to_dict(), indent=1) + "\n")
        atomic_write_text(staged / "report.md", to_markdown(report))
        if html_page:
            atomic_write_text(staged / "report.html", to_html(report))
    return out / "report.json", out / "report.md"


REPORT_FILES = {"report.json", "report.md", "report.html", "worst"}  # what a report folder holds


def check_report_folder(out: Path) -> None:
    """Refuse a report destination that is a file, or a folder with anything but a report
    in it (replacing the folder whole would delete those files).

    Raises:
        InputError: one of the above.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"report folder {out} is a file; give a folder name")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise InputError(f"report folder {out} holds other files ({shown}); a report replaces its folder whole: give a new or empty folder")
