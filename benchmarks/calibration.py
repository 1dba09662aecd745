"""INT8 calibration: method x number of images -> accuracy drop, calibration time, peak memory.

For a model (default: the embedded segnet-dsc; ``--checkpoint`` for another), exports the
FP32 ONNX once, then for every calibration method and image count quantizes it in a fresh
subprocess (so each peak resident memory is that run's own, read from ``ru_maxrss``) and
scores FP32 and INT8 on the test split of the shared Oxford-IIIT Pet sample. Images are
drawn from the sample's trainval split; counts above its 300 images add frames of the shared
videos (every 2nd frame), as in the issue's 512-image memory check.

Columns: pixel-accuracy and mIoU drop against FP32 in points, calibration wall time,
the subprocess's peak RSS and its RSS before calibration started (model, data, imports), and
the peak relative to the smallest count of the same method (memory must not grow with the
number of images).

    python benchmarks/calibration.py [--checkpoint model.pt] [--methods entropy percentile minmax] [--images 64 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PET = SHARED / "oxford-iiit-pet-sample"
VIDEOS = sorted((SHARED / "video").glob("*.mp4"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    """One calibration run; prints a JSON line."""
    from segedge.calibration.dataset import load_calibration_sets
    from segedge.calibration.quantize import quantize_int8
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    config = OnnxRuntimeRunner(args.onnx).preprocess_config
    sources = [PET] + (VIDEOS if args.num > 300 else [])
    calibration = load_calibration_sets(sources, config, num_images=args.num, every=2)
    before = rss_mb()
    result = quantize_int8(args.onnx, args.out, calibration, method=args.method)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": len(calibration), "seconds": result.seconds, "peak_mb": peak, "before_mb": before,
                      "source": calibration.source}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the embedded segnet-dsc)")
    parser.add_argument("--methods", nargs="+", default=["entropy", "percentile", "minmax"])
    parser.add_argument("--images", nargs="+", type=int, default=[16, 64, 256, 512])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--num", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from segedge.pipeline.sensitivity import EvalSet, score_onnx
    from segedge.data.samples import load_split_arrays
    from segedge.onnx.export import export_onnx
    from segedge.models.checkpoint import load_checkpoint

    if not PET.is_dir():
        sys.exit(f"skipped: the shared data {PET} is absent")
    console = Console(width=180)
    work = Path(tempfile.mkdtemp(prefix="segedge-calib-bench-"))
    ckpt = load_checkpoint(args.checkpoint)
    fp32 = export_onnx(ckpt, work / "fp32.onnx", target="onnxruntime").path
    images, labels, _ = load_split_arrays(PET, "test", ckpt.preprocess)
    test = EvalSet(images, labels, "test split")
    base = score_onnx(fp32, test)
    console.print(f"{ckpt.model_name}: FP32 pixel accuracy {100 * base.pixel_accuracy:.2f}%, mIoU {100 * base.miou:.2f}% on {len(test)} test images")

    table = Table(title=f"INT8 calibration of {ckpt.model_name}, Q/DQ in ONNX Runtime, scored on the test split ({len(test)} images)")
    for column in ("method", "images", "pixel-acc drop (points)", "mIoU drop (points)", "calibration s", "RSS before MB", "peak RSS MB", "peak / smallest count"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method in args.methods:
        first_peak = None
        for num in args.images:
            out = work / f"{method}-{num}.onnx"
            cmd = [sys.executable, __file__, "--child", "--onnx", str(fp32), "--out", str(out), "--method", method, "--num", str(num)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode:
                table.add_row(method, str(num), "failed: " + (run.stderr.strip().splitlines() or ["?"])[-1][:60], "", "", "", "", "")
                continue
            info = json.loads(run.stdout.strip().splitlines()[-1])
            score = score_onnx(out, test)
            first_peak = first_peak or info["peak_mb"]
            table.add_row(
                method, str(info["images"]),
                f"{100 * (base.pixel_accuracy - score.pixel_accuracy):.2f}", f"{100 * (base.miou - score.miou):.2f}",
                f"{info['seconds']:.1f}", f"{info['before_mb']:.0f}", f"{info['peak_mb']:.0f}", f"{info['peak_mb'] / first_peak:.2f}",
            )
            console.print(f"  {method} {info['images']} images ({info['source']}): done")
    console.print(table)


if __name__ == "__main__":
    main()
