"""``segedge run``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


class Provider(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"


def print_live_stats(stats, label: str) -> None:
    """Summary table of a live run: frames, FPS, per-stage p50/p99 ms."""
    from rich.table import Table

    table = Table(title=f"{label}: {stats.frames} frames in {stats.seconds:.1f} s = {stats.fps:.1f} FPS"
                  + (f", {stats.skipped} corrupt frames skipped" if stats.skipped else ""))
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for stage, values in stats.stage_ms.items():
        if values:
            table.add_row(stage, f"{stats.percentile_ms(stage, 50):.2f}", f"{stats.percentile_ms(stage, 99):.2f}")
    console.print(table)


@handle_errors
def run_command(
    source: Annotated[str, typer.Option("--source", "-s", help="Camera index (0), video file, rtsp:// or http:// URL, image folder or glob.")],
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", help="Artifact: .pt (PyTorch), .onnx (ONNX Runtime) or .engine (TensorRT); default: the embedded segnet-dsc.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the annotated video here (.mp4, finalised even on Ctrl-C).")] = None,
    show: Annotated[bool, typer.Option("--show", help="Show a window (q or Esc quits).")] = False,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after N frames.")] = None,
    provider: Annotated[Provider, typer.Option(help="ONNX Runtime execution provider for .onnx artifacts.")] = Provider.cpu,
) -> None:
    """Segment a camera, video, stream or image folder live, with overlay and FPS.

    OpenCV loop: read frames, segment, draw a coloured overlay (pet orange, border yellow)
    with FPS, and write and/or show them; prints FPS and per-stage latency at the end."""
    from segedge.data.sources import open_source
    from segedge.runtime.factory import load_runner
    from segedge.runtime.video import run_live

    with open_source(source) as frames, load_runner(engine, provider.value) as runner:
        stats = run_live(runner, frames, output=output, show=show, alpha=alpha, max_frames=max_frames)
    print_live_stats(stats, f"{runner.name} on {frames.description}")
    if stats.output:
        console.print(f"wrote {stats.output}")
    elif output is None and not show:
        console.print("no --output and no --show: segmented for the statistics only")
    if stats.interrupted:
        console.print("stopped early (interrupted); the output was finalised")
