"""`segedge run` end to end, as a user runs it: frames per second of the whole command (decode,
preprocess, inference, upsampling, overlay, MP4 encoding) per model and artifact, and a memory
soak.

For each model (the embedded segnet-lite0 and segnet-dsc; segnet from --segnet CKPT, or freshly
initialised: speed does not depend on the weights) the script builds, like the CLI does,

- ``fp32``: ``segedge export --target onnxruntime`` (MaxUnpool form), run by ONNX Runtime;
- ``int8-cpu``: its INT8 (``build-engine --precision int8``: the CPU form, QLinearConv);
- ``int8-trt``: the INT8 of ``segedge export --target tensorrt`` (Q/DQ form, no MaxUnpool),
  which ``--backend auto`` gives to OpenVINO when it is installed;

(64 trainval images of the Pet sample calibrate both INT8s), then runs ``segedge run -e
ARTIFACT -s VIDEO -o OUT.mp4 --loop --max-frames N`` as a child process with the default
backend, workers and upsampling, in interleaved rounds (each round runs every variant once),
and reports the median FPS the command prints (frames over the loop's wall time) and the
median per-round ratio to FP32 of the same model. ``--soak`` frames of one variant then run
with the child's resident memory sampled every 0.25 s: the table gives it after 10% of the
run, at the end, and the growth between (a leak grows with frames; a flat line does not).

    python benchmarks/run_e2e.py [--models segnet-lite0,segnet-dsc,segnet] [--segnet CKPT] [--frames 600] [--rounds 3] [--soak 5000]

segnet-lite0 keeps the frame's aspect: its artifacts have a symbolic height and width and run at
the aspect-preserving size of the video (320x576 for 854x480).

Prints the CPU and its ISA first. Read the ratios on a shared machine.
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
import threading
import time
from pathlib import Path

SHARED = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FPS_LINE = re.compile(r"(\d+) frames in ([\d.]+) s = ([\d.]+) FPS")


@dataclasses.dataclass
class Variant:
    model: str
    name: str
    path: Path


def build_variants(segnet: str | None, work: Path, models: list[str]) -> list[Variant]:
    """Export and quantize each model into its three artifacts."""
    import torch  # noqa: F401 (load order: torch before onnxruntime)

    from segedge.calibration.dataset import load_calibration_set
    from segedge.calibration.quantize import quantize_int8
    from segedge.onnx.export import export_onnx
    from segedge.models.checkpoint import EMBEDDED, load_checkpoint
    from segedge.models.registry import create_model

    variants = []
    for model in models:
        if model in EMBEDDED:
            ckpt = load_checkpoint(model)
        elif model == "segnet" and segnet and Path(segnet).is_file():
            ckpt = load_checkpoint(segnet)
        elif model == "segnet":
            ckpt = dataclasses.replace(load_checkpoint("segnet-dsc"), model=create_model("segnet").eval(), model_name="segnet")
        else:
            raise SystemExit(f"--models: unknown model {model!r}; choose from {', '.join([*EMBEDDED, 'segnet'])}")
        calibration = load_calibration_set(SHARED / "oxford-iiit-pet-sample", ckpt.preprocess, num_images=64)
        native = export_onnx(ckpt, work / f"{model}.onnx", target="onnxruntime").path
        standard = export_onnx(ckpt, work / f"{model}.trt.onnx", target="tensorrt").path
        variants += [
            Variant(model, "fp32 (ONNX Runtime, MaxUnpool form)", native),
            Variant(model, "int8, CPU form (ONNX Runtime QLinearConv)", quantize_int8(native, work / f"{model}.int8.onnx", calibration).path),
            Variant(model, "int8, tensorrt form (--backend auto)", quantize_int8(standard, work / f"{model}.trt.int8.onnx", calibration).path),
        ]
    return variants


def with_resize(variant: Variant, interpolation: str, work: Path) -> Variant:
    """The same artifact with its contract's image resize replaced (the resize's own cost in the live loop)."""
    import json

    from segedge.onnx.metadata import load_onnx, read_metadata, set_metadata
    import onnx

    model = load_onnx(variant.path)
    metadata = read_metadata(model)
    preprocess = json.loads(metadata["preprocess"])
    if preprocess["interpolation"] == interpolation:
        raise SystemExit(f"--resize-ablation {interpolation}: {variant.path} already resizes that way")
    metadata["preprocess"] = json.dumps({**preprocess, "interpolation": interpolation}, sort_keys=True)
    set_metadata(model, metadata)
    path = work / f"{variant.path.stem}.{interpolation}.onnx"
    onnx.save(model, path)
    return Variant(variant.model, f"{variant.name}, {interpolation} resize (ablation)", path)


def run(variant: Variant, video: Path, frames: int, out: Path, sample_rss: bool = False) -> tuple[float, list[tuple[float, float]], str]:
    """One ``segedge run``: (FPS it printed, [(seconds, RSS MB)] samples, the backend line)."""
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "segedge.cli.main", "run", "-e", str(variant.path), "-s", str(video), "-o", str(out),
               "--loop", "--max-frames", str(frames)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()

    def watch() -> None:
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append((time.perf_counter() - start, int(line.split()[1]) / 1024))
            except OSError:
                break
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    if sample_rss:
        watcher.start()
    output, _ = child.communicate()
    if sample_rss:
        watcher.join()
    found = FPS_LINE.search(output)
    if child.returncode or not found:
        raise SystemExit(f"segedge run failed on {variant.path.name} (exit {child.returncode}):\n{output[-2000:]}")
    line = output[output.rfind("\n", 0, found.start()) + 1 : found.start()]
    return float(found.group(3)), samples, line.split(" on ")[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segnet", help="trained segnet checkpoint (default: fresh weights; speed only)")
    parser.add_argument("--models", default="segnet-lite0,segnet-dsc", help="comma-separated: segnet-lite0, segnet-dsc, segnet")
    parser.add_argument("--video", default="davis_libby_854x480.mp4", help="clip in ../shared/data/video (looped)")
    parser.add_argument("--frames", type=int, default=600, help="frames per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--soak", type=int, default=5000, help="frames of the memory soak (0: none)")
    parser.add_argument("--resize-ablation", metavar="INTERPOLATION", help="also run each INT8 tensorrt-form artifact with its contract's image resize replaced (e.g. linear)")
    parser.add_argument("--soak-variant", default="segnet-lite0:int8, tensorrt form", help="MODEL:NAME-PREFIX of the variant to soak")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from segedge.cpuinfo import cpu_info

    console = Console(width=200)
    video = SHARED / "video" / args.video
    if not video.is_file():
        raise SystemExit(f"{video} is missing (set SEGEDGE_SHARED_DATA)")
    console.print(f"CPU: {cpu_info().describe()}; {os.cpu_count()} cores; video {video.name}, {args.frames} frames per run, {args.rounds} rounds")
    work = Path(tempfile.mkdtemp(prefix="segedge-e2e-"))
    variants = build_variants(args.segnet, work, args.models.split(","))
    if args.resize_ablation:
        variants += [with_resize(v, args.resize_ablation, work) for v in list(variants) if v.name.startswith("int8, tensorrt")]
    fps: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    backends: dict[int, str] = {}
    for round_index in range(args.rounds):
        for i, variant in enumerate(variants):
            value, _, backend = run(variant, video, args.frames, work / "out.mp4")
            fps[i].append(value)
            backends[i] = backend
            console.print(f"round {round_index + 1}: {variant.model} {variant.name}: {value:.1f} FPS", highlight=False)
    table = Table(title=f"segedge run end to end, writing the MP4, {video.name} looped to {args.frames} frames, "
                        f"{args.rounds} interleaved rounds (medians), {os.cpu_count()} cores")
    for column in ("model", "artifact", "runner (as segedge run names it)", "FPS", "vs fp32 of the model"):
        table.add_column(column, justify="right" if column in ("FPS", "vs fp32 of the model") else "left")
    for i, variant in enumerate(variants):
        base = next(j for j, v in enumerate(variants) if v.model == variant.model and v.name.startswith("fp32"))
        ratio = statistics.median(a / b for a, b in zip(fps[i], fps[base]))
        table.add_row(variant.model, variant.name, backends[i], f"{statistics.median(fps[i]):.1f}", f"{ratio:.2f}x")
    console.print(table)
    if args.soak:
        model, _, prefix = args.soak_variant.partition(":")
        variant = next(v for v in variants if v.model == model and v.name.startswith(prefix))
        value, samples, backend = run(variant, video, args.soak, work / "soak.mp4", sample_rss=True)
        end = samples[-1][0]
        early = next(mb for t, mb in samples if t >= 0.1 * end)
        late = max(mb for t, mb in samples if t >= 0.9 * end)
        console.print(f"memory soak: {variant.model} {variant.name} ({backend}), {args.soak} frames at {value:.1f} FPS: resident "
                      f"{early:.1f} MB after 10% of the run, {late:.1f} MB (max) over its last 10% ({100 * (late - early) / early:+.2f}%), "
                      f"peak {max(mb for _, mb in samples):.1f} MB", highlight=False)


if __name__ == "__main__":
    main()
