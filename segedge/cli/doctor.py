"""``segedge doctor --gpu`` (also ``scripts/gpu-check.sh``): what is installed, which backends
run here, how far each deployed variant is from PyTorch, and how fast each is at batch 1, 8 and 32
(the work is :func:`segedge.pipeline.doctor.run_doctor`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge._io import atomic_write_text
from segedge.cli.common import console, handle_errors


def _default_data() -> Path | None:
    """``$SEGEDGE_SHARED_DATA/oxford-iiit-pet-sample`` when that variable is set."""
    root = os.environ.get("SEGEDGE_SHARED_DATA")
    return Path(root) / "oxford-iiit-pet-sample" if root else None


@handle_errors
def doctor_command(
    gpu: Annotated[bool, typer.Option("--gpu", help="Also build TensorRT engines and time the GPU backends (what is missing is skipped, with the reason).")] = False,
    data: Annotated[Optional[Path], typer.Option(help="Oxford-IIIT Pet root for the PyTorch comparison and INT8 calibration (default: $SEGEDGE_SHARED_DATA/oxford-iiit-pet-sample when set).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Keep the exported ONNX and engines here (default: a temporary directory).")] = None,
    images: Annotated[int, typer.Option(min=1, help="Sample images compared against PyTorch.")] = 32,
    budget: Annotated[float, typer.Option(min=0.1, help="Seconds of timing per backend and batch size.")] = 1.0,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the results (versions, rows, skipped, failed) as JSON here.")] = None,
) -> None:
    """Report the installation and compare every available backend with PyTorch: agreement, latency, throughput."""
    from rich.table import Table

    from segedge.pipeline.doctor import BATCHES, run_doctor

    result = run_doctor(gpu, data or _default_data(), output, images, budget)
    for line in result.environment + result.notes:
        console.print(line)
    table = Table(title=f"agreement with PyTorch FP32 and latency (median ms per call) / throughput (images/s); artifacts in {result.workdir}")
    table.add_column("backend")
    table.add_column("agreement %", justify="right")
    for n in BATCHES:
        table.add_column(f"b{n} ms", justify="right")
        table.add_column(f"b{n} img/s", justify="right")
    for row in result.rows:
        cells = ["-" if row.agreement is None else f"{100 * row.agreement:.2f}"]
        for n in BATCHES:
            cells += [f"{row.ms[n]:.2f}", f"{1000 * n / row.ms[n]:.0f}"] if n in row.ms else ["-", "-"]
        table.add_row(row.name, *cells)
    console.print(table)
    for line in result.skipped:
        console.print(f"skipped: {line}")
    for line in result.failed:
        console.print(f"failed: {line}")
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2))
    if result.failed:
        raise typer.Exit(1)


if __name__ == "__main__":  # scripts/gpu-check.sh runs this module directly
    typer.run(doctor_command)
