"""Build (``segedge build-engine``): the deployable artifact for one precision.

1. A precision-specific ONNX: the FP32 model itself, its FP16 form, or a Q/DQ INT8 model
   calibrated on real images. ONNX Runtime runs all three on a CPU.
2. For ``-o X.engine``, a strongly typed TensorRT engine built from that ONNX (TensorRT and
   a GPU required: without them nothing is written and the error names the extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segedge._io import atomic_path
from segedge.calibration.dataset import CalibrationSet
from segedge.contract import CalibrationMethod, Precision, Target
from segedge.engine.options import BuildOptions, check_dla, check_timing_cache
from segedge.engine.profiles import Profile
from segedge.errors import DataError, InputError
from segedge.onnx.artifact import OnnxArtifact, open_onnx

PRECISIONS = tuple(Precision)


@dataclass
class BuildResult:
    onnx: Path  # the precision-specific ONNX (always written)
    engine: Path | None  # the TensorRT engine, when TensorRT is available
    precision: Precision
    note: str  # one line for the user (what was built, or why no engine)


def intermediate_onnx(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], precision: Precision | str) -> Path:
    """The precision-specific ONNX that ``build_artifact(onnx_path, output, precision)`` writes.

    ``-o X.onnx`` writes ``X.onnx``; ``-o X.engine`` writes ``X.<precision>.onnx`` beside the
    engine (``model.engine`` -> ``model.fp16.onnx``), never ``X.onnx``, which for
    ``build-engine model.onnx -o model.engine`` is the input itself. An FP32 target that is
    the input is the input (nothing is written over it).

    Raises:
        InputError: the output is the input file, or an FP16 / INT8 ONNX would be written
            over it.
    """
    source, output, precision = Path(onnx_path), Path(output), Precision(precision)
    target = output if output.suffix == ".onnx" else output.with_name(f"{output.stem}.{precision}.onnx")
    overwrites = output.suffix != ".onnx" and output.resolve() == source.resolve()
    overwrites |= precision is not Precision.FP32 and target.resolve() == source.resolve()
    if overwrites:
        raise InputError(
            f"-o {output} would overwrite the input {onnx_path} with the {precision} artifact; choose another -o "
            f"(e.g. -o {source.with_name(f'{source.stem}-{precision}{output.suffix}')})"
        )
    return target


@dataclass(frozen=True)
class BuildPlan:
    """A build checked before any work (:func:`plan_build`): everything that can be refused is."""

    source: OnnxArtifact  # the FP32 ONNX, opened once
    output: Path  # X.engine / X.plan / X.onnx
    precision: Precision
    onnx_out: Path  # the precision-specific ONNX it writes (see intermediate_onnx)
    target: str | None  # INT8 form (tensorrt | onnxruntime); None for fp32 / fp16
    engine_options: BuildOptions  # builder options (engine outputs)
    profile: Profile | None  # the resolved optimization profile, DLA-checked (engine outputs)

    @property
    def engine(self) -> bool:
        """Whether a TensorRT engine is built (``.engine`` / ``.plan`` output)."""
        return self.output.suffix != ".onnx"


def plan_build(
    onnx: str | os.PathLike[str] | OnnxArtifact,
    output: str | os.PathLike[str],
    precision: Precision | str = Precision.FP32,
    target: Target | str | None = None,
    engine_options: BuildOptions | None = None,
) -> BuildPlan:
    """Check a build before any work (``build-engine`` calls it before a minute of
    calibration): the ONNX opened once, every refusal made once.

    Args:
        onnx: the FP32 ONNX, or that file already opened (:func:`~segedge.onnx.artifact.open_onnx`).
        output: ``X.engine``, ``X.plan`` or ``X.onnx``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        target: INT8 form (default: the FP32 model's own).
        engine_options: builder options for an engine.

    Returns:
        The :class:`BuildPlan`.

    Raises:
        InputError, TensorRTRequestError, ModelFormatError: see :func:`build_artifact`.
    """
    from segedge.engine.profiles import onnx_input_spec, resolve_profile
    from segedge.engine.tensorrt_api import require_engine_support

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    precision = Precision(precision)
    output = Path(output)
    if output.suffix not in (".engine", ".plan", ".onnx"):
        raise InputError(f"output {output} must end in .engine, .plan or .onnx")
    source = onnx if isinstance(onnx, OnnxArtifact) else open_onnx(onnx)  # fails early, in one line, on a corrupt input
    onnx_out = intermediate_onnx(source.path, output, precision)
    options = engine_options or BuildOptions()
    if precision is Precision.INT8:
        from segedge.calibration.quantize import int8_target

        target = int8_target(source.contract, target, source.path)  # refuses a bad --target before calibration
    else:
        target = None
    profile = None
    if output.suffix != ".onnx":  # an engine was asked for: fail before writing anything
        profile = resolve_profile(onnx_input_spec(source), options.min_shape, options.opt_shape, options.max_shape)
        check_dla(options, precision, profile)
        check_timing_cache(options, source.path, output)
        require_engine_support(f"-o {output} (a TensorRT engine; -o {output.with_suffix('.onnx')} makes the ONNX Runtime artifact)")
        if target == Target.ONNXRUNTIME:
            raise InputError(
                f"--target onnxruntime makes the CPU INT8 form (QLinearConv), which TensorRT does not build; "
                f"use --target tensorrt for an engine, or ask for -o {output.with_suffix('.onnx')}"
            )
        if source.contract.target is Target.ONNXRUNTIME:
            raise InputError(
                f"{source.path} uses MaxUnpool (exported with --target onnxruntime), which TensorRT cannot parse; "
                f"export with --target tensorrt for an engine, or ask for -o {output.with_suffix('.onnx')}"
            )
    return BuildPlan(source, output, precision, onnx_out, target, options, profile)


def build_artifact(
    onnx_path: str | os.PathLike[str] | OnnxArtifact | BuildPlan,
    output: str | os.PathLike[str] | None = None,
    precision: Precision | str = Precision.FP32,
    calibration: CalibrationSet | None = None,
    method: CalibrationMethod | str = CalibrationMethod.PERCENTILE,
    percentile: float = 99.9,
    calib_cache: str | os.PathLike[str] | None = None,
    engine_options: BuildOptions | None = None,
    target: Target | str | None = None,
) -> BuildResult:
    """Build the deployable artifact of ``precision`` from an FP32 ONNX.

    Args:
        onnx_path: FP32 ONNX from ``segedge export`` (a path, or the file already opened),
            or a :class:`BuildPlan` from :func:`plan_build` (then ``output``, ``precision``,
            ``engine_options`` and ``target`` come from it).
        output: ``X.engine`` (the engine, and the ONNX it was built from as
            ``X.<precision>.onnx`` beside it; needs TensorRT and a GPU) or ``X.onnx`` (the
            ONNX Runtime artifact). Never the input (see :func:`intermediate_onnx`).
        precision: ``fp32``, ``fp16`` or ``int8``.
        calibration: required for ``int8``.
        method: INT8 calibration method (see :mod:`segedge.calibration.quantize`).
        percentile: for ``method="percentile"``.
        calib_cache: calibration cache file (see :mod:`segedge.calibration.cache`).
        engine_options: TensorRT builder options (profile, workspace, timing cache, profiles,
            ...; see :class:`~segedge.engine.options.BuildOptions`), for ``.engine`` outputs.
        target: INT8 form, ``tensorrt`` or ``onnxruntime`` (default: the FP32 model's
            ``segedge.target``; see :func:`~segedge.calibration.quantize.quantize_int8`).

    Raises:
        InputError: unknown precision or output suffix; an output that would overwrite the
            input; for an engine, an ONNX exported for ONNX Runtime (MaxUnpool),
            ``target="onnxruntime"`` for INT8, a profile that does not fit its input,
            ``--dla-core`` with fp32 or a dynamic profile, or a ``--timing-cache`` that is an
            input or output (all checked before anything is written); an INT8 target the
            model cannot take.
        TensorRTRequestError: an ``.engine`` / ``.plan`` output where TensorRT, cuda-python
            or a GPU is missing (exit code 2, checked before anything is written; ask for
            ``X.onnx`` for the ONNX Runtime artifact).
        DataError: ``int8`` without calibration data.
        ModelFormatError, ExportError: from conversion, quantization or the TensorRT build.
    """
    plan = onnx_path if isinstance(onnx_path, BuildPlan) else plan_build(onnx_path, output, precision, target, engine_options)
    source, onnx_out, precision = plan.source, plan.onnx_out, plan.precision
    cache_note = ""
    if precision is Precision.INT8:
        if calibration is None:
            raise DataError("INT8 needs a calibration set: pass --calib-data DIR (a Pet root or an image folder)")
        from segedge.calibration.quantize import quantize_int8

        quantized = quantize_int8(
            source, onnx_out, calibration, method=method, percentile=percentile, cache=calib_cache, target=plan.target,
        )
        cache_note = f" ({quantized.target} form"
        cache_note += f"; calibration cache {calib_cache}: {quantized.cache})" if calib_cache else ")"
    elif precision is Precision.FP16:
        from segedge.onnx.fp16 import convert_fp16

        convert_fp16(source, onnx_out)
    elif onnx_out.resolve() != source.path.resolve():
        with atomic_path(onnx_out) as tmp:
            tmp.write_bytes(source.serialized())  # weights inside, whether or not the source kept them apart
    if not plan.engine:
        return BuildResult(onnx_out, None, precision, f"wrote the {precision} ONNX {onnx_out}{cache_note}")
    from segedge.engine.build import build_engine

    # the profile was resolved and DLA-checked by plan_build; the engine is built from (and its sidecar
    # names) the precision-specific ONNX, which is the source itself only when that is already X.fp32.onnx
    built_from = source if onnx_out.resolve() == source.path.resolve() else onnx_out
    info = build_engine(built_from, plan.output, plan.engine_options, profile=plan.profile)
    return BuildResult(
        onnx_out, plan.output, precision,
        f"built the {info.precision} engine {plan.output} from {onnx_out}{cache_note} for TensorRT {info.tensorrt_version} "
        f"on {info.gpu} (sm {info.compute_capability}), input {info.input_name}: "
        + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info.profile.items()),
    )
