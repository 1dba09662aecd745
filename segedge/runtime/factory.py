"""Pick the runner for an artifact by its suffix: ``.pt`` -> PyTorch, ``.onnx`` -> ONNX
Runtime, ``.engine`` / ``.plan`` -> TensorRT."""

from __future__ import annotations

import os
from pathlib import Path

from segedge.errors import InputError
from segedge.runtime.base import Runner

SUFFIXES = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}


def load_runner(artifact: str | os.PathLike[str] | None = None, provider: str = "cpu") -> Runner:
    """Load any segedge artifact.

    Args:
        artifact: ``.pt`` checkpoint, ``.onnx`` model or ``.engine``; ``None`` loads the
            embedded ``segnet-dsc`` checkpoint in PyTorch.
        provider: ONNX Runtime execution provider for ``.onnx`` (``cpu``, ``cuda``,
            ``tensorrt``).

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

        return OnnxRuntimeRunner(path, provider=provider)
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)
