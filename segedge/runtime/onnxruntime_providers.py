"""ONNX Runtime's execution providers as segedge uses them: the options each gets (IEEE FP32
on CUDA, INT8 / FP16 on TensorRT read from the graph, a TensorRT engine cache keyed by the
model's bytes) and the check that the asked provider is the one that runs.

Option names: ONNX Runtime docs, "TensorRT Execution Provider" and "CUDA Execution Provider".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from segedge.contract import Backend, Precision, Provider
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.onnx.metadata import file_sha256

PROVIDERS = {
    Provider.CPU: "CPUExecutionProvider",
    Provider.CUDA: "CUDAExecutionProvider",
    Provider.TENSORRT: "TensorrtExecutionProvider",
}
# distributions that install the `onnxruntime` package (the CPU build is named like the backend)
ONNXRUNTIME_BUILDS = (Backend.ONNXRUNTIME.value, "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def installed_onnxruntime_builds() -> list[str]:
    """The ONNX Runtime distributions installed here (each installs the same ``onnxruntime``
    package; with two, whichever pip installed last owns the files)."""
    import importlib.metadata

    found = []
    for name in ONNXRUNTIME_BUILDS:
        try:
            importlib.metadata.distribution(name)
            found.append(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def gpu_install_hint(installed: list[str]) -> str:
    """The fix for a missing CUDA / TensorRT provider, given :func:`installed_onnxruntime_builds`."""
    if len(installed) > 1:
        return (
            f"{' and '.join(installed)} are both installed and overwrite each other's onnxruntime package "
            f"(onnxruntime issue 26996): pip uninstall -y {' '.join(installed)} && pip install 'segedge[gpu]'"
        )
    if "onnxruntime-gpu" in installed:
        return "onnxruntime-gpu is installed but has no such provider here: check its CUDA major against the driver with `segedge doctor`"
    return "install ONNX Runtime's GPU build instead of the CPU one on a CUDA machine: pip uninstall -y onnxruntime && pip install 'segedge[gpu]'"


@dataclass(frozen=True)
class GraphPrecision:
    """What an ONNX graph computes in, read from the graph itself (not its metadata).

    Attributes:
        int8: the graph has QuantizeLinear / DequantizeLinear nodes (explicit Q/DQ INT8).
        fp16: some initializer, input, output or intermediate tensor is FLOAT16, or a Cast
            produces FLOAT16 (an FP16 model, or an INT8 model on an FP16 base).
    """

    int8: bool
    fp16: bool

    @property
    def label(self) -> Precision:
        """INT8, FP16 or FP32: the lowest precision the graph uses."""
        return Precision.INT8 if self.int8 else Precision.FP16 if self.fp16 else Precision.FP32


def graph_precision(model: onnx.ModelProto) -> GraphPrecision:
    """Read the precision of ``model`` from its nodes and tensor types.

    Args:
        model: an ONNX model; external data is not needed (only types are read).

    Returns:
        :class:`GraphPrecision`.
    """
    fp16 = onnx.TensorProto.FLOAT16
    graph = model.graph
    int8 = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    tensors = [i.data_type for i in graph.initializer]
    tensors += [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)]
    casts = [a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"]
    return GraphPrecision(int8=int8, fp16=fp16 in tensors or fp16 in casts)


def tensorrt_cache_dir(model: Path, cache_dir: Path | None = None) -> Path:
    """Where the TensorRT execution provider keeps the engines and timing cache of ``model``.

    ONNX Runtime names cached engines by the model's file name, graph and versions, not by
    its weights, so a model re-exported or recalibrated at the same path would silently
    reuse the old engine. The folder is therefore keyed by the file's SHA-256:
    ``<cache_dir or <model dir>/<model stem>.trt-cache>/<first 16 hex digits>``.

    Args:
        model: the ``.onnx`` file (read once to hash it).
        cache_dir: parent folder of the keyed caches (default beside the model).

    Raises:
        ModelFormatError: the model file does not exist.
    """
    if not model.is_file():
        raise ModelFormatError(f"ONNX file {model} does not exist")
    return (cache_dir or model.parent / f"{model.stem}.trt-cache") / file_sha256(model)[:16]


def fp32_math(provider: Provider | str, precision: Precision | str) -> str:
    """How a model's FP32 convolutions run on ``provider``: ``"tf32"`` or ``"ieee"``.

    TensorRT's TF32 builder flag is on by default (10 mantissa bits on Ampere and newer) and
    ONNX Runtime's TensorRT provider has no option to clear it; ``NVIDIA_TF32_OVERRIDE=0``
    (NVIDIA's process-wide switch for its libraries) does. The CPU is IEEE, and the CUDA
    provider is given ``use_tf32: 0`` (see :func:`provider_chain`).

    Args:
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        precision: the model's precision (``fp32``, ``fp16``, ``int8``); only FP32 is affected.
    """
    if provider == Provider.TENSORRT and precision == Precision.FP32 and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0":
        return "tf32"
    return "ieee"


def provider_chain(
    provider: str, model: Path, cache_dir: Path | None = None, device_id: int = 0,
    precision: GraphPrecision = GraphPrecision(int8=False, fp16=False),
) -> list[tuple[str, dict]]:
    """Execution providers with their options, most preferred first.

    - ``cuda``: ``use_tf32: 0``, so FP32 convolutions and MatMuls are IEEE FP32 on Ampere
      and newer (the CUDA provider's default is TF32, which moves logits).
    - ``tensorrt``: engines and timing cache in :func:`tensorrt_cache_dir` (keyed by the
      model's SHA-256); ``trt_int8_enable`` for a Q/DQ graph (without it TensorRT's
      execution provider does not take the INT8 kernels) and ``trt_fp16_enable`` for a graph
      with FP16 tensors, both read from the graph (``precision``). The TensorRT provider has
      no TF32 option: its FP32 is TF32 unless ``NVIDIA_TF32_OVERRIDE=0`` is set (see
      :attr:`OnnxRuntimeRunner.precision`). Nodes TensorRT does not take fall back to CUDA,
      then the CPU.

    Option names: ONNX Runtime docs, "TensorRT Execution Provider" and "CUDA Execution
    Provider".

    Args:
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        model: the ``.onnx`` file (hashed for the TensorRT cache folder).
        cache_dir: parent of the TensorRT cache folders (see :func:`tensorrt_cache_dir`).
        device_id: CUDA device.
        precision: what the graph computes in (see :func:`graph_precision`).

    Raises:
        InputError: unknown provider.
        ModelFormatError: ``tensorrt`` and the model file does not exist.
    """
    if provider not in PROVIDERS:
        raise InputError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if provider == Provider.CPU:
        return [("CPUExecutionProvider", {})]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": 0})
    if provider == Provider.CUDA:
        return [cuda, ("CPUExecutionProvider", {})]
    cache = str(tensorrt_cache_dir(model, cache_dir))
    tensorrt = ("TensorrtExecutionProvider", {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
        "trt_int8_enable": precision.int8,
        "trt_fp16_enable": precision.fp16,
    })
    return [tensorrt, cuda, ("CPUExecutionProvider", {})]


def check_active_provider(provider: str, active: list[str], model: Path) -> None:
    """Refuse a session whose first active provider is not the one asked for.

    ONNX Runtime falls back to the next provider in the list (in the end the CPU) when a
    provider fails to initialise (a missing libnvinfer or cuDNN, a CUDA error), with only a
    log line: the row would be labelled ``tensorrt`` while the CPU ran it.

    Args:
        provider: what was asked for: ``cpu``, ``cuda`` or ``tensorrt``.
        active: ``session.get_providers()``, most preferred first.
        model: for the message.

    Raises:
        BackendUnavailableError: ``active`` does not start with the asked provider.
    """
    wanted = PROVIDERS[provider]
    if not active or active[0] != wanted:
        raise BackendUnavailableError(
            f"ONNX Runtime did not start {wanted} for {model} (active: {', '.join(active) or 'none'}): it failed to "
            "initialise and ONNX Runtime fell back; check CUDA, cuDNN and TensorRT with `segedge doctor` "
            "(SEGEDGE_DEBUG=1 shows ONNX Runtime's log)"
        )
