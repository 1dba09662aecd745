"""Pick the runner for an artifact by its suffix: ``.pt`` -> PyTorch, ``.onnx`` -> ONNX
Runtime, ``.engine`` / ``.plan`` -> TensorRT; a ``triton://HOST:PORT/MODEL`` address -> a Triton server."""

from __future__ import annotations

import os
from pathlib import Path

from segedge.contract import Backend, Provider
from segedge.errors import InputError
from segedge.runtime.base import Runner

SUFFIXES = {
    ".pt": Backend.TORCH, ".pth": Backend.TORCH, ".onnx": Backend.ONNXRUNTIME, ".engine": Backend.TENSORRT, ".plan": Backend.TENSORRT,
}


def load_runner(
    artifact: str | os.PathLike[str] | None = None, provider: Provider | str = Provider.CPU, threads: int = 0, spin: bool = True
) -> Runner:
    """Load any segedge artifact.

    Args:
        artifact: ``.pt`` checkpoint, ``.onnx`` model or ``.engine``; ``None`` loads the
            embedded ``segnet-dsc`` checkpoint in PyTorch; ``triton://HOST:PORT/MODEL`` (HTTP)
            or ``triton+grpc://HOST:PORT/MODEL`` a model on a Triton server.
        provider: ONNX Runtime execution provider for ``.onnx`` (``cpu``, ``cuda``,
            ``tensorrt``).
        threads: intra-op threads on the CPU (0: the backend's default). For PyTorch this
            is process-wide (see :class:`~segedge.runtime.torch_runner.TorchRunner`).
        spin: ONNX Runtime thread spinning (see
            :class:`~segedge.runtime.onnxruntime_runner.OnnxRuntimeRunner`).

    Raises:
        InputError: unknown suffix (the valid ones are listed).
        CheckpointError, ModelFormatError, BackendUnavailableError: from the backend.
    """
    if artifact is None:
        from segedge.runtime.torch_runner import TorchRunner

        return TorchRunner(None, threads=threads)
    from segedge.runtime.triton_runner import TritonRunner, is_triton_url

    if is_triton_url(artifact):
        return TritonRunner(str(artifact))
    path = Path(artifact)
    backend = SUFFIXES.get(path.suffix.lower())
    if backend is None:
        raise InputError(f"cannot tell the backend of {path}: expected one of {', '.join(sorted(SUFFIXES))}")
    if backend is Backend.TORCH:
        from segedge.runtime.torch_runner import TorchRunner

        return TorchRunner(path, threads=threads)
    if backend is Backend.ONNXRUNTIME:
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, provider=provider, threads=threads, spin=spin)
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)


def live_parallelism(artifact: str | os.PathLike[str] | None, provider: Provider | str = Provider.CPU) -> tuple[int, int]:
    """``(workers, intra_op_threads)`` for the live loop on this machine.

    On a CPU (ONNX Runtime's CPU provider, or PyTorch: a ``.pt`` checkpoint or the embedded
    model) the loop gets one inference worker per core (up to 4), each with one intra-op
    thread: parallel frames use a small CPU better than one frame split across cores,
    whose threads meet at a barrier after every layer and wait whenever the decoder or
    encoder preempts one of them. Measured here on 2 cores with the embedded model
    (``benchmarks/live.py``, inference alone): ONNX Runtime 41-45 against 31-32 frames/s,
    PyTorch 34 against 25 (and 23 against 11 in a worker thread). GPU backends (TensorRT,
    ONNX Runtime's CUDA and TensorRT providers) get one worker and their default threads.
    A Triton server gets 4 workers, i.e. 4 requests in flight, so the network round trip of
    one frame overlaps the server's work on the others.
    """
    from segedge.runtime.triton_runner import is_triton_url

    if is_triton_url(artifact):
        return 4, 0
    cores = os.cpu_count() or 1
    suffix = Path(artifact).suffix.lower() if artifact is not None else ".pt"
    on_cpu = (suffix == ".onnx" and provider == Provider.CPU) or SUFFIXES.get(suffix) is Backend.TORCH
    if on_cpu and cores >= 2:
        workers = min(cores, 4)
        return workers, max(1, cores // workers)
    return 1, 0
