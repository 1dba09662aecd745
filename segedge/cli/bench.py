"""``segedge bench``: the report's speed table alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import handle_errors, progress_bar
from segedge.contract import Backend


@handle_errors
def bench_command(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts to time (.pt, .onnx, .xml OpenVINO IR, .engine, or triton://HOST:PORT/MODEL: latency then includes the network).", show_default=False)],
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Images to time on (Pet root, folder or video; the first 8 are used); default: a real cat photo (scikit-image `chelsea`).")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs at batch 1 (batch 8: runs/4, at least 3), after --warmup untimed runs.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before timing, at each batch size.")] = 5,
    backend: Annotated[Backend, typer.Option(help="Backend for every artifact (auto: by suffix; a Q/DQ INT8 .onnx without MaxUnpool goes to OpenVINO on a CPU when installed).")] = Backend.AUTO,
) -> None:
    """Time artifacts as `segedge report` does: latency p50/p90/p99 and throughput at batch 1 and 8, number of
    runs, artifact size and resident-memory growth, one row per artifact."""
    from segedge.cli.report import print_table
    from segedge.report.render import speed_table
    from segedge.report.speed import measure_speed
    from segedge.runtime.factory import load_runner

    if data is None:
        from segedge.data.demo import demo_image

        images = [demo_image()]
        described = "scikit-image `chelsea` (a real cat photo)"
    else:
        from segedge.report.drift import load_eval_data

        loaded = load_eval_data(data, limit=8)
        images = [image for _, image, _ in loaded]
        described = loaded.source
    rows = []
    with progress_bar() as update:
        for artifact in artifacts:
            with load_runner(artifact, backend=backend) as runner:
                speed = measure_speed(runner, images, runs=runs, warmup=warmup, on_progress=lambda d, t, n=runner.name: update(f"time {n}", d, t))
            rows.append((runner.name, speed))
    print_table(speed_table(rows), f"speed on {described} (model call on a preprocessed batch, after {warmup} warm-up runs)")
