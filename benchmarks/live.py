"""End-to-end FPS of the live loop: pipelined vs naive, against inference alone, per backend.

For each shared video (``../shared/data/video``) and each runner (the embedded segnet-dsc as
ONNX Runtime FP32 in both unpool forms, ONNX Runtime INT8, and PyTorch eager), headless and
writing the annotated MP4 like a user would:

- inference-only FPS: the runner on the video's own preprocessed frames, nothing else;
- naive FPS: read, preprocess, infer, draw, write one after another in one thread;
- pipelined FPS: segedge's threaded loop (the default of ``segedge run``);

and the ratios pipelined / inference-only and pipelined / naive, plus the per-stage p50 of
the pipelined run. Every frame is processed (files are never dropped); short clips are
looped to ``--frames`` frames. ``--memory`` adds a soak run of 5,000 frames printing the
resident memory after 500 and after 5,000 frames.

    python benchmarks/live.py [--frames 300] [--memory]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.quantize import quantize_int8
from segedge.data.sources import open_source
from segedge.export.onnx import export_onnx
from segedge.models.checkpoint import load_checkpoint
from segedge.models.registry import create_model
from segedge.runtime.factory import live_parallelism
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.sinks import VideoSink
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def inference_only_fps(runner, video: Path, frames: int, workers: int = 1) -> float:
    """Frames per second of ``runner.infer`` alone on the video's preprocessed frames, with
    ``workers`` threads calling it at once (the parallelism the pipelined loop uses)."""
    import threading

    with open_source(str(video)) as source:
        images = list(source)
    batches = [runner.preprocess(img) for img in images]
    shape = (1, len(runner.classes), *runner.preprocess_config.size)

    def work(count: int) -> None:
        out = np.empty(shape, np.float32)
        for i in range(count):
            runner.infer(batches[i % len(batches)], out=out)

    work(10)
    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(frames // workers,)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return workers * (frames // workers) / (time.perf_counter() - start)


def live_run(runner, video: Path, frames: int, pipelined: bool, work: Path, workers: int = 1):
    with open_source(str(video)) as source:
        sink = VideoSink(work / f"out-{pipelined}.mp4", source.fps)
        options = LiveOptions(loop=True, max_frames=frames, pipelined=pipelined, workers=workers)
        return run_live(runner, source, [sink], options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per measurement (clips are looped)")
    parser.add_argument("--memory", action="store_true", help="also run the 5,000-frame memory soak")
    parser.add_argument("--model", default=None, help="a checkpoint, or `segnet` for a freshly initialised SegNet (speed only); default: the embedded segnet-dsc")
    parser.add_argument("--videos", nargs="+", default=["davis_libby_854x480.mp4", "bikes_640x272.mp4"], help="clips in ../shared/data/video")
    args = parser.parse_args()
    console = Console(width=200)
    work = Path(tempfile.mkdtemp(prefix="segedge-live-"))
    if args.model in ("segnet", "segnet-dsc"):
        # weights do not change the speed: a fresh model with the embedded preprocessing
        ckpt = dataclasses.replace(load_checkpoint(), model=create_model(args.model).eval(), model_name=args.model)
    else:
        ckpt = load_checkpoint(args.model)
    console.print(f"exporting {ckpt.model_name} (both unpool forms) and calibrating INT8 ...")
    native = export_onnx(ckpt, work / "ort.onnx", target="onnxruntime").path
    standard = export_onnx(ckpt, work / "trt.onnx", target="tensorrt").path
    calibration = load_calibration_set(SHARED / "oxford-iiit-pet-sample", ckpt.preprocess, num_images=64)
    int8 = quantize_int8(native, work / "ort-int8.onnx", calibration).path

    workers, threads = live_parallelism(native)
    # naive loop: one stream, every core on each frame (ONNX Runtime's default);
    # pipeline: `segedge run`'s default, `workers` frames at once with `threads` threads each
    configs = [
        ("ORT fp32, MaxUnpool form", lambda t, spin: OnnxRuntimeRunner(native, threads=t, spin=spin), workers),
        ("ORT fp32, standard form", lambda t, spin: OnnxRuntimeRunner(standard, threads=t, spin=spin), workers),
        ("ORT int8, MaxUnpool form", lambda t, spin: OnnxRuntimeRunner(int8, threads=t, spin=spin), workers),
        ("PyTorch eager fp32", lambda t, spin: TorchRunner(ckpt), 1),
    ]

    table = Table(title=f"live loop, headless, writing MP4, {args.frames} frames each (clips looped), every frame processed")
    for column in ("video", "runner", "inference-only FPS (1 stream)", "inference-only FPS (pipeline's workers)", "naive FPS", "pipelined FPS",
                   "pipelined / inference-only (1 stream)", "pipelined / inference-only (workers)", "pipelined / naive"):
        table.add_column(column, justify="left" if column in ("video", "runner") else "right")
    stages = Table(title="pipelined run, per-stage p50 ms (threads overlap: stages add up to more than the frame interval)")
    for column in ("video", "runner", "read", "preprocess", "infer", "postprocess", "draw", "write", "latency"):
        stages.add_column(column, justify="left" if column in ("video", "runner") else "right")
    for video in args.videos:
        path = SHARED / "video" / video
        for label, make, n_workers in configs:
            single = inference_only_fps(make(0, True), path, args.frames)
            pipe_runner = make(threads if n_workers > 1 else 0, n_workers == 1)
            parallel = inference_only_fps(pipe_runner, path, args.frames, n_workers)
            naive = live_run(make(0, True), path, args.frames, False, work)
            piped = live_run(pipe_runner, path, args.frames, True, work, n_workers)
            table.add_row(video, f"{label} ({n_workers} worker{'s' * (n_workers > 1)})", f"{single:.1f}", f"{parallel:.1f}", f"{naive.fps:.1f}",
                          f"{piped.fps:.1f}", f"{piped.fps / single:.2f}", f"{piped.fps / parallel:.2f}", f"{piped.fps / naive.fps:.2f}x")
            stages.add_row(video, label, *(f"{piped.percentile_ms(s, 50):.2f}" for s in ("read", "preprocess", "infer", "postprocess", "draw", "write", "latency")))
    console.print(table)
    console.print(stages)

    if args.memory:
        marks = {}

        def mark(index, mask):
            if index in (499, 4999):
                marks[index + 1] = rss_mb()

        with open_source(str(SHARED / "video" / "bikes_640x272.mp4")) as source:
            stats = run_live(OnnxRuntimeRunner(native, threads=threads, spin=False), source, [VideoSink(work / "soak.mp4", source.fps)],
                             LiveOptions(loop=True, max_frames=5000, workers=workers), on_frame=mark)
        growth = 100 * (marks[5000] - marks[500]) / marks[500]
        console.print(f"memory soak: {stats.frames} frames at {stats.fps:.1f} FPS; resident memory {marks[500]:.1f} MB after 500 frames, "
                      f"{marks[5000]:.1f} MB after 5,000 ({growth:+.2f}%)")


if __name__ == "__main__":
    main()
