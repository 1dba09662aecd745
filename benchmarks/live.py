"""End-to-end FPS of the live loop: pipelined vs naive, against inference alone, per backend,
with the CPU budget that explains the ratios.

For each shared video (``../shared/data/video``) and each runner (the embedded segnet-dsc as
ONNX Runtime FP32 in both unpool forms, ONNX Runtime INT8, and PyTorch eager), headless and
writing the annotated MP4 like a user would, every frame processed (files are never
dropped; short clips are looped to ``--frames`` frames):

- inference-only FPS, 1 stream: ``runner.infer`` back to back on the video's preprocessed
  frames, ONNX Runtime's default threads (what a latency figure measures);
- inference-only FPS, the pipeline's workers: the same, with the pipeline's parallelism
  (``workers`` threads calling at once, ``threads`` intra-op threads each): the strict
  reference for "the loop hides its overhead";
- naive FPS: read, preprocess, infer, draw, write one after another in one thread;
- pipelined FPS: segedge's threaded loop (the default of ``segedge run``), with the mask
  upsampling of ``--upsample`` (default linear, as ``segedge run``).

Each is measured ``--repeats`` times, interleaved (round robin), and the table gives medians
of the FPS and of the per-round ratios: the machines here are shared and noisy, and a ratio
taken within one round cancels most of the noise.

On a CPU, inference and the loop's own work (decode, draw, encode) share the cores, so the
pipelined loop cannot beat ``I / (I + O)`` of the parallel inference-only FPS, where ``I``
is the CPU time of one frame's inference and ``O`` that of the rest. The first table
measures each stage alone on one core (CPU ms per frame) and prints that ceiling; the main
table gives the CPU use of the pipelined run (100% = every core busy) so that the gap
between the loop and the ceiling, the overhead the pipeline failed to hide, can be read.

``--memory`` adds a soak run of 5,000 frames printing the resident memory after 500 and
after 5,000 frames.

``--reference`` measures the drift monitor instead (``segedge run --reference``): the INT8
model live, pipelined, writing the MP4, without a monitor and with the FP32 PyTorch
reference scoring every ``--reference-every``-th frame (at the default lowest priority, and
at normal priority for comparison), interleaved rounds; it prints the FPS ratio, the share
of due frames the reference scored, and the monitor's mean agreement against
``segedge report --video``'s (``video_drift``) on the same frames.

    python benchmarks/live.py [--frames 300] [--repeats 3] [--memory] [--model segnet --frames 60]
    python benchmarks/live.py --reference [--reference-every 2] [--videos davis_libby_854x480.mp4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.quantize import quantize_int8
from segedge.data.sources import open_source
from segedge.onnx.export import export_onnx
from segedge.models.checkpoint import load_checkpoint
from segedge.models.registry import create_model
from segedge.runtime.factory import live_parallelism
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.overlay import Overlay
from segedge.runtime.base import Runner
from segedge.runtime.postprocess import Postprocessor
from segedge.runtime.sinks import VideoSink
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live

SHARED = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CORES = os.cpu_count() or 1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Measured:
    fps: float
    cpu_ms_per_frame: float  # CPU time of the whole process per frame, every thread
    cpu_use: float  # CPU time / (wall time x cores): 1.0 = every core busy


def timed(frames: int, body) -> Measured:
    cpu, start = process_cpu_s(), time.perf_counter()
    done = body()
    wall, cpu = time.perf_counter() - start, process_cpu_s() - cpu
    done = done or frames
    return Measured(done / wall, 1000 * cpu / done, cpu / (wall * CORES))


def preprocessed(runner, video: Path) -> list[np.ndarray]:
    with open_source(str(video)) as source:
        return [runner.preprocess(img) for img in source]


def inference_only(runner, batches: list[np.ndarray], frames: int, workers: int = 1) -> Measured:
    """``runner.infer`` alone on preprocessed frames, ``workers`` threads calling at once."""
    shape = (1, len(runner.classes), *runner.preprocess_config.size)

    def work(count: int) -> None:
        out = np.empty(shape, np.float32)
        for i in range(count):
            runner.infer(batches[i % len(batches)], out=out)

    work(10)  # warm-up: first runs allocate and pick kernels
    per_worker = frames // workers

    def body() -> int:
        if workers == 1:  # in this thread, like the naive loop (PyTorch is slower in a fresh thread)
            work(per_worker)
            return per_worker
        threads = [threading.Thread(target=work, args=(per_worker,)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return per_worker * workers

    return timed(frames, body)


def live(runner, video: Path, frames: int, pipelined: bool, work: Path, workers: int = 1, upsample: str = "linear"):
    """One headless run writing the annotated MP4; returns (Measured, LiveStats)."""
    result = {}

    def body() -> int:
        with open_source(str(video)) as source:
            sink = VideoSink(work / f"out-{pipelined}.mp4", source.fps)
            options = LiveOptions(loop=True, max_frames=frames, pipelined=pipelined, workers=workers, upsample=upsample)
            result["stats"] = run_live(runner, source, [sink], options)
        return result["stats"].frames

    measured = timed(frames, body)
    measured.fps = result["stats"].fps  # the loop's own clock: first read to last delivery
    return measured, result["stats"]


def stage_costs(video: Path, runner, work: Path, frames: int = 100) -> dict[str, float]:
    """CPU ms per frame of each stage alone, on one thread (``time.thread_time``); ``draw`` is
    the default bilinear score upsampling (``--upsample linear``), ``draw (nearest)`` the
    class-map resize it replaces (not counted in the rest ``O``)."""
    cv2.setNumThreads(1)
    with open_source(str(video)) as source:
        images, start = [], time.thread_time()
        for image in source:
            images.append(image)
        decode = 1000 * (time.thread_time() - start) / len(images)
    n = len(images)
    h, w = runner.preprocess_config.size
    batch, logits = np.empty((1, 3, h, w), np.float32), np.empty((1, len(runner.classes), h, w), np.float32)
    post, overlay, nearest = Postprocessor(len(runner.classes), h, w), Overlay(upsample="linear"), Overlay(upsample="nearest")
    costs = {"decode": decode, "preprocess": 0.0, "infer (1 thread)": 0.0, "postprocess": 0.0, "draw": 0.0, "draw (nearest)": 0.0, "encode": 0.0}
    writer = cv2.VideoWriter(str(work / "encode.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 24, images[0].shape[1::-1])
    for i in range(frames):
        frame = images[i % n].copy()
        for stage, call in (
            ("preprocess", lambda: runner.preprocess(frame, out=batch)),
            ("infer (1 thread)", lambda: runner.infer(batch, out=logits)),
            ("postprocess", lambda: post(logits[0])),
            ("draw (nearest)", lambda: nearest.draw(frame.copy(), post.mask)),  # the copy is timed in both draws
            ("draw", lambda: overlay.draw(frame.copy(), post.mask, post.scores)),  # `segedge run`'s default: --upsample linear
            ("encode", lambda: writer.write(frame)),
        ):
            start = time.thread_time()
            call()
            costs[stage] += 1000 * (time.thread_time() - start) / frames
    writer.release()
    cv2.setNumThreads(-1)
    return costs


class OffCpuRunner(Runner):
    """Inference that takes ``ms`` of wall time and no CPU (a sleep), as on a GPU or DLA,
    returning the real model's logits of one frame: shows whether the loop hides its own
    decode, draw and encode work once inference stops competing for the cores. Simulated,
    and labelled so in the table."""

    backend, precision = "simulated accelerator", "-"

    def __init__(self, real: Runner, ms: float, frame: np.ndarray):
        self.preprocess_config, self.classes, self.ms = real.preprocess_config, real.classes, ms
        self.logits = real.infer(real.preprocess(frame))

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        time.sleep(self.ms / 1000)
        if out is None:
            return self.logits.copy()
        np.copyto(out, self.logits)
        return out


def median(values) -> float:
    return statistics.median(values)


def reference_rows(console: Console, ckpt, fp32: Path, int8: Path, video: Path, frames: int, repeats: int, every: int, work: Path) -> None:
    """The drift monitor's cost to the live loop and its agreement against the video report."""
    from segedge.cpuinfo import cpu_info
    from segedge.report.monitor import DriftMonitor
    from segedge.report.video import video_drift

    workers, threads = live_parallelism(int8)
    candidate = OnnxRuntimeRunner(int8, threads=threads, spin=workers == 1)
    torch_reference = TorchRunner(ckpt, threads=1)  # the monitor's reference runs in its own thread only
    onnx_reference = OnnxRuntimeRunner(fp32, threads=1, spin=False)  # FP32 ONNX: the cheaper reference a CPU user can pick
    modes = [("no reference", None, None), (f"PyTorch every {every}, nice 19 (default)", 19, torch_reference),
             (f"PyTorch every {every}, nice 0", 0, torch_reference), (f"ORT fp32 ONNX every {every}, nice 0", 0, onnx_reference)]
    rounds: dict[str, list] = {name: [] for name, _, _ in modes}
    for _ in range(repeats):
        for name, nice, reference in modes:
            results: list = []
            monitor = DriftMonitor(reference, every=every, nice=nice, on_result=results.append) if reference is not None else None
            with open_source(str(video)) as source:
                sink = VideoSink(work / "out-ref.mp4", source.fps)
                stats = run_live(candidate, source, [sink], LiveOptions(loop=True, max_frames=frames, workers=workers), monitor=monitor)
            rounds[name].append((stats.fps, stats.drift, results))
    with open_source(str(video)) as source:
        length = sum(1 for _ in source)
    report = video_drift(TorchRunner(ckpt), [OnnxRuntimeRunner(int8)], video).candidates[0].per_frame_agreement
    table = Table(title=f"drift monitor on {video.name}: ORT int8 live ({workers} workers, MP4 written) against an fp32 reference, "
                        f"{frames} frames x {repeats} interleaved rounds (medians); {cpu_info().describe()}")
    for column in ("reference", "FPS", "/ no reference", "due frames scored", "skipped", "monitor mean agreement", "report (PyTorch), same frames", "difference (points)"):
        table.add_column(column, justify="left" if column == "reference" else "right")
    base = [r[0] for r in rounds["no reference"]]
    for name, _, reference in modes:
        fps = [r[0] for r in rounds[name]]
        if reference is None:
            table.add_row(name, f"{median(fps):.1f}", "1.00", "-", "-", "-", "-", "-")
            continue
        drift = [r[1] for r in rounds[name]]
        scored = [r for run in rounds[name] for r in run[2]]
        if not scored:
            table.add_row(name, f"{median(fps):.1f}", f"{median(f / b for f, b in zip(fps, base)):.2f}", "0", "-", "-", "-", "-")
            continue
        ours = float(np.mean([r.agreement for r in scored]))
        theirs = float(np.mean([report[r.frame % length] for r in scored]))  # the clip loops: frame i is frame i mod length
        table.add_row(name, f"{median(fps):.1f}", f"{median(f / b for f, b in zip(fps, base)):.2f}",
                      f"{100 * median(d.scored / d.due for d in drift):.0f}% ({median(d.scored for d in drift):.0f} of {median(d.due for d in drift):.0f})",
                      f"{median(d.skipped for d in drift):.0f}", f"{100 * ours:.3f}%", f"{100 * theirs:.3f}%", f"{100 * (ours - theirs):+.3f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per measurement (clips are looped)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per measurement (medians are reported)")
    parser.add_argument("--memory", action="store_true", help="also run the 5,000-frame memory soak")
    parser.add_argument("--model", default=None, help="a checkpoint, or `segnet` for a freshly initialised SegNet (speed only); default: the embedded segnet-dsc")
    parser.add_argument("--videos", nargs="+", default=["davis_libby_854x480.mp4", "bikes_640x272.mp4"], help="clips in ../shared/data/video")
    parser.add_argument("--runners", nargs="+", default=["ort", "ort-standard", "ort-int8", "torch", "offcpu"],
                        help="which runners: ort (FP32, MaxUnpool form), ort-standard (FP32, standard-op form), ort-int8 (CPU form), "
                             "ov-int8 (OpenVINO, tensorrt-form INT8; needs segedge[openvino]), torch, offcpu "
                             "(simulated off-CPU inference of --offcpu-ms, as on a GPU: what the loop hides once inference leaves the cores)")
    parser.add_argument("--offcpu-ms", type=float, default=25.0, help="wall time of the simulated off-CPU inference (ms)")
    parser.add_argument("--reference", action="store_true", help="measure the drift monitor (INT8 live against the FP32 PyTorch reference) instead")
    parser.add_argument("--reference-every", type=int, default=2, help="with --reference: the monitor scores every N-th frame")
    parser.add_argument("--upsample", choices=("linear", "nearest"), default="linear", help="mask upsampling in the live runs (`segedge run --upsample`)")
    args = parser.parse_args()
    console = Console(width=220)
    if not (SHARED / "video").is_dir():
        raise SystemExit(f"the shared videos are not at {SHARED / 'video'} (set SEGEDGE_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="segedge-live-"))
    if args.model in ("segnet", "segnet-dsc"):
        # weights do not change the speed: a fresh model with the embedded preprocessing
        ckpt = dataclasses.replace(load_checkpoint(), model=create_model(args.model).eval(), model_name=args.model)
    else:
        ckpt = load_checkpoint(args.model)
    console.print(f"{ckpt.model_name}: exporting (both unpool forms) and calibrating INT8 ...")
    native = export_onnx(ckpt, work / "ort.onnx", target="onnxruntime").path
    if args.reference:
        calibration = load_calibration_set(SHARED / "oxford-iiit-pet-sample", ckpt.preprocess, num_images=64)
        int8 = quantize_int8(native, work / "ort-int8.onnx", calibration).path
        for video in args.videos:
            reference_rows(console, ckpt, native, int8, SHARED / "video" / video, args.frames, args.repeats, args.reference_every, work)
        return
    paths = {"ort": native}
    if "ort-standard" in args.runners:
        paths["ort-standard"] = export_onnx(ckpt, work / "trt.onnx", target="tensorrt").path
    if "ort-int8" in args.runners or "ov-int8" in args.runners:
        calibration = load_calibration_set(SHARED / "oxford-iiit-pet-sample", ckpt.preprocess, num_images=64)
        paths["ort-int8"] = quantize_int8(native, work / "ort-int8.onnx", calibration).path
    if "ov-int8" in args.runners:  # OpenVINO has no MaxUnpool: the tensorrt form's Q/DQ INT8, as --backend auto picks it
        standard = paths.get("ort-standard") or export_onnx(ckpt, work / "trt.onnx", target="tensorrt").path
        paths["ov-int8"] = quantize_int8(standard, work / "ov-int8.onnx", calibration).path

    workers, threads = live_parallelism(native)
    labels = {"ort": "ORT fp32, MaxUnpool form", "ort-standard": "ORT fp32, standard form", "ort-int8": "ORT int8, CPU form (QLinearConv)",
              "ov-int8": "OpenVINO int8, tensorrt form (Q/DQ)", "torch": "PyTorch eager fp32",
              "offcpu": f"simulated off-CPU inference, {args.offcpu_ms:g} ms"}

    torch_workers, _ = live_parallelism(None)

    def make(name: str, pipeline: bool, video: Path):
        # naive loop and 1-stream inference: the backend's defaults (every core on each frame);
        # the pipeline: `segedge run`'s default, `workers` frames at once with `threads` threads each
        if name == "torch":
            return TorchRunner(ckpt), torch_workers if pipeline else 1
        if name == "offcpu":  # one stream, as one accelerator
            with open_source(str(video)) as source:
                return OffCpuRunner(OnnxRuntimeRunner(native), args.offcpu_ms, next(iter(source))), 1
        if name.startswith("ov-"):
            from segedge.runtime.openvino_runner import OpenVINORunner

            ov_workers, ov_threads = live_parallelism(paths[name], backend="openvino")
            return (OpenVINORunner(paths[name], threads=ov_threads, streams=ov_workers), ov_workers) if pipeline else (OpenVINORunner(paths[name]), 1)
        if pipeline:
            return OnnxRuntimeRunner(paths[name], threads=threads, spin=workers == 1), workers
        return OnnxRuntimeRunner(paths[name]), 1

    def torch_threads(name: str, pipeline: bool) -> None:
        """PyTorch's thread count is process-wide: set it for each measurement."""
        if name == "torch":
            torch.set_num_threads(1 if pipeline and torch_workers > 1 else CORES)

    costs = Table(title=f"where the time goes: CPU ms per frame of each stage alone, one thread ({labels['ort']}), and the ceiling it sets")
    for column in ("video", "decode", "preprocess", "infer (1 thread)", "postprocess", "draw (linear)", "draw (nearest)", "linear - nearest",
                   "encode", "I = infer", "O = the rest", "ceiling I/(I+O)"):
        costs.add_column(column, justify="left" if column == "video" else "right")
    table = Table(title=f"live loop, headless, writing MP4, {args.frames} frames x {args.repeats} interleaved rounds (medians), every frame processed, {CORES} cores")
    for column in ("video", "runner", "inference-only FPS (1 stream)", "inference-only FPS (pipeline's workers)", "naive FPS", "pipelined FPS",
                   "pipelined / inference-only (workers)", "pipelined / inference-only (1 stream)", "pipelined / naive", "pipelined CPU use"):
        table.add_column(column, justify="left" if column in ("video", "runner") else "right")
    stages = Table(title="pipelined run, per-stage p50 ms, last round (threads overlap: stages add up to more than the frame interval)")
    for column in ("video", "runner", "read", "preprocess", "infer", "postprocess", "draw", "write", "latency"):
        stages.add_column(column, justify="left" if column in ("video", "runner") else "right")

    for video in args.videos:
        path = SHARED / "video" / video
        single_thread = OnnxRuntimeRunner(native, threads=1)
        c = stage_costs(path, single_thread, work)
        infer_cpu = c["infer (1 thread)"]
        rest = sum(v for k, v in c.items() if k not in ("infer (1 thread)", "draw (nearest)"))
        costs.add_row(video, *(f"{c[k]:.2f}" for k in ("decode", "preprocess", "infer (1 thread)", "postprocess", "draw", "draw (nearest)")),
                      f"{c['draw'] - c['draw (nearest)']:+.2f}", f"{c['encode']:.2f}",
                      f"{infer_cpu:.1f}", f"{rest:.1f}", f"{infer_cpu / (infer_cpu + rest):.2f}")
        for name in args.runners:
            single_runner, _ = make(name, False, path)
            pipe_runner, n_workers = make(name, True, path)
            batches = preprocessed(single_runner, path)
            rounds = []
            for _ in range(args.repeats):
                torch_threads(name, False)
                single = inference_only(single_runner, batches, args.frames)
                naive, _ = live(single_runner, path, args.frames, False, work, upsample=args.upsample)
                torch_threads(name, True)
                parallel = inference_only(pipe_runner, batches, args.frames, n_workers)
                piped, piped_stats = live(pipe_runner, path, args.frames, True, work, n_workers, args.upsample)
                rounds.append((single, parallel, naive, piped))
            torch_threads(name, False)
            col = list(zip(*rounds))
            fps = [median(m.fps for m in c) for c in col]
            ratio = lambda a, b: median(r[a].fps / r[b].fps for r in rounds)  # noqa: E731
            table.add_row(video, f"{labels[name]} ({n_workers} worker{'s' * (n_workers > 1)})", *(f"{f:.1f}" for f in fps),
                          f"{ratio(3, 1):.2f}", f"{ratio(3, 0):.2f}", f"{ratio(3, 2):.2f}x", f"{100 * median(m.cpu_use for m in col[3]):.0f}%")
            stages.add_row(video, labels[name], *(f"{piped_stats.percentile_ms(s, 50):.2f}" for s in ("read", "preprocess", "infer", "postprocess", "draw", "write", "latency")))
            console.print(f"  {video} / {labels[name]}: pipelined {fps[3]:.1f} FPS", highlight=False)
    console.print(costs)
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
