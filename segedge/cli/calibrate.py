"""``segedge calibrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors, progress_bar
from segedge.cli.engine import TARGET_HELP
from segedge.contract import CalibrationMethod, Target


@handle_errors
def calibrate_command(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `segedge export`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Q/DQ INT8 ONNX to write (atomically).")],
    calib_data: Annotated[list[Path], typer.Option(help="Calibration images: an Oxford-IIIT Pet root (trainval split), an image folder or a video; repeat to combine sources.")],
    num_images: Annotated[int, typer.Option(min=1, help="Calibration images drawn (seeded) from all sources together.")] = 64,
    every: Annotated[int, typer.Option(min=1, help="Frame stride for video sources.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the calibration draw.")] = 0,
    method: Annotated[CalibrationMethod, typer.Option(help="Range calibration: percentile (clip rare outliers), entropy (KL divergence, TensorRT's classic) or minmax.")] = CalibrationMethod.PERCENTILE,
    percentile: Annotated[float, typer.Option(min=50.0, max=100.0, help="Percentile of |activation| kept in range (--method percentile).")] = 99.9,
    cache: Annotated[Optional[Path], typer.Option(help="Calibration cache (JSON): ranges reused when model, data, method and target match, recomputed and replaced when anything changed.")] = None,
    target: Annotated[Optional[Target], typer.Option(help=TARGET_HELP)] = None,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help="Rank layers by the accuracy INT8 costs in each (each kept in float in turn, scored on held-out labelled images).")] = False,
    max_drop: Annotated[Optional[float], typer.Option(min=0.0, help="Automatic mixed precision: keep the fewest, most sensitive layers in float until the held-out pixel-accuracy drop is at most this many points.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help="Labelled Oxford-IIIT Pet root for --sensitivity/--max-drop (default: the first --calib-data if it is one).")] = None,
    eval_split: Annotated[str, typer.Option(help="Split scored for --sensitivity/--max-drop; calibration images are left out of it.")] = "trainval",
    eval_limit: Annotated[int, typer.Option(min=1, help="Held-out images scored per variant.")] = 100,
    plot: Annotated[Optional[Path], typer.Option(help="PNG bar chart of the sensitivity scan (default: OUTPUT with .sensitivity.png).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing OUTPUT (an output that is an input is refused even so).")] = False,
) -> None:
    """Calibrate an FP32 ONNX and write its INT8 form for its target.

    tensorrt form (the default for a `segedge export --target tensorrt` model): Q/DQ as
    TensorRT's strongly typed builder runs it, signed INT8, zero point 0, per-channel
    convolution weights, per-tensor activations, Q/DQ on convolution inputs, FP16 between the
    INT8 convolutions. onnxruntime form (the default for a MaxUnpool export): QLinearConv with
    uint8 activations and int8 per-channel weights, ONNX Runtime's CPU integer kernels.
    Calibration runs one batch at a time, so memory does not grow with the number of images.

    --sensitivity prints (and plots) how many pixel-accuracy points each layer wins back
    when it alone stays in float. --max-drop D keeps layers in float, most sensitive first,
    until the drop against the FP32 model is at most D points, and reports which ones and
    the resulting latency. Float layers run FP16 in the tensorrt form and FP32 in the
    onnxruntime form.
    """
    from segedge._io import check_output, resolved
    from segedge.errors import InputError

    inputs = [model, *calib_data, eval_data]  # an output that is one of these is refused, --force or not
    check_output(output, inputs, force=force)
    if cache is not None:  # every input counts, and each output is no other output
        check_output(cache, [*inputs, output], force=True, option="--cache")
    if sensitivity and plot is not None:
        check_output(plot, [*inputs, output, cache], force=True, option="--plot")
        if cache is not None and resolved(plot) == resolved(cache) or resolved(plot) == resolved(output):
            raise InputError(f"--plot {plot} is also another output of this command; give it its own file")
    _calibrate(model, output, calib_data, num_images, every, seed, method, percentile, cache, sensitivity,
               max_drop, eval_data, eval_split, eval_limit, plot, force, target)


def _calibrate(model, output, calib_data, num_images, every, seed, method, percentile, cache, sensitivity,
               max_drop, eval_data, eval_split, eval_limit, plot, force, target) -> None:
    from rich.table import Table

    from segedge.calibration.dataset import load_calibration_sets
    from segedge.calibration.quantize import int8_target, quantize_int8
    from segedge.contract import Precision
    from segedge.data.oxford_pet import is_pet_root
    from segedge.errors import DataError, InputError
    from segedge.onnx.artifact import open_onnx
    from segedge.pipeline.sensitivity import held_out_set, mixed_precision, plot_sensitivity, sensitivity_scan
    from segedge.report.drift import measure_latency
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    source = open_onnx(model)  # once: the graph (external weights inside), its I/O checked, its contract
    chosen = int8_target(source.contract, target, model)  # before calibrating
    if source.contract.precision is Precision.INT8 or source.op_types & {"QuantizeLinear", "DequantizeLinear"}:
        raise InputError(f"{model} is already quantized (Q/DQ nodes); calibrate the FP32 ONNX from `segedge export`")
    config = source.contract.preprocess
    model = source
    calibration = load_calibration_sets(calib_data, config, num_images=num_images, seed=seed, every=every)
    console.print(f"calibration: {calibration.summary()}")
    if not (sensitivity or max_drop is not None):
        result = quantize_int8(model, output, calibration, method.value, percentile, cache=cache, target=chosen)
        cached = f"; cache {cache}: {result.cache}" if cache else ""
        console.print(f"wrote {output}: {result.target} form, {result.int8_convs} INT8 convolutions, {result.method} calibration "
                      f"in {result.seconds:.1f} s{cached}")
        return

    root = eval_data or next((p for p in calib_data if is_pet_root(p)), None)
    if root is None:
        raise DataError("--sensitivity and --max-drop need labelled data: pass --eval-data PET_ROOT")
    held_out = held_out_set(root, config, eval_split, eval_limit, exclude=calibration)
    console.print(f"held-out: {held_out.source}")
    ranking = None
    with progress_bar() as progress:
        if sensitivity:
            ranking = sensitivity_scan(model, calibration, held_out, method.value, percentile, progress=progress, target=chosen)
        if max_drop is not None:
            amp = mixed_precision(model, output, calibration, held_out, max_drop, method.value, percentile, ranking, progress, chosen)
        else:
            quantize_int8(model, output, calibration, method.value, percentile, cache=cache, target=chosen)

    if ranking is not None:
        table = Table(title=f"INT8 sensitivity ({chosen} form, {method.value}): FP32 {100 * ranking.float_score.pixel_accuracy:.2f}%, "
                            f"all-INT8 {100 * ranking.int8_score.pixel_accuracy:.2f}% (drop {ranking.int8_drop:.2f} points)")
        for column in ("rank", "layer (kept in float)", "convs", "pixel acc", "mIoU", "points won back", "drop vs FP32"):
            table.add_column(column, justify="left" if column.startswith("layer") else "right")
        for i, row in enumerate(ranking.layers, 1):
            table.add_row(str(i), row.layer, str(row.convs), f"{100 * row.score.pixel_accuracy:.2f}%", f"{100 * row.score.miou:.2f}%",
                          f"{row.recovered:+.2f}", f"{row.drop:.2f}")
        console.print(table)
        chart = plot_sensitivity(ranking, plot or output.with_suffix(".sensitivity.png"))
        console.print(f"sensitivity chart: {chart}")
    if max_drop is not None:
        kept = ", ".join(amp.float_layers) or "none"
        verdict = "within" if amp.met else "NOT within"
        console.print(f"mixed precision: {len(amp.float_layers)} layer(s) kept in float ({kept}); held-out pixel-accuracy drop "
                      f"{amp.drop:.2f} points, {verdict} --max-drop {max_drop}")
        batch = held_out.images[:1]
        with OnnxRuntimeRunner(source) as fp32_runner, OnnxRuntimeRunner(output) as mixed_runner:
            fp32 = measure_latency(fp32_runner, batch, runs=30)["p50"]
            mixed = measure_latency(mixed_runner, batch, runs=30)["p50"]
        console.print(f"latency p50 (ONNX Runtime CPU, batch 1): FP32 {fp32:.1f} ms, this model {mixed:.1f} ms")
        if not amp.met:
            raise typer.Exit(1)
    console.print(f"wrote {output}")
