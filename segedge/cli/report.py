"""``segedge report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


def print_report_table(report) -> None:
    from rich.table import Table

    ref = next(m for m in report.models if m.is_reference)
    table = Table(title=f"drift vs {report.reference} on {report.data['source']} ({report.data['images']} images)")
    for column in ("model", "precision", "pixel acc", "mIoU", "agreement", "p50 ms", "p99 ms", "MB"):
        table.add_column(column, justify="left" if column == "model" else "right")

    def pct(v, r=None):
        if v is None:
            return "n/a"
        return f"{100 * v:.2f}%" + ("" if r is None else f" ({100 * (v - r):+.2f})")

    for m in report.models:
        table.add_row(
            m.name, m.precision,
            pct(m.pixel_accuracy, None if m.is_reference else ref.pixel_accuracy),
            pct(m.miou, None if m.is_reference else ref.miou),
            f"{100 * m.agreement:.3f}%", f"{m.latency_ms['p50']:.2f}", f"{m.latency_ms['p99']:.2f}",
            "n/a" if m.size_mb is None else f"{m.size_mb:.2f}",
        )
    console.print(table)


@handle_errors
def report_command(
    candidates: Annotated[Optional[list[Path]], typer.Option("--candidates", "-c", help="Deployed artifacts (.onnx, .engine, .pt); more may follow as plain arguments.")] = None,
    more: Annotated[Optional[list[Path]], typer.Argument(help="More candidates (so `--candidates A B C` works).", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Oxford-IIIT Pet root (labelled; its --split is used), image folder or video (unlabelled: agreement only).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for report.json and report.md.")] = Path("report"),
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="Reference checkpoint (.pt); default: the embedded segnet-dsc.")] = None,
    split: Annotated[str, typer.Option(help="Pet split to evaluate.")] = "test",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Evaluate at most N images (a quick sample).")] = None,
    latency_runs: Annotated[int, typer.Option(min=1, help="Timed batch-1 runs per model (after 5 warm-up runs).")] = 50,
) -> None:
    """Report the accuracy drift of deployed artifacts against the PyTorch model, with speed.

    For every candidate and the reference: pixel accuracy, mIoU, IoU per class, argmax agreement with the reference, latency p50/p99
    (batch 1) and size. Writes report.json and report.md."""
    from segedge.errors import InputError
    from segedge.report.drift import compare, load_eval_data
    from segedge.report.render import write_report
    from segedge.runtime.factory import load_runner
    from segedge.runtime.torch_runner import TorchRunner

    paths = list(candidates or []) + list(more or [])
    if not paths:
        raise InputError("give at least one candidate: --candidates model.onnx [more ...]")
    if data is None:
        raise InputError("give --data: an Oxford-IIIT Pet root, an image folder or a video")
    ref = TorchRunner(reference)
    runners = [load_runner(p) for p in paths]
    eval_data = load_eval_data(data, split=split, limit=limit)
    result = compare(ref, runners, eval_data, latency_runs=latency_runs, on_progress=lambda name: console.print(f"scoring {name} ..."))
    json_path, md_path = write_report(result, output)
    print_report_table(result)
    console.print(f"wrote {json_path} and {md_path}")
