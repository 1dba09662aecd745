"""Several cameras on one device (issue 26): ``segedge run`` over 4 sources at once, their frames
batched into shared inference calls, against each source run alone.

The embedded default model (segnet-lite0; ``--model segnet-dsc`` for the article model) is exported and
quantized as ``run_e2e.py`` does (``--form cpu``: the
ONNX Runtime QLinearConv INT8 that ``build-engine --precision int8`` writes; ``--form tensorrt``:
the Q/DQ INT8, which ``--backend auto`` gives to OpenVINO when it is installed; 64 trainval
images of the Pet sample calibrate it). Then, in interleaved rounds, as child processes with
the default backend, workers and upsampling, each writing its MP4 and ``--stats`` like a user:

- **alone**: ``segedge run -e INT8 -s VIDEO --loop --max-frames N -o OUT.mp4 --stats S.jsonl``,
  once per source;
- **together**: ``segedge run -e INT8 -s V1 -s V2 -s V3 -s V4 --loop --max-frames N -o DIR
  --stats DIR``: 4 sources (the three shared videos, the first twice), N frames each;
- **together, batch 1**: the same with ``--max-batch 1`` (every frame its own inference call):
  the control that separates what batching gives from what running the sources side by side
  gives.

First, what a batch costs: CPU ms per frame of ``runner.infer`` on one thread at batch 1, 2, 4
and 8 (process CPU time, interleaved rounds, medians), the figure that decides whether batching
can pay on this CPU at all.

The table gives, per source, the median FPS alone and together, its deviation from the mean
per-source rate together (the issue's bar: within 10%, no source starved), and its p99
latency (capture to written, the summary's end-to-end row) alone and together; then the
aggregate rate together against the mean rate of one source alone (the bar: >= 1.2x), as
the median of the per-round ratios, the same for the batch-1 control, batched against
batch 1, and the mean batch the run formed.

    python benchmarks/multicam.py [--frames 300] [--rounds 3] [--form cpu|tensorrt]

Prints the CPU and its ISA first. The machines here are shared: read the ratios, and rerun
on a quiet machine before quoting absolute rates.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VIDEOS = ("davis_libby_854x480.mp4", "bikes_640x272.mp4", "cockatoo_1280x720.mp4", "davis_libby_854x480.mp4")
ALONE_LINE = re.compile(r"(\d+) frames in ([\d.]+) s = ([\d.]+) FPS")
TOGETHER_LINE = re.compile(r"(\d+) sources, (\d+) frames in ([\d.]+) s = ([\d.]+) FPS in all; (\d+) inference calls, mean batch ([\d.]+)")


@dataclasses.dataclass
class Run:
    fps: float  # the run's rate (aggregate for several sources)
    sources: dict[str, tuple[float, float]]  # name -> (FPS, p99 end-to-end latency ms)
    mean_batch: float = 1.0


def build_int8(work: Path, form: str, model: str = "segnet-lite0") -> Path:
    """The embedded ``model`` as INT8 ONNX, calibrated on 64 Pet trainval images."""
    import torch  # noqa: F401 (load order: torch before onnxruntime)

    from segedge.calibration.dataset import load_calibration_set
    from segedge.calibration.quantize import quantize_int8
    from segedge.models.checkpoint import load_checkpoint
    from segedge.onnx.export import export_onnx

    ckpt = load_checkpoint(model)
    calibration = load_calibration_set(SHARED / "oxford-iiit-pet-sample", ckpt.preprocess, num_images=64)
    target = "onnxruntime" if form == "cpu" else "tensorrt"
    fp32 = export_onnx(ckpt, work / f"{model}.{target}.onnx", target=target).path
    return quantize_int8(fp32, work / f"{model}.{target}.int8.onnx", calibration).path


def batch_cost(artifact: Path, sizes: tuple[int, ...], rounds: int, calls: int = 10) -> dict[int, float]:
    """CPU ms per frame of one-thread inference at each batch size (medians over interleaved rounds)."""
    import time

    import numpy as np

    from segedge.runtime.factory import load_runner

    runner = load_runner(artifact, threads=1, spin=False)
    size = runner.input_size(480, 854)  # a 16:9 frame: 320x576 for a model fed at its aspect
    inputs = {n: np.random.default_rng(n).random((n, 3, *size), dtype=np.float32) for n in sizes}
    for batch in inputs.values():  # warm-up
        runner.infer(batch)
    costs: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n, batch in inputs.items():
            start = time.process_time()
            for _ in range(calls):
                runner.infer(batch)
            costs[n].append((time.process_time() - start) / calls / n * 1000)
    runner.close()
    return {n: statistics.median(values) for n, values in costs.items()}


def _segedge(arguments: list[str]) -> str:
    command = [sys.executable, "-m", "segedge.cli.main", "run", *arguments]
    child = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if child.returncode:
        raise SystemExit(f"segedge run failed (exit {child.returncode}): {' '.join(command)}\n{child.stdout[-3000:]}")
    return child.stdout


def _rows(output: str) -> dict[str, list[str]]:
    """The summary table's rows, by their first cell."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def run_alone(artifact: Path, video: Path, frames: int, work: Path) -> Run:
    for old in (work / "alone.mp4", work / "alone.jsonl"):
        old.unlink(missing_ok=True)
    output = _segedge(["-e", str(artifact), "-s", str(video), "--loop", "--max-frames", str(frames),
                       "-o", str(work / "alone.mp4"), "--stats", str(work / "alone.jsonl")])
    fps = float(ALONE_LINE.search(output).group(3))
    p99 = float(_rows(output)["end-to-end latency"][2])
    return Run(fps, {video.stem: (fps, p99)})


def run_together(artifact: Path, videos: list[Path], frames: int, work: Path, max_batch: int | None = None) -> Run:
    out = work / "together"
    if out.exists():
        for old in out.iterdir():
            old.unlink()
    else:
        out.mkdir()
    output = _segedge(["-e", str(artifact), *(a for v in videos for a in ("-s", str(v))), "--loop", "--max-frames", str(frames),
                       "-o", str(out), "--stats", str(out), *(["--max-batch", str(max_batch)] if max_batch else [])])
    found = TOGETHER_LINE.search(output)
    rows = _rows(output)
    sources = {name: (float(cells[2]), float(cells[4])) for name, cells in rows.items() if name not in ("source", "all")}
    return Run(float(found.group(4)), sources, float(found.group(6)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per source and run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--model", default="segnet-lite0", help="embedded model: segnet-lite0 (the default) or segnet-dsc")
    parser.add_argument("--form", choices=("cpu", "tensorrt"), default="cpu", help="INT8 form: cpu (QLinearConv) or tensorrt (Q/DQ)")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from segedge.cpuinfo import cpu_info
    from segedge.data.sources import source_names

    console = Console(width=200)
    videos = [SHARED / "video" / name for name in VIDEOS]
    for video in videos:
        if not video.is_file():
            raise SystemExit(f"{video} is missing (set SEGEDGE_SHARED_DATA)")
    names = source_names([str(v) for v in videos])
    console.print(f"CPU: {cpu_info().describe()}; {os.cpu_count()} cores; {len(videos)} sources, {args.frames} frames each per run, "
                  f"{args.rounds} rounds; INT8 {args.form} form")
    work = Path(tempfile.mkdtemp(prefix="segedge-multicam-"))
    artifact = build_int8(work, args.form, args.model)
    costs = batch_cost(artifact, (1, 2, 4, 8), args.rounds)
    console.print("CPU ms per frame of one-thread inference by batch size: "
                  + ", ".join(f"batch {n}: {ms:.2f} ({ms / costs[1]:.2f}x of batch 1)" for n, ms in costs.items()), highlight=False)
    alone: dict[str, list[Run]] = {video.stem: [] for video in videos}
    together: list[Run] = []
    unbatched: list[Run] = []
    for round_index in range(args.rounds):
        for video in dict.fromkeys(videos):  # each distinct video alone once
            result = run_alone(artifact, video, args.frames, work)
            alone[video.stem].append(result)
            console.print(f"round {round_index + 1}: {video.stem} alone {result.fps:.1f} FPS", highlight=False)
        result = run_together(artifact, videos, args.frames, work)
        together.append(result)
        console.print(f"round {round_index + 1}: {len(videos)} sources together {result.fps:.1f} FPS in all, "
                      f"mean batch {result.mean_batch:.2f}", highlight=False)
        result = run_together(artifact, videos, args.frames, work, max_batch=1)
        unbatched.append(result)
        console.print(f"round {round_index + 1}: {len(videos)} sources together, --max-batch 1: {result.fps:.1f} FPS in all", highlight=False)
    table = Table(title=f"{len(videos)} sources in one segedge run vs each alone, {args.model} INT8 ({args.form} form), "
                        f"{args.frames} frames per source, {args.rounds} interleaved rounds (medians), {os.cpu_count()} cores")
    for column in ("source", "FPS alone", "FPS together", "vs mean per-source FPS", "p99 ms alone", "p99 ms together"):
        table.add_column(column, justify="left" if column == "source" else "right")
    spreads = []
    for run in together:
        rates = [fps for fps, _ in run.sources.values()]
        mean = statistics.mean(rates)
        spreads.append({name: (fps - mean) / mean for name, (fps, _) in run.sources.items()})
    for name, video in zip(names, videos):
        base = alone[video.stem]
        table.add_row(name, f"{statistics.median(r.fps for r in base):.1f}", f"{statistics.median(r.sources[name][0] for r in together):.1f}",
                      f"{100 * statistics.median(s[name] for s in spreads):+.1f}%",
                      f"{statistics.median(r.sources[video.stem][1] for r in base):.1f}", f"{statistics.median(r.sources[name][1] for r in together):.1f}")
    console.print(table)
    mean_alone = [statistics.mean(alone[v.stem][i].fps for v in videos) for i in range(args.rounds)]
    ratios = [t.fps / m for t, m in zip(together, mean_alone)]
    control = [u.fps / m for u, m in zip(unbatched, mean_alone)]
    batching = [t.fps / u.fps for t, u in zip(together, unbatched)]
    worst = [max(abs(v) for v in s.values()) for s in spreads]
    summary = Table(title="aggregate rate, medians of per-round ratios")
    for column in ("run", "FPS in all", "vs one source alone (mean over the sources)", "per round"):
        summary.add_column(column, justify="left" if column == "run" else "right")
    summary.add_row("one source alone (mean over the sources)", f"{statistics.median(mean_alone):.1f}", "1.00x", "")
    summary.add_row(f"{len(videos)} sources, batched (mean batch {statistics.median(t.mean_batch for t in together):.2f})",
                    f"{statistics.median(t.fps for t in together):.1f}", f"{statistics.median(ratios):.2f}x", ", ".join(f"{r:.2f}" for r in ratios))
    summary.add_row(f"{len(videos)} sources, --max-batch 1", f"{statistics.median(u.fps for u in unbatched):.1f}",
                    f"{statistics.median(control):.2f}x", ", ".join(f"{r:.2f}" for r in control))
    summary.add_row("batched vs --max-batch 1", "", f"{statistics.median(batching):.2f}x", ", ".join(f"{r:.2f}" for r in batching))
    console.print(summary)
    console.print(f"bars: aggregate >= 1.2x one source alone; every source within 10% of the mean per-source rate "
                  f"(largest deviation here {100 * statistics.median(worst):.1f}%)", highlight=False)


if __name__ == "__main__":
    main()
