"""``segedge build-engine``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors
from segedge.contract import CalibrationMethod, HardwareCompatibility, Precision, Target

TARGET_HELP = (
    "INT8 form: tensorrt (Q/DQ on convolution inputs, symmetric INT8, FP16 between them: what a strongly typed "
    "engine builds) or onnxruntime (QLinearConv, uint8 activations: ONNX Runtime's CPU integer kernels; needs "
    "the MaxUnpool export). Default: the FP32 ONNX's target (`segedge export --target`)."
)


@handle_errors
def build_engine_command(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `segedge export`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="X.engine (TensorRT engine + X.engine.json sidecar, and the ONNX it was built from as X.<precision>.onnx; needs TensorRT and a GPU) or X.onnx (ONNX Runtime artifact). Never the input ONNX.")],
    precision: Annotated[Precision, typer.Option(help="fp32, fp16 (FP16 ONNX, float32 I/O) or int8 (Q/DQ ONNX from calibration).")] = Precision.FP32,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8 calibration images: an Oxford-IIIT Pet root (trainval split), an image folder or a video.")] = None,
    num_images: Annotated[int, typer.Option(min=1, help="Calibration images drawn (seeded).")] = 64,
    method: Annotated[CalibrationMethod, typer.Option(help="INT8 range calibration.")] = CalibrationMethod.PERCENTILE,
    percentile: Annotated[float, typer.Option(min=50.0, max=100.0, help="Percentile of |activation| kept in range (--method percentile).")] = 99.9,
    seed: Annotated[int, typer.Option(help="Seed of the calibration draw.")] = 0,
    calib_cache: Annotated[Optional[Path], typer.Option(help="Calibration cache (JSON): ranges reused when model, data, method and target match, recomputed when anything changed.")] = None,
    target: Annotated[Optional[Target], typer.Option(help=TARGET_HELP)] = None,
    min_shape: Annotated[Optional[str], typer.Option(help="Smallest input NxCxHxW of the engine's profile (default: batch 1 at the model's size).")] = None,
    opt_shape: Annotated[Optional[str], typer.Option(help="Input shape TensorRT tunes for (default: batch 1, the camera loop).")] = None,
    max_shape: Annotated[Optional[str], typer.Option(help="Largest input NxCxHxW (default: batch 8). H and W other than the model's need an ONNX exported with --dynamic-hw.")] = None,
    workspace: Annotated[int, typer.Option(min=1, help="Builder workspace limit, MiB.")] = 1024,
    builder_optimization_level: Annotated[Optional[int], typer.Option(min=0, max=5, help="0 (fastest build) to 5 (most tactics tried); TensorRT's default is 3.")] = None,
    timing_cache: Annotated[Optional[Path], typer.Option(help="Timing cache file: loaded if present, saved back after the build (faster rebuilds); refused when it names the ONNX, the engine, its sidecar or another output.")] = None,
    version_compatible: Annotated[bool, typer.Option("--version-compatible", help="Engine runs on later TensorRT releases of the same major version, and a TensorRT 10 engine on TensorRT 11 (NVIDIA's support matrix).")] = False,
    hardware_compatibility: Annotated[HardwareCompatibility, typer.Option(help="ampere+: engine runs on any Ampere or newer GPU (compute capability 8.0+).")] = HardwareCompatibility.NONE,
    dla_core: Annotated[Optional[int], typer.Option(min=0, help="Run on this DLA core (Jetson; TensorRT 10.x, or 11.4.1+ under JetPack 7.2.2+): fp16 or int8 only, and a static shape (--min/--opt/--max-shape equal); layers the DLA cannot run fall back to the GPU.")] = None,
    profiles: Annotated[int, typer.Option(min=1, help="Identical optimization profiles, one per execution context that runs at once: TensorRT lets each context of a dynamic-shape engine run only on a profile no other context is using, so `run --workers N` needs N (fewer: the workers take turns).")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output (an output that is an input is refused even so).")] = False,
) -> None:
    """Build an FP32, FP16 or INT8 (calibrated Q/DQ) artifact: an ONNX for ONNX Runtime, or a TensorRT engine.

    -o X.onnx writes the precision-specific ONNX (engine options are ignored). -o X.engine also
    builds a strongly typed TensorRT engine from it (TensorRT 10 or 11, on a GPU), with a JSON
    sidecar recording the TensorRT version, GPU, profile, builder options and whether TF32 was
    allowed (fp32 engines clear TensorRT's default TF32 flag: true FP32); without TensorRT it
    stops with exit code 2 and writes nothing.

    INT8 follows the FP32 ONNX's target. The tensorrt form is explicit quantization for
    TensorRT: symmetric signed INT8, per-channel weights, per-tensor activations, Q/DQ on
    convolution inputs, FP16 between the INT8 convolutions (opset 19). The onnxruntime form
    (from `segedge export --target onnxruntime`) is for CPUs: QLinearConv with uint8
    activations and int8 per-channel weights, which ONNX Runtime runs on its integer kernels.
    `segedge calibrate` offers more: several sources, sensitivity analysis, mixed precision.
    """
    from segedge._io import check_output, resolved
    from segedge.engine.options import BuildOptions
    from segedge.errors import DataError, InputError
    from segedge.pipeline.build import build_artifact, plan_build

    sidecar = output.with_name(output.name + ".json") if output.suffix in (".engine", ".plan") else None  # written with the engine
    written = [("-o", output), ("the sidecar", sidecar), ("--calib-cache", calib_cache), ("--timing-cache", timing_cache)]
    named = [(option, resolved(path)) for option, path in written if path is not None]
    for i, (option, path) in enumerate(named):  # two outputs of one name: the later write would replace the earlier
        for other, same in named[i + 1:]:
            if path == same:
                raise InputError(f"{option} and {other} are both {path}; give each its own file")
    check_output(output, [model, calib_data, calib_cache], force=force)
    if calib_cache is not None:
        check_output(calib_cache, [model, output, sidecar, calib_data, timing_cache], force=True, option="--calib-cache")
    if timing_cache is not None:  # saved back after the build: never over an input or another output
        check_output(timing_cache, [model, output, sidecar, calib_data], force=True, option="--timing-cache")
    options = BuildOptions.from_strings(
        min_shape, opt_shape, max_shape, workspace_mib=workspace, optimization_level=builder_optimization_level,
        timing_cache=timing_cache, version_compatible=version_compatible,
        hardware_compatibility=hardware_compatibility.value, dla_core=dla_core, profiles=profiles,
    )
    if output.suffix == ".onnx" and options.cli_args():
        console.print(f"note: engine options ignored, -o {output} builds no engine: {shlex.join(options.cli_args())}")
    if precision is Precision.INT8 and calib_data is None:
        raise DataError("--precision int8 needs --calib-data DIR (an Oxford-IIIT Pet root, an image folder or a video)")
    # the ONNX opened once, and every refusal (target, profile, DLA, TensorRT missing) made before a minute of calibration
    plan = plan_build(model, output, precision, target, options)
    calibration = None
    if precision is Precision.INT8:
        from segedge.calibration.dataset import load_calibration_set

        calibration = load_calibration_set(calib_data, plan.source.contract.preprocess, num_images=num_images, seed=seed)
        console.print(f"calibration: {calibration.summary()}")
    result = build_artifact(plan, calibration=calibration, method=method.value, percentile=percentile, calib_cache=calib_cache)
    console.print(result.note)
