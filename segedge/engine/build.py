"""Build TensorRT engines from ONNX, the current way: strongly typed networks.

TensorRT 11 removed the FP16/INT8 builder flags and the implicit calibrators; TensorRT 10
(JetPack 6) accepts the same network with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``.
The precision therefore lives in the ONNX: FP32 tensors, FP16 tensors (``segedge export
--precision fp16`` / ``build-engine --precision fp16``) or Q/DQ nodes (INT8 from
:mod:`segedge.calibration`). Sources: TensorRT Python API reference (``Builder``,
``INetworkDefinition``, ``OnnxParser``, ``IBuilderConfig``, ``IOptimizationProfile``) and
the "Working with Quantized Types / Strongly Typed Networks" chapters of the TensorRT
developer guide.

An engine is written atomically with a JSON sidecar (``<engine>.json``) holding the
TensorRT version, GPU, precision, profile, ONNX sha256 and the deployment contract from the
ONNX metadata, so a runner can refuse an engine built elsewhere with a useful message.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from segedge._io import atomic_path, atomic_write_text
from segedge.engine.tensorrt_api import cuda_check, import_cudart, import_tensorrt
from segedge.errors import ExportError, InputError

SIDECAR_SUFFIX = ".json"


@dataclass
class EngineInfo:
    """The sidecar written next to every engine."""

    engine: str  # engine file name
    tensorrt_version: str
    gpu: str  # device name
    compute_capability: str  # "major.minor"
    precision: str  # fp32 | fp16 | int8 (from the ONNX)
    input_name: str
    profile: dict[str, list[int]]  # min / opt / max input shapes
    onnx_sha256: str
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX segedge.* metadata, unprefixed (preprocess, classes, ...)
    built_at: str = ""
    segedge_version: str = ""

    def save(self, engine_path: Path) -> Path:
        return atomic_write_text(sidecar_path(engine_path), json.dumps(asdict(self), indent=2))


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def load_engine_info(engine_path: str | os.PathLike[str]) -> EngineInfo:
    """Read an engine's sidecar.

    Raises:
        InputError: missing or malformed sidecar.
    """
    path = sidecar_path(engine_path)
    try:
        return EngineInfo(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError(f"{engine_path} has no sidecar {path.name}; rebuild it with `segedge build-engine`") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{path} is not a segedge engine sidecar: {exc}") from None


def current_gpu() -> tuple[str, str]:
    """``(name, "major.minor")`` of CUDA device 0.

    Raises:
        BackendUnavailableError: no CUDA device.
    """
    cudart = import_cudart()
    props = cuda_check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


def build_engine(
    onnx_path: str | os.PathLike[str],
    engine_path: str | os.PathLike[str],
    max_batch: int = 8,
    opt_batch: int = 1,
    workspace_mib: int = 1024,
) -> EngineInfo:
    """Compile a strongly typed TensorRT engine from an ONNX file.

    Args:
        onnx_path: FP32, FP16 or Q/DQ INT8 ONNX (the precision is taken from it).
        engine_path: destination ``.engine`` (written atomically, with a ``.json`` sidecar).
        max_batch: largest batch of the optimization profile (min 1).
        opt_batch: batch TensorRT tunes kernels for (the camera loop runs batch 1).
        workspace_mib: builder workspace limit in MiB.

    Returns:
        The :class:`EngineInfo` written to the sidecar.

    Raises:
        BackendUnavailableError: TensorRT, cuda-python or a GPU is missing.
        ExportError: the parser rejects the ONNX (node names listed) or the build fails.
    """
    import segedge
    from segedge.export.metadata import file_sha256, load_onnx, read_metadata

    trt = import_tensorrt()
    gpu, capability = current_gpu()
    if not 1 <= opt_batch <= max_batch:
        raise InputError(f"need 1 <= opt batch ({opt_batch}) <= max batch ({max_batch})")
    model = load_onnx(onnx_path)
    metadata = read_metadata(model)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            errors.append(f"node {error.node_name() or error.node()}: {error.desc()}")
        raise ExportError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors[:5]))
    tensor = network.get_input(0)
    _, channels, height, width = tuple(tensor.shape)
    shapes = {
        "min": [1, channels, height, width],
        "opt": [opt_batch, channels, height, width],
        "max": [max_batch, channels, height, width],
    }
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(memoryview(serialized))
    info = EngineInfo(
        engine=Path(engine_path).name,
        tensorrt_version=trt.__version__,
        gpu=gpu,
        compute_capability=capability,
        precision=metadata.get("precision", "fp32"),
        input_name=tensor.name,
        profile=shapes,
        onnx_sha256=file_sha256(onnx_path),
        metadata=metadata,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        segedge_version=segedge.__version__,
    )
    info.save(Path(engine_path))
    return info
