"""``segedge report``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors, progress_bar
from segedge.contract import Backend


def print_table(table, title: str) -> None:
    """Print a ``(head, rows)`` table from :mod:`segedge.report.render` with rich."""
    from rich.table import Table

    head, rows = table
    out = Table(title=title)
    for i, column in enumerate(head):
        out.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    console.print(out)


def print_report_table(report) -> None:
    """The summary table, then per-class IoU, speed and video tables and the article line."""
    from segedge.report.render import article_line, class_table, speed_table, summary_table, video_table

    print_table(summary_table(report), f"drift vs {report.reference} on {report.data['source']} ({report.data['images']} images)")
    classes = class_table(report)
    if classes:
        print_table(classes, "IoU per class (points against the reference)")
    print_table(speed_table([(m.name, m.speed) for m in report.models]), "speed (model call on a preprocessed batch, after warm-up)")
    if report.video:
        print_table(video_table(report), f"video {report.video.source}: {report.video.frames} frames")
    line = article_line(report)
    if line:
        console.print(line)


@handle_errors
def report_command(
    candidates: Annotated[Optional[list[Path]], typer.Option("--candidates", "-c", help="Deployed artifacts (.onnx, .xml OpenVINO IR, .engine, .pt, or triton://HOST:PORT/MODEL); more may follow as plain arguments.")] = None,
    more: Annotated[Optional[list[Path]], typer.Argument(help="More candidates (so `--candidates A B C` works).", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Oxford-IIIT Pet root (labelled; its --split is used), image folder or video (unlabelled: agreement only).")] = None,
    video: Annotated[Optional[Path], typer.Option("--video", help="Video clip: compare the candidates with the reference frame by frame (agreement over time).")] = None,
    gt_masks: Annotated[Optional[Path], typer.Option("--gt-masks", help="Per-frame binary masks for --video (a folder of PNGs, or a folder holding masks/): adds pet IoU per frame.")] = None,
    every: Annotated[int, typer.Option(min=1, help="Use every N-th frame of --video.")] = 1,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for report.json, report.md, report.html and worst/*.png.")] = Path("report"),
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="Reference checkpoint (.pt), or an embedded model by name (segnet-dsc); default: the checkpoint the first candidate records (when it is embedded or beside it), else the embedded segnet-lite0.")] = None,
    split: Annotated[str, typer.Option(help="Pet split to evaluate.")] = "test",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Evaluate at most N images (and N video frames): a quick sample.")] = None,
    latency_runs: Annotated[int, typer.Option(min=1, help="Timed runs per model at batch 1 (batch 8: runs/4, at least 3), after --warmup untimed runs.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before timing, per model and batch size.")] = 5,
    worst: Annotated[int, typer.Option(min=0, help="Lowest-agreement images shown per candidate.")] = 6,
    backend: Annotated[Backend, typer.Option(help="Backend for every candidate (auto: by suffix; a Q/DQ INT8 .onnx without MaxUnpool goes to OpenVINO on a CPU when installed).")] = Backend.AUTO,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier report in --output (the folder is replaced whole, so it may hold only a report).")] = False,
) -> None:
    """Report the accuracy drift of deployed artifacts against the PyTorch model, with speed.

    For the reference and every candidate: pixel accuracy, mIoU, the article's IoU, border F1, IoU per class and
    argmax agreement with the reference, with deltas (and with the FP32 export an INT8 or FP16 candidate was made from,
    when that export is a candidate too: post-training and QAT INT8 side by side); logits error; the worst images; latency p50/p90/p99 and
    throughput at batch 1 and 8, size and memory. With --video, agreement frame by frame. Writes report.json,
    report.md and a self-contained report.html."""
    from segedge._io import check_output, resolved
    from segedge.errors import InputError
    from segedge.report.drift import compare, load_eval_data
    from segedge.report.render import check_report_folder, write_report
    from segedge.report.video import video_drift
    from segedge.runtime.factory import load_runner
    from segedge.runtime.torch_runner import TorchRunner

    paths = list(candidates or []) + list(more or [])
    if not paths:
        raise InputError("give at least one candidate: --candidates model.onnx [more ...]")
    if data is None and video is None:
        raise InputError("give --data (an Oxford-IIIT Pet root, an image folder or a video), --video CLIP, or both")
    if gt_masks is not None and video is None:
        raise InputError("--gt-masks needs --video")
    inputs = [*paths, data, video, gt_masks, reference]
    check_output(output, inputs, directory=True, option="--output")
    check_report_folder(output)
    if (output / "report.json").exists() and not force:
        raise InputError(f"{output} holds a report; pass --force to replace it")
    for path in inputs:
        if path is not None and resolved(path).is_relative_to(resolved(output)):
            raise InputError(f"--output {output} holds the input {path}; a report replaces its folder whole: write elsewhere")
    with contextlib.ExitStack() as stack:  # every runner is closed, also when a later one fails to load
        runners = [stack.enter_context(load_runner(p, backend=backend)) for p in paths]  # a bad candidate fails before the reference loads
        if reference is None:  # the checkpoint the candidates were exported from, when it is embedded or beside them
            from segedge.report.monitor import find_reference_checkpoint

            found, note = find_reference_checkpoint(runners[0])
            console.print(note)
            ref = stack.enter_context(TorchRunner(found))
        else:
            ref = stack.enter_context(TorchRunner(reference))
        eval_data = load_eval_data(data, split=split, limit=limit) if data is not None else None
        with progress_bar() as update:
            clip = video_drift(ref, runners, video, gt_masks, every=every, limit=limit, progress=update) if video is not None else None
            result = compare(ref, runners, eval_data, latency_runs=latency_runs, warmup=warmup, worst=worst, video=clip, progress=update)
            update("write report", 0, 1)
            json_path, md_path = write_report(result, output)
            update("write report", 1, 1)
    print_report_table(result)
    console.print(f"wrote {json_path}, {md_path} and {json_path.parent / 'report.html'}")
