"""Build TensorRT engines from ONNX, the current way: strongly typed networks.

TensorRT 11 removed the FP16/INT8 builder flags and the implicit calibrators; TensorRT 10
(JetPack 6) builds the same network when created with
``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (in 11 every network is strongly typed and
the flag is ignored). The precision therefore lives in the ONNX: FP32 tensors, FP16 tensors
(``build-engine --precision fp16``) or Q/DQ nodes (INT8 from :mod:`segedge.calibration`).

Sources, followed point by point: TensorRT Python API reference (``Builder``,
``INetworkDefinition``, ``OnnxParser``, ``IBuilderConfig``, ``IOptimizationProfile``,
``ITimingCache``), "Migrating from TensorRT 10.x to 11.x" (Python integration: strong
typing, removed APIs), and the developer guide chapters "Working with Dynamic Shapes",
"Version Compatibility", "Hardware Compatibility", "Timing Cache" and "Working with DLA".

An engine is published with a JSON sidecar (``<engine>.json``,
:class:`~segedge.engine.sidecar.EngineInfo`) as one pair, the sidecar last and holding the
engine's SHA-256 (:func:`~segedge.engine.sidecar.write_engine`), so a runner can refuse an
engine built elsewhere, or one a crash left with another build's sidecar, with a useful message.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segedge._io import atomic_path
from segedge.contract import HardwareCompatibility, Precision
from segedge.engine.options import BuildOptions, check_dla, check_timing_cache
from segedge.engine.profiles import Profile, onnx_input_spec, resolve_profile
from segedge.engine.sidecar import SIDECAR_SUFFIX, EngineInfo, load_engine_info, sidecar_path, write_engine  # noqa: F401  (public here too)
from segedge.engine.tensorrt_api import cuda_check, dla_unavailable_message, has_weak_typing, import_cudart, import_tensorrt, trt_logger
from segedge.errors import ExportError, InputError

if TYPE_CHECKING:  # annotations only: tensorrt is imported lazily (import_tensorrt)
    import tensorrt as trt

    from segedge.onnx.artifact import OnnxArtifact

log = logging.getLogger(__name__)


def current_gpu() -> tuple[str, str]:
    """``(name, "major.minor")`` of CUDA device 0.

    Raises:
        BackendUnavailableError: cuda-python is missing or there is no CUDA device.
    """
    cudart = import_cudart()
    props = cuda_check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


def _create_network(trt: Any, builder: trt.Builder) -> trt.INetworkDefinition:
    """A strongly typed network on either version path."""
    if has_weak_typing(trt):  # 10.x: strong typing is opt-in
        return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    return builder.create_network(0)  # 11.x: always strongly typed


def _parse(trt: Any, network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return
    errors = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        errors.append(f"node {error.node_name() or error.node()}: {error.desc()}")
    raise ExportError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors[:5]))


@dataclass(frozen=True)
class BuilderSettings:
    """What :func:`_configure` sets on an ``IBuilderConfig``: the translation of
    :class:`BuildOptions` and the precision, decided without TensorRT (tested on a CPU)."""

    workspace_bytes: int  # MemoryPoolType.WORKSPACE limit, bytes
    optimization_level: int | None  # builder_optimization_level; None: TensorRT's default (3)
    clear_tf32: bool  # clear BuilderFlag.TF32 (on by default): FP32 layers run in true FP32
    version_compatible: bool  # BuilderFlag.VERSION_COMPATIBLE
    ampere_plus: bool  # hardware_compatibility_level = HardwareCompatibilityLevel.AMPERE_PLUS
    dla_core: int | None  # default_device_type = DeviceType.DLA, DLA_core, BuilderFlag.GPU_FALLBACK


def builder_settings(options: BuildOptions, precision: Precision | str) -> BuilderSettings:
    """Translate builder options and the ONNX precision into ``IBuilderConfig`` settings.

    TensorRT turns ``BuilderFlag.TF32`` on by default (the 10.3 and 11.4 bindings: "Allow (but
    not require) computations on tensors of type DataType.FLOAT to use TF32 ... Enabled by
    default"), so on Ampere and newer an "FP32" engine runs its convolutions with 10-bit
    mantissas; an ``fp32`` build clears it. The flag changes no tensor type, so strongly typed
    networks keep it (11.x, where every network is strongly typed, still has it);
    :func:`_configure` reads it back and the sidecar records what TensorRT kept. FP16 and INT8
    builds keep TensorRT's default for the FP32 layers they still have (recorded as
    ``tf32: true`` in the sidecar).

    Args:
        options: validated :class:`BuildOptions`.
        precision: ``fp32``, ``fp16`` or ``int8`` (from the ONNX metadata).
    """
    return BuilderSettings(
        workspace_bytes=options.workspace_mib << 20,
        optimization_level=options.optimization_level,
        clear_tf32=Precision(precision) is Precision.FP32,
        version_compatible=options.version_compatible,
        ampere_plus=options.hardware_compatibility == HardwareCompatibility.AMPERE_PLUS,
        dla_core=options.dla_core,
    )


def _configure(trt: Any, builder: trt.Builder, config: trt.IBuilderConfig, settings: BuilderSettings) -> bool:
    """Apply ``settings`` to an ``IBuilderConfig``; return whether TF32 stays allowed."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if settings.optimization_level is not None:
        config.builder_optimization_level = settings.optimization_level
    if settings.clear_tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    tf32 = bool(config.get_flag(trt.BuilderFlag.TF32))
    if settings.clear_tf32 and tf32:
        log.warning("TensorRT kept BuilderFlag.TF32 set: FP32 layers may run in TF32 (recorded in the sidecar)")
    if settings.version_compatible:  # the lean runtime is embedded: the runtime must allow host code
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if settings.ampere_plus:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if settings.dla_core is not None:
        available = builder.num_DLA_cores
        if settings.dla_core >= available:
            raise InputError(dla_unavailable_message(settings.dla_core, available, trt.__version__))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    return tf32


def _load_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> None:
    """Attach a timing cache: the file's when it exists and matches this device, else empty."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, False):
        return
    log.warning("timing cache %s does not match this GPU or TensorRT version; starting an empty one", path)
    config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    serialized = config.get_timing_cache().serialize()
    with atomic_path(path) as tmp:
        tmp.write_bytes(memoryview(serialized))


def build_engine(
    onnx_path: str | os.PathLike[str] | OnnxArtifact,
    engine_path: str | os.PathLike[str],
    options: BuildOptions | None = None,
    profile: Profile | None = None,
) -> EngineInfo:
    """Compile a strongly typed TensorRT engine from an ONNX file.

    Args:
        onnx_path: FP32, FP16 or Q/DQ INT8 ONNX (the precision is taken from it), or that file
            already opened (:func:`~segedge.onnx.artifact.open_onnx`).
        engine_path: destination ``.engine`` (written atomically, with a ``.json`` sidecar).
        options: profile shapes, workspace, optimization level, timing cache, version and
            hardware compatibility, DLA core, profile count (:class:`BuildOptions`; defaults:
            batch 1..8 at the model's input size, 1024 MiB workspace, one profile).
        profile: the optimization profile already resolved from ``options`` and checked
            against the DLA rules (:func:`segedge.pipeline.build.plan_build` does both);
            ``None``: resolved and checked here.

    Returns:
        The :class:`EngineInfo` written to the sidecar.

    Raises:
        BackendUnavailableError: TensorRT, cuda-python or a GPU is missing.
        ModelFormatError: unreadable ONNX or not one ``(N, 3, H, W)`` input.
        InputError: a profile that does not fit the ONNX input; ``--dla-core`` with an FP32
            ONNX or a dynamic profile, or a DLA core this machine lacks.
        ExportError: the parser rejects the ONNX (node names listed), TensorRT rejects the
            profile, or the build fails.
    """
    import segedge
    from segedge.onnx.metadata import file_sha256
    from segedge.onnx.artifact import OnnxArtifact, open_onnx

    options = options or BuildOptions()
    engine_path = Path(engine_path)
    check_timing_cache(options, onnx_path.path if isinstance(onnx_path, OnnxArtifact) else onnx_path, engine_path)
    source = onnx_path if isinstance(onnx_path, OnnxArtifact) else open_onnx(onnx_path)
    onnx_path, contract = source.path, source.contract
    precision = contract.precision
    if profile is None:  # not planned by the caller: resolve and check it here, once
        profile = resolve_profile(onnx_input_spec(source), options.min_shape, options.opt_shape, options.max_shape)
        check_dla(options, precision, profile)
    trt = import_tensorrt()
    gpu, capability = current_gpu()

    logger = trt_logger()
    builder = trt.Builder(logger)
    network = _create_network(trt, builder)
    _parse(trt, network, logger, onnx_path)
    tensor = network.get_input(0)
    config = builder.create_builder_config()
    tf32 = _configure(trt, builder, config, builder_settings(options, precision))
    _load_timing_cache(config, options.timing_cache)
    for _ in range(options.profiles):  # one per execution context that may run at once (see BuildOptions.profiles)
        optimization_profile = builder.create_optimization_profile()
        optimization_profile.set_shape(tensor.name, profile.min, profile.opt, profile.max)
        if config.add_optimization_profile(optimization_profile) < 0:
            raise ExportError(f"TensorRT rejected the optimization profile {profile.describe()} for input {tensor.name} of {onnx_path}")

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    info = EngineInfo(
        engine=engine_path.name,
        tensorrt_version=trt.__version__,
        gpu=gpu,
        compute_capability=capability,
        precision=contract.precision.value,
        input_name=tensor.name,
        profile=profile.to_dict(),
        onnx_sha256=file_sha256(onnx_path),
        metadata=contract.to_metadata() if contract.declared else {},
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        segedge_version=segedge.__version__,
        onnx=str(onnx_path),
        builder=options.to_dict(),
        tf32=tf32,
    )
    info = write_engine(engine_path, serialized, info)  # engine, then the sidecar holding its hash
    if options.timing_cache is not None:
        _save_timing_cache(config, options.timing_cache)
    return info
