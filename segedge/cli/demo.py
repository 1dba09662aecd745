"""``segedge demo``: the whole pipeline on the embedded model and real input, no download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


@handle_errors
def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for everything the demo writes.")] = Path("segedge-demo"),
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Oxford-IIIT Pet root: calibrate on its trainval split and report on its test split (labelled).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", "-s", help="Video, camera index, URL or image folder for the live step; default: a clip made from a real cat photo.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Report on at most N images of --data.")] = None,
) -> None:
    """Run export, FP32/INT8 build, live video and the drift report end to end, no download needed.

    Uses the embedded segnet-lite0: export to ONNX (exact unpool rewrite, parity check), build FP32
    and INT8 artifacts, segment a video with each, and write a drift report. With no options it needs no download: the video is made from
    scikit-image's real `chelsea` cat photo with simulated camera motion."""
    from segedge.cli.report import print_report_table
    from segedge.cli.run import print_live_stats
    from segedge.pipeline.demo import run_demo

    run_demo(output, data, source, limit, say=console.print, stage=console.rule, on_live=print_live_stats, on_report=print_report_table)

    console.rule("5/5 outputs")
    console.print(f"everything is in {output.resolve()}:")
    for path in sorted(output.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            console.print(f"  {path}  ({path.stat().st_size / 1e6:.2f} MB)")
