"""``segedge build-engine``: the deployable artifact for one precision.

1. A precision-specific ONNX: the FP32 model itself, its FP16 form, or a Q/DQ INT8 model
   calibrated on real images. ONNX Runtime runs all three on a CPU.
2. Where TensorRT is installed, a strongly typed engine built from that ONNX.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from segedge._io import atomic_path
from segedge.calibration.dataset import CalibrationSet
from segedge.errors import DataError, InputError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class BuildResult:
    onnx: Path  # the precision-specific ONNX (always written)
    engine: Path | None  # the TensorRT engine, when TensorRT is available
    precision: str
    note: str  # one line for the user (what was built, or why no engine)


def build_artifact(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    precision: str = "fp32",
    calibration: CalibrationSet | None = None,
    method: str = "percentile",
    percentile: float = 99.9,
    calib_cache: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Build the deployable artifact of ``precision`` from an FP32 ONNX.

    Args:
        onnx_path: FP32 ONNX from ``segedge export``.
        output: ``X.engine`` (ONNX written as ``X.onnx`` beside it, engine built when
            TensorRT is present) or ``X.onnx`` (ONNX only).
        precision: ``fp32``, ``fp16`` or ``int8``.
        calibration: required for ``int8``.
        method: INT8 calibration method (see :mod:`segedge.calibration.quantize`).
        percentile: for ``method="percentile"``.
        calib_cache: calibration cache file (see :mod:`segedge.calibration.cache`).

    Raises:
        InputError: unknown precision or output suffix.
        DataError: ``int8`` without calibration data.
        ModelFormatError, ExportError: from conversion, quantization or the TensorRT build.
    """
    from segedge.engine.tensorrt_api import tensorrt_available
    from segedge.export.metadata import load_onnx, read_metadata

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    output = Path(output)
    if output.suffix not in (".engine", ".plan", ".onnx"):
        raise InputError(f"output {output} must end in .engine, .plan or .onnx")
    target = read_metadata(load_onnx(onnx_path)).get("target")  # fails early, in one line, on a corrupt input
    onnx_out = output.with_suffix(".onnx")
    cache_note = ""
    if precision == "int8":
        if calibration is None:
            raise DataError("INT8 needs a calibration set: pass --calib-data DIR (a Pet root or an image folder)")
        from segedge.calibration.quantize import quantize_int8

        quantized = quantize_int8(onnx_path, onnx_out, calibration, method=method, percentile=percentile, cache=calib_cache)
        cache_note = f" (calibration cache {calib_cache}: {quantized.cache})" if calib_cache else ""
    elif precision == "fp16":
        from segedge.export.fp16 import convert_fp16

        convert_fp16(onnx_path, onnx_out)
    elif Path(onnx_path).resolve() != onnx_out.resolve():
        with atomic_path(onnx_out) as tmp:
            shutil.copyfile(onnx_path, tmp)
    if output.suffix == ".onnx":
        return BuildResult(onnx_out, None, precision, f"wrote the {precision} ONNX {onnx_out}{cache_note}")
    if target == "onnxruntime":
        return BuildResult(
            onnx_out, None, precision,
            f"wrote the {precision} ONNX {onnx_out}{cache_note}; it uses MaxUnpool (exported with --target onnxruntime), which "
            "TensorRT cannot parse, so no engine was built (export with --target tensorrt for an engine)",
        )
    if not tensorrt_available():
        return BuildResult(
            onnx_out, None, precision,
            f"TensorRT is not installed, so no engine was built; the {precision} ONNX {onnx_out}{cache_note} runs in "
            "ONNX Runtime (for an engine: pip install 'segedge[tensorrt]' on a GPU machine and rerun)",
        )
    from segedge.engine.build import build_engine

    build_engine(onnx_out, output)
    return BuildResult(onnx_out, output, precision, f"built the {precision} engine {output} from {onnx_out}")
