"""Pick the runner for an artifact: by ``--backend``, or (``auto``) by its suffix and what is
installed: ``.pt`` -> PyTorch, ``.onnx`` -> ONNX Runtime, except a Q/DQ INT8 graph without
MaxUnpool on a CPU with openvino installed -> OpenVINO, ``.xml`` (OpenVINO IR) -> OpenVINO,
``.engine`` / ``.plan`` -> TensorRT; a ``triton://HOST:PORT/MODEL`` address -> a Triton server."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from segedge.contract import Backend, Provider
from segedge.models.registry import EMBEDDED_MODELS
from segedge.errors import InputError

if TYPE_CHECKING:  # keep this module free of NumPy and OpenCV for the CLI
    from segedge.runtime.base import Runner

SUFFIXES = {
    ".pt": Backend.TORCH, ".pth": Backend.TORCH, ".onnx": Backend.ONNXRUNTIME, ".xml": Backend.OPENVINO,
    ".engine": Backend.TENSORRT, ".plan": Backend.TENSORRT,
}
ACCEPTS = {  # backend -> artifact suffixes it loads
    Backend.TORCH: (".pt", ".pth"),
    Backend.ONNXRUNTIME: (".onnx",),
    Backend.OPENVINO: (".onnx", ".xml"),
    Backend.TENSORRT: (".engine", ".plan"),
}


def openvino_installed() -> bool:
    """Whether the optional ``openvino`` package can be imported."""
    return importlib.util.find_spec(Backend.OPENVINO.value) is not None


def _op_types(path: Path) -> set[str]:
    """Operator types of an ONNX graph (empty when unreadable: the runner reports that)."""
    import onnx

    try:
        return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    except Exception:  # missing, truncated, not ONNX
        return set()


def resolve_backend(artifact: str | os.PathLike[str] | None, backend: Backend | str = Backend.AUTO, provider: Provider | str = Provider.CPU) -> Backend:
    """The backend that runs ``artifact``.

    ``auto`` gives OpenVINO a ``.onnx`` on the CPU provider when openvino is installed and the
    graph is Q/DQ INT8 (QuantizeLinear nodes) without MaxUnpool (the ``tensorrt`` form):
    OpenVINO runs those convolutions in INT8, where ONNX Runtime dequantizes and runs them in
    float (segnet 4.2x, segnet-dsc 1.3x ONNX Runtime FP32 against 0.7x / 0.6x for ONNX Runtime
    on the same file, ``benchmarks/cpu.py``). Every other ONNX stays with ONNX Runtime: at
    FP32 (OpenVINO's exact ``f32`` inference precision) OpenVINO was no faster than ONNX
    Runtime here (0.8-0.9x, one thread), and its BF16 default loses agreement with PyTorch
    (docs/benchmarks.md); a MaxUnpool graph (the ``onnxruntime`` form) is one OpenVINO cannot run.

    Raises:
        InputError: unknown suffix, or a backend that cannot load this kind of file.
    """
    from segedge.runtime.triton_runner import is_triton_url

    backend = Backend(backend)
    if artifact is not None and is_triton_url(artifact):
        if backend not in (Backend.AUTO, Backend.TRITON):
            raise InputError(f"--backend {backend.value} cannot run a served model ({artifact}); use --backend auto or triton")
        return Backend.TRITON
    if backend is Backend.TRITON:
        raise InputError(f"--backend triton takes a triton://HOST:PORT/MODEL address, not {artifact}")
    if artifact is None or (str(artifact) in EMBEDDED_MODELS and not Path(artifact).exists()):
        if backend not in (Backend.AUTO, Backend.TORCH):
            raise InputError(f"--backend {backend.value} needs an artifact; the embedded model runs in PyTorch")
        return Backend.TORCH
    path = Path(artifact)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot tell the backend of {path}: expected one of {', '.join(sorted(SUFFIXES))}")
    if backend is Backend.AUTO:
        if suffix == ".onnx" and Provider(provider) is Provider.CPU and openvino_installed():
            ops = _op_types(path)
            if "QuantizeLinear" in ops and "MaxUnpool" not in ops:
                return Backend.OPENVINO
        return SUFFIXES[suffix]
    if suffix not in ACCEPTS[backend]:
        raise InputError(f"--backend {backend.value} loads {', '.join(ACCEPTS[backend])} files, not {path.name}")
    return backend


def load_runner(
    artifact: str | os.PathLike[str] | None = None, provider: Provider | str = Provider.CPU, threads: int = 0, spin: bool = True,
    backend: Backend | str = Backend.AUTO, streams: int = 1,
) -> Runner:
    """Load any segedge artifact.

    Args:
        artifact: ``.pt`` checkpoint, ``.onnx`` model, ``.xml`` OpenVINO IR or ``.engine``;
            ``None`` loads the embedded default ``segnet-lite0`` checkpoint in PyTorch, an embedded
            model's name (``segnet-dsc``) that one; ``triton://HOST:PORT/MODEL``
            (HTTP) or ``triton+grpc://HOST:PORT/MODEL`` a model on a Triton server.
        provider: ONNX Runtime execution provider for ``.onnx`` (``cpu``, ``cuda``,
            ``tensorrt``).
        threads: intra-op threads on the CPU (0: the backend's default). For PyTorch this
            is process-wide (see :class:`~segedge.runtime.torch_runner.TorchRunner`).
        spin: ONNX Runtime thread spinning (see
            :class:`~segedge.runtime.onnxruntime_runner.OnnxRuntimeRunner`).
        backend: which backend runs it (``auto``: see :func:`resolve_backend`).
        streams: OpenVINO streams, one per thread that will call ``infer`` at once.

    Raises:
        InputError: unknown suffix (the valid ones are listed), or a backend that cannot load it.
        CheckpointError, ModelFormatError, BackendUnavailableError: from the backend.
    """
    chosen = resolve_backend(artifact, backend, provider)
    if chosen is Backend.TRITON:
        from segedge.runtime.triton_runner import TritonRunner

        return TritonRunner(str(artifact))
    if chosen is Backend.TORCH:
        from segedge.runtime.torch_runner import TorchRunner

        from segedge.models.checkpoint import resolve_checkpoint

        return TorchRunner(resolve_checkpoint(artifact), threads=threads)
    if chosen is Backend.OPENVINO:
        from segedge.runtime.openvino_runner import OpenVINORunner

        return OpenVINORunner(artifact, threads=threads, streams=streams)
    if chosen is Backend.ONNXRUNTIME:
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(artifact, provider=provider, threads=threads, spin=spin)
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(artifact)


def live_parallelism(
    artifact: str | os.PathLike[str] | None, provider: Provider | str = Provider.CPU, backend: Backend | str = Backend.AUTO
) -> tuple[int, int]:
    """``(workers, intra_op_threads)`` for the live loop on this machine.

    On a CPU (ONNX Runtime's CPU provider, OpenVINO, or PyTorch: a ``.pt`` checkpoint or the
    embedded model) the loop gets one inference worker per core (up to 4), each with one
    intra-op thread: parallel frames use a small CPU better than one frame split across cores,
    whose threads meet at a barrier after every layer and wait whenever the decoder or
    encoder preempts one of them. Measured here on 2 cores with the embedded model
    (``benchmarks/live.py``, inference alone): ONNX Runtime 41-45 against 31-32 frames/s,
    PyTorch 34 against 25 (and 23 against 11 in a worker thread). GPU backends (TensorRT,
    ONNX Runtime's CUDA and TensorRT providers) get one worker and their default threads.
    A Triton server gets 4 workers, i.e. 4 requests in flight, so the network round trip of
    one frame overlaps the server's work on the others.
    """
    cores = os.cpu_count() or 1
    chosen = resolve_backend(artifact, backend, provider)
    if chosen is Backend.TRITON:
        return 4, 0
    on_cpu = chosen in (Backend.TORCH, Backend.OPENVINO) or (chosen is Backend.ONNXRUNTIME and Provider(provider) is Provider.CPU)
    if on_cpu and cores >= 2:
        workers = min(cores, 4)
        return workers, max(1, cores // workers)
    return 1, 0
