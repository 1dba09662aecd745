"""INT8 on a CPU, per target form: latency against ONNX Runtime FP32, and the accuracy it costs.

For each model (the embedded segnet-dsc, and segnet from --segnet CKPT): exports the MaxUnpool
FP32 ONNX (``segedge export --target onnxruntime``, the ONNX Runtime FP32 baseline) and the
TensorRT-form FP32, quantizes with ``quantize_int8`` (64 trainval images of the Pet sample,
percentile 99.9) into

- ``cpu``: the onnxruntime form (QLinearConv), from the MaxUnpool FP32;
- ``trt-fp16``: the TensorRT form on its FP16 base (what a strongly typed engine builds);
- ``trt-fp32``: the TensorRT form on the FP32 base (before issue 12 defect 11),

then, in one process: latency with ONNX Runtime on one thread, batch 1, in interleaved rounds
(each round times every artifact back to back), medians of the per-round medians and of the
per-round ratios to ONNX Runtime FP32; the ops of ONNX Runtime's optimized graph (QLinearConv
against float Conv/FusedConv); and on the test split (298 images): pixel accuracy, mIoU and
argmax agreement with PyTorch. Prints the CPU's ISA first. The machine is shared: read ratios.

    python benchmarks/int8_cpu.py [--segnet /work/cache/segnet8.pt] [--rounds 7] [--runs 20]

Without --segnet (or if the file is missing), segnet gets random weights: its timings hold,
its accuracy rows are left out.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.quantize import quantize_int8
from segedge.cpuinfo import cpu_info
from segedge.data.samples import load_split_arrays
from segedge.onnx.export import export_onnx
from segedge.models.checkpoint import load_checkpoint, save_checkpoint
from segedge.models.registry import create_model
from segedge.report.metrics import ConfusionMatrix

SHARED = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PET = SHARED / "oxford-iiit-pet-sample"


def session(path: Path, threads: int = 1):
    """The ONNX Runtime session ``segedge`` runs (its runner's options, e.g. without the
    WeightBiasQuantization pass on an FP16-base Q/DQ model)."""
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=threads).session


def optimized_ops(path: Path, work: Path) -> str:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(work / f"{path.stem}.opt.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    return f"QLinearConv {ops['QLinearConv']}, float Conv {ops['Conv'] + ops['FusedConv']}"


def predict(sess, images: np.ndarray, batch: int = 16) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i : i + batch]})[0].argmax(1) for i in range(0, len(images), batch)])


def latency(sessions: dict[str, object], image: np.ndarray, rounds: int, runs: int) -> dict[str, tuple[float, float]]:
    """Median ms per artifact and median per-round ratio ``fp32 / artifact``."""
    per_round: dict[str, list[float]] = {k: [] for k in sessions}
    for sess in sessions.values():
        for _ in range(5):
            sess.run(None, {"input": image})
    for _ in range(rounds):
        for key, sess in sessions.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                sess.run(None, {"input": image})
                times.append((time.perf_counter() - start) * 1000)
            per_round[key].append(float(np.median(times)))
    base = per_round["fp32"]
    return {k: (float(np.median(v)), float(np.median([b / t for b, t in zip(base, v)]))) for k, v in per_round.items()}


def model_rows(name: str, ckpt, trained: bool, work: Path, args) -> list[str]:
    label = name if trained else f"{name} (random weights)"
    native = export_onnx(ckpt, work / f"{name}-ort.onnx", target="onnxruntime").path
    standard = export_onnx(ckpt, work / f"{name}-trt.onnx").path
    calibration = load_calibration_set(PET, ckpt.preprocess, num_images=64)
    paths = {
        "fp32": native,
        "cpu": quantize_int8(native, work / f"{name}-cpu.onnx", calibration).path,
        "trt-fp16": quantize_int8(standard, work / f"{name}-trt16.onnx", calibration).path,
        "trt-fp32": quantize_int8(standard, work / f"{name}-trt32.onnx", calibration, fp16_base=False).path,
    }
    sessions = {k: session(p) for k, p in paths.items()}
    images, labels, _ = load_split_arrays(PET, "test", ckpt.preprocess)
    timing = latency(sessions, images[:1], args.rounds, args.runs)
    scores = {}
    if trained:
        with torch.no_grad():
            reference = np.concatenate([ckpt.model(torch.from_numpy(images[i : i + 16])).argmax(1).numpy() for i in range(0, len(images), 16)])
        for key, sess in sessions.items():
            pred = predict(sess, images)
            matrix = ConfusionMatrix(len(ckpt.classes))
            matrix.update(pred, labels)
            scores[key] = (100 * matrix.pixel_accuracy(), 100 * matrix.miou(), 100 * float((pred == reference).mean()))
    rows = []
    for key in paths:
        ms, ratio = timing[key]
        acc = ""
        if scores:
            pa, miou, agree = scores[key]
            pa0, miou0, _ = scores["fp32"]
            acc = f"{pa:.2f}% ({pa0 - pa:+.2f}) | {miou:.2f}% ({miou0 - miou:+.2f}) | {agree:.3f}%"
        else:
            acc = "- | - | -"
        rows.append(f"| {label} | {key} | {ms:.1f} | {ratio:.2f}x | {optimized_ops(paths[key], work)} | {acc} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segnet", type=Path, default=Path("/work/cache/segnet8.pt"), help="trained segnet checkpoint")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per artifact per round")
    parser.add_argument("--models", default="segnet-dsc,segnet")
    args = parser.parse_args()
    print(f"CPU: {cpu_info().describe()}; ONNX Runtime, 1 thread, batch 1, {args.rounds} interleaved rounds x {args.runs} runs")
    print("| model | artifact | p50 ms | FP32 / this | ORT optimized graph | pixel acc (drop) | mIoU (drop) | agreement with PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="segedge-int8cpu-") as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            trained = True
            if name == "segnet-dsc":
                ckpt = load_checkpoint()
            elif args.segnet.is_file():
                ckpt = load_checkpoint(args.segnet)
            else:
                torch.manual_seed(0)
                path = save_checkpoint(work / "segnet-random.pt", create_model("segnet").eval(), "segnet", load_checkpoint().preprocess)
                ckpt, trained = load_checkpoint(path), False
            for row in model_rows(name, ckpt, trained, work, args):
                print(row, flush=True)


if __name__ == "__main__":
    main()
