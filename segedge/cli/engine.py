"""``segedge build-engine``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class Method(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


@handle_errors
def build_engine_command(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `segedge export`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="X.engine (ONNX of the precision written as X.onnx beside it) or X.onnx (ONNX only).")],
    precision: Annotated[Precision, typer.Option(help="fp32, fp16 (FP16 ONNX, float32 I/O) or int8 (Q/DQ ONNX from calibration).")] = Precision.fp32,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8 calibration images: an Oxford-IIIT Pet root (trainval split), an image folder or a video.")] = None,
    num_images: Annotated[int, typer.Option(min=1, help="Calibration images drawn (seeded).")] = 64,
    method: Annotated[Method, typer.Option(help="INT8 range calibration.")] = Method.percentile,
    percentile: Annotated[float, typer.Option(min=50.0, max=100.0, help="Percentile of |activation| kept in range (--method percentile).")] = 99.9,
    seed: Annotated[int, typer.Option(help="Seed of the calibration draw.")] = 0,
    calib_cache: Annotated[Optional[Path], typer.Option(help="Calibration cache (JSON): ranges reused when model, data and method match, recomputed when anything changed.")] = None,
) -> None:
    """Build an FP32, FP16 or INT8 (calibrated Q/DQ) artifact, and a TensorRT engine where TensorRT is installed.

    The precision-specific ONNX is always written; where TensorRT is installed a strongly
    typed engine is built from it.

    INT8 is explicit quantization: symmetric signed INT8, per-channel weights, per-tensor
    activations, Q/DQ on convolution inputs (what TensorRT's strongly typed builder and
    ONNX Runtime both run). Without TensorRT the ONNX is left for ONNX Runtime, with one line saying so.
    `segedge calibrate` offers more: several sources, sensitivity analysis, mixed precision.
    """
    from segedge.engine.artifacts import build_artifact
    from segedge.errors import DataError

    calibration = None
    if precision is Precision.int8:
        if calib_data is None:
            raise DataError("--precision int8 needs --calib-data DIR (an Oxford-IIIT Pet root, an image folder or a video)")
        from segedge.calibration.dataset import load_calibration_set
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        config = OnnxRuntimeRunner(model).preprocess_config
        calibration = load_calibration_set(calib_data, config, num_images=num_images, seed=seed)
        console.print(f"calibration: {calibration.summary()}")
    result = build_artifact(model, output, precision.value, calibration, method.value, percentile, calib_cache)
    console.print(result.note)
