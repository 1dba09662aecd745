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
    min_agreement: Annotated[Optional[float], typer.Option(min=0.0, max=100.0, help="Automatic mixed precision for agreement: keep the fewest layers in float, those whose INT8 moves most pixels first, until the held-out argmax agreement with the FP32 model is at least this many percent (with --max-drop: both bounds).")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help="Labelled Oxford-IIIT Pet root for --sensitivity/--max-drop/--min-agreement (default: the first --calib-data if it is one).")] = None,
    eval_split: Annotated[str, typer.Option(help="Split scored for --sensitivity/--max-drop; calibration images are left out of it.")] = "trainval",
    eval_limit: Annotated[int, typer.Option(min=1, help="Held-out images scored per variant.")] = 100,
    plot: Annotated[Optional[Path], typer.Option(help="PNG bar chart of the sensitivity scan (default: OUTPUT with .sensitivity.png).")] = None,
    qat: Annotated[int, typer.Option("--qat", min=0, help="Quantization-aware training: fine-tune the FP32 weights this many epochs with the rounding of the INT8 artifact in the forward pass (post-training scales kept), then write them through the same quantizer (0: post-training only).")] = 0,
    qat_images: Annotated[int, typer.Option(min=1, help="--qat: training images drawn (seeded) from the --calib-data sources.")] = 300,
    qat_lr: Annotated[float, typer.Option(min=0.0, help="--qat: Adam learning rate of the (BatchNorm-folded) convolution weights.")] = 1e-5,
    qat_batch_size: Annotated[int, typer.Option(min=1, help="--qat: images per step.")] = 8,
    qat_crop: Annotated[Optional[int], typer.Option(min=32, help="--qat: train on random CROP x CROP windows instead of whole images ((CROP/side)^2 of the time per step; the rounding per pixel is the same). A multiple of the model's size multiple.")] = None,
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="--qat: distil the FP32 model's logits (needs no labels; what agreement measures).")] = True,
    label_weight: Annotated[float, typer.Option(min=0.0, help="--qat: weight of a cross-entropy on the Pet trimaps (a single Pet root as --calib-data; 0: none).")] = 0.0,
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
    the resulting latency. --min-agreement A does the same until the argmax agreement with the
    FP32 model is at least A percent, adding first the layers whose INT8 moves most pixels.
    Float layers run FP16 in the tensorrt form and FP32 in the onnxruntime form. Held-out
    scores of the tensorrt form come from OpenVINO when it is installed (its integer kernels,
    as `--backend auto` runs that form on a CPU), else from ONNX Runtime.

    --qat N fine-tunes the FP32 weights for N epochs with the artifact's own rounding in the
    forward pass (quantization-aware training; the FP32 model as teacher), starting from the
    post-training scales (and the layers --max-drop/--min-agreement keep in float), and writes the result
    through the same quantizer: same form, same scales, same runners.
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
    qat_config = None
    if qat:
        from segedge.calibration.qat import QatConfig
        from segedge.data.oxford_pet import is_pet_root

        qat_config = QatConfig(epochs=qat, lr=qat_lr, batch_size=qat_batch_size, distill=distill, label_weight=label_weight,
                               crop=qat_crop, seed=seed)
        if label_weight > 0 and not (len(calib_data) == 1 and is_pet_root(calib_data[0])):
            raise InputError("--label-weight trains on the Pet trimaps: give a single Oxford-IIIT Pet root as --calib-data")
    _calibrate(model, output, calib_data, num_images, every, seed, method, percentile, cache, sensitivity,
               max_drop, eval_data, eval_split, eval_limit, plot, force, target, qat_config, qat_images, min_agreement)


def _calibrate(model, output, calib_data, num_images, every, seed, method, percentile, cache, sensitivity,
               max_drop, eval_data, eval_split, eval_limit, plot, force, target, qat_config=None, qat_images=300,
               min_agreement=None) -> None:
    from rich.table import Table

    from segedge.calibration.dataset import load_calibration_sets
    from segedge.calibration.quantize import int8_target, quantize_int8
    from segedge.contract import Precision
    from segedge.data.oxford_pet import is_pet_root
    from segedge.errors import DataError, InputError
    from segedge.onnx.artifact import open_onnx
    from segedge.pipeline.sensitivity import held_out_set, mixed_precision, plot_sensitivity, sensitivity_scan
    from segedge.report.drift import measure_latency
    from segedge.runtime.factory import load_runner

    source = open_onnx(model)  # once: the graph (external weights inside), its I/O checked, its contract
    chosen = int8_target(source.contract, target, model)  # before calibrating
    if source.contract.precision is Precision.INT8 or source.op_types & {"QuantizeLinear", "DequantizeLinear"}:
        raise InputError(f"{model} is already quantized (Q/DQ nodes); calibrate the FP32 ONNX from `segedge export`")
    config = source.contract.preprocess
    model = source
    if qat_config is not None:
        from segedge.calibration.torch_graph import check_supported

        check_supported(source.model, model.path)  # before a minute of calibration
        multiple = source.contract.size_multiple or 1
        if qat_config.crop is not None and qat_config.crop % multiple:
            raise InputError(f"--qat-crop {qat_config.crop} is not a multiple of {multiple}, the size multiple of {source.path.name}")
        if qat_config.crop is not None and not source.contract.any_size:
            raise InputError(f"--qat-crop needs a model exported for any input size; {source.path.name} takes only "
                             f"{'x'.join(map(str, source.contract.input_size))}")
    calibration = load_calibration_sets(calib_data, config, num_images=num_images, seed=seed, every=every)
    console.print(f"calibration: {calibration.summary()}")
    if qat_config is not None:
        _calibrate_qat(source, output, calib_data, calibration, method, percentile, cache, sensitivity, max_drop, eval_data,
                       eval_split, eval_limit, plot, chosen, qat_config, qat_images, every, min_agreement)
        return
    bounded = max_drop is not None or min_agreement is not None
    if not (sensitivity or bounded):
        result = quantize_int8(model, output, calibration, method.value, percentile, cache=cache, target=chosen)
        cached = f"; cache {cache}: {result.cache}" if cache else ""
        console.print(f"wrote {output}: {result.target} form, {result.int8_convs} INT8 convolutions, {result.method} calibration "
                      f"in {result.seconds:.1f} s{cached}")
        return

    root = eval_data or next((p for p in calib_data if is_pet_root(p)), None)
    if root is None:
        raise DataError("--sensitivity, --max-drop and --min-agreement need labelled data: pass --eval-data PET_ROOT")
    held_out = held_out_set(root, config, eval_split, eval_limit, exclude=calibration)
    console.print(f"held-out: {held_out.source}")
    ranking = None
    with progress_bar() as progress:
        if sensitivity:
            ranking = sensitivity_scan(model, calibration, held_out, method.value, percentile, progress=progress, target=chosen)
        if bounded:
            amp = mixed_precision(model, output, calibration, held_out, max_drop, method.value, percentile, ranking, progress, chosen,
                                  min_agreement)
        else:
            quantize_int8(model, output, calibration, method.value, percentile, cache=cache, target=chosen)

    if ranking is not None:
        table = Table(title=f"INT8 sensitivity ({chosen} form, {method.value}): FP32 {100 * ranking.float_score.pixel_accuracy:.2f}%, "
                            f"all-INT8 {100 * ranking.int8_score.pixel_accuracy:.2f}% (drop {ranking.int8_drop:.2f} points, "
                            f"agreement with FP32 {100 * ranking.int8_score.agreement:.3f}%)")
        for column in ("rank", "layer (kept in float)", "convs", "pixel acc", "mIoU", "points won back", "drop vs FP32",
                       "agreement vs FP32"):
            table.add_column(column, justify="left" if column.startswith("layer") else "right")
        for i, row in enumerate(ranking.layers, 1):
            table.add_row(str(i), row.layer, str(row.convs), f"{100 * row.score.pixel_accuracy:.2f}%", f"{100 * row.score.miou:.2f}%",
                          f"{row.recovered:+.2f}", f"{row.drop:.2f}", f"{100 * row.score.agreement:.3f}%")
        console.print(table)
        chart = plot_sensitivity(ranking, plot or output.with_suffix(".sensitivity.png"))
        console.print(f"sensitivity chart: {chart}")
    if bounded:
        _print_mixed(amp)
        batch = held_out.images[:1]
        # each on the runtime --backend auto gives it on a CPU (the tensorrt form: OpenVINO when installed)
        with load_runner(source.path) as fp32_runner, load_runner(output) as mixed_runner:
            fp32 = measure_latency(fp32_runner, batch, runs=30)["p50"]
            mixed = measure_latency(mixed_runner, batch, runs=30)["p50"]
            where = f"{fp32_runner.backend}, {mixed_runner.backend}"
        console.print(f"latency p50 (CPU, batch 1; {where}): FP32 {fp32:.1f} ms, this model {mixed:.1f} ms")
        if not amp.met:
            raise typer.Exit(1)
    console.print(f"wrote {output}")


def _print_mixed(amp) -> None:
    """One line: the layers mixed precision kept in float and how the bounds came out."""
    kept = ", ".join(amp.float_layers) or "none"
    bounds = [f"--max-drop {amp.max_drop}"] if amp.max_drop is not None else []
    bounds += [f"--min-agreement {amp.min_agreement}"] if amp.min_agreement is not None else []
    verdict = "within" if amp.met else "NOT within"
    console.print(f"mixed precision: {len(amp.float_layers)} layer(s) kept in float ({kept}); held-out pixel-accuracy drop "
                  f"{amp.drop:.2f} points, agreement with FP32 {amp.agreement:.3f}%, {verdict} {' and '.join(bounds)}")


def _calibrate_qat(source, output, calib_data, calibration, method, percentile, cache, sensitivity, max_drop, eval_data,
                   eval_split, eval_limit, plot, chosen, config, qat_images, every, min_agreement=None) -> None:
    """Post-training INT8 (mixed precision with --max-drop) to a work file, then QAT from it to OUTPUT."""
    from pathlib import Path

    from segedge._io import private_directory
    from segedge.calibration.dataset import load_calibration_sets
    from segedge.calibration.qat import QatData, quantization_aware_training, stored_ranges
    from segedge.calibration.quantize import quantize_int8
    from segedge.data.oxford_pet import is_pet_root
    from segedge.errors import DataError
    from segedge.pipeline.sensitivity import float_reference, held_out_set, mixed_precision, score_onnx, sensitivity_scan

    contract = source.contract.preprocess
    if config.label_weight > 0:
        from segedge.data.samples import DataSpec, load_arrays

        images, labels, names = load_arrays(DataSpec(calib_data[0], "trainval", limit=qat_images, seed=config.seed), contract)
        data, names = QatData(images, labels, f"Oxford-IIIT Pet trainval split in {calib_data[0]}"), list(names)
    else:
        train = load_calibration_sets(calib_data, contract, num_images=qat_images, seed=config.seed, every=every)
        data, names = QatData.from_calibration(train), train.names
    console.print(f"QAT training data: {len(data)} images from {data.source}")
    held_out = None
    bounded = max_drop is not None or min_agreement is not None
    if sensitivity or bounded:
        root = eval_data or next((p for p in calib_data if is_pet_root(p)), None)
        if root is None:
            raise DataError("--sensitivity, --max-drop and --min-agreement need labelled data: pass --eval-data PET_ROOT")
        seen = type(calibration)(calibration.images[:0], calibration.source, [*calibration.names, *names])
        try:  # neither calibration nor QAT training images are scored
            held_out = held_out_set(root, contract, eval_split, eval_limit, exclude=seen)
        except DataError:
            raise DataError(f"no held-out image left in split {eval_split!r} of {root} once the calibration and QAT training "
                            "images are removed; pass fewer --qat-images or --eval-split test") from None
        console.print(f"held-out: {held_out.source}")
    with private_directory("qat-ptq") as work, progress_bar() as progress:
        ptq = Path(work) / "ptq.onnx"
        ranges_file = Path(cache) if cache is not None else Path(work) / "ranges.json"
        amp = None
        if bounded or sensitivity:
            ranking = sensitivity_scan(source, calibration, held_out, method.value, percentile, progress=progress, target=chosen) if sensitivity else None
            if ranking is not None:
                console.print(f"sensitivity: all-INT8 drop {ranking.int8_drop:.2f} points; most sensitive: "
                              + ", ".join(f"{r.layer} ({r.recovered:+.2f})" for r in ranking.layers[:5]))
            if bounded:
                amp = mixed_precision(source, ptq, calibration, held_out, max_drop, method.value, percentile, ranking, progress, chosen,
                                      min_agreement)
        if amp is None:
            quantize_int8(source, ptq, calibration, method.value, percentile, cache=ranges_file, target=chosen)
        else:
            quantize_int8(source, ptq, calibration, method.value, percentile, cache=ranges_file, target=chosen,
                          exclude=amp.float_layers)
        result = quantization_aware_training(source, ptq, stored_ranges(ranges_file), output, calibration, data, config, progress)
    losses = " -> ".join(f"{v:.4f}" for v in result.loss)
    console.print(f"QAT: {result.epochs} epoch(s) on {result.images} images in {result.seconds:.0f} s (loss {losses}); {result.plan}")
    console.print(f"fake quantization vs the written artifact in ONNX Runtime: argmax agreement {100 * result.fake_quant_agreement:.3f}% "
                  f"on {min(8, result.images)} training images")
    q = result.quantized
    console.print(f"wrote {output}: {q.target} form, {q.int8_convs} INT8 convolutions, {q.method} ranges of the post-training "
                  f"calibration" + (f", {len(q.float_layers)} layer(s) in float ({', '.join(q.float_layers)})" if q.float_layers else ""))
    if held_out is not None:
        reference, fp32 = float_reference(source, held_out)
        score = score_onnx(output, held_out, reference=reference)
        drop = 100.0 * (fp32.pixel_accuracy - score.pixel_accuracy)
        ptq_note = f" (post-training: {amp.drop:.2f} points, {amp.agreement:.3f}%)" if amp is not None else ""
        console.print(f"held-out after QAT: pixel-accuracy drop {drop:.2f} points, agreement with FP32 {100 * score.agreement:.3f}%{ptq_note}")
        if max_drop is not None and drop > max_drop:
            console.print(f"NOT within --max-drop {max_drop}")
            raise typer.Exit(1)
        if min_agreement is not None and 100 * score.agreement < min_agreement:
            console.print(f"NOT within --min-agreement {min_agreement}")
            raise typer.Exit(1)
