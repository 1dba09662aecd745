"""Pick the runner for an artifact by its suffix: ``.pt`` -> PyTorch, ``.onnx`` -> ONNX
Runtime, ``.engine`` / ``.plan`` -> TensorRT."""

from __future__ import annotations

import os
from pathlib import Path

import os as _os

from segedge.errors import InputError
from segedge.runtime.base import Runner

SUFFIXES = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}


def load_runner(
    artifact: str | os.PathLike[str] | None = None, provider: str = "cpu", threads: int = 0, spin: bool = True
) -> Runner:
    """Load any segedge artifact.

    Args:
        artifact: ``.pt`` checkpoint, ``.onnx`` model or ``.engine``; ``None`` loads the
            embedded ``segnet-dsc`` checkpoint in PyTorch.
        provider: ONNX Runtime execution provider for ``.onnx`` (``cpu``, ``cuda``,
            ``tensorrt``).
        threads, spin: ONNX Runtime intra-op threads and spinning (see
            :class:`~segedge.runtime.onnxruntime_runner.OnnxRuntimeRunner`).

    Raises:
        InputError: unknown suffix (the valid ones are listed).
        CheckpointError, ModelFormatError, BackendUnavailableError: from the backend.
    """
    if artifact is None:
        from segedge.runtime.torch_runner import TorchRunner

        return TorchRunner(None)
    path = Path(artifact)
    backend = SUFFIXES.get(path.suffix.lower())
    if backend is None:
        raise InputError(f"cannot tell the backend of {path}: expected one of {', '.join(sorted(SUFFIXES))}")
    if backend == "torch":
        from segedge.runtime.torch_runner import TorchRunner

        return TorchRunner(path)
    if backend == "onnxruntime":
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, provider=provider, threads=threads, spin=spin)
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)


def live_parallelism(artifact: str | os.PathLike[str] | None, provider: str = "cpu") -> tuple[int, int]:
    """``(workers, intra_op_threads)`` for the live loop on this machine.

    ONNX Runtime on the CPU gets one inference worker per core (up to 4), each with
    one intra-op thread: parallel frames use a small CPU better than one frame split across
    cores (measured here on 2 cores: 66.7 against 60.8 frames/s for the embedded model).
    PyTorch (its own thread pool) and GPU backends get one worker.
    """
    cores = _os.cpu_count() or 1
    if artifact is not None and Path(artifact).suffix.lower() == ".onnx" and provider == "cpu" and cores >= 2:
        workers = min(cores, 4)
        return workers, max(1, cores // workers)
    return 1, 0
