"""Lazy access to TensorRT and CUDA (cuda-python's ``cuda.bindings``).

Neither is a core dependency: importing segedge never imports them, and asking for a
TensorRT feature where they are missing raises one clear error naming the extra.
"""

from __future__ import annotations

import functools
from typing import Any

from segedge.errors import BackendUnavailableError

INSTALL_HINT = "pip install 'segedge[tensorrt]' on a machine with an NVIDIA GPU"


@functools.lru_cache(maxsize=None)
def import_tensorrt() -> Any:
    """Return the ``tensorrt`` module.

    Raises:
        BackendUnavailableError: TensorRT is not installed or its libraries do not load.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(f"TensorRT is not installed ({exc.msg}); {INSTALL_HINT}") from None
    except OSError as exc:  # the wheel is there but libnvinfer is not
        raise BackendUnavailableError(f"TensorRT's libraries do not load ({exc}); {INSTALL_HINT}") from None
    return tensorrt


def tensorrt_available() -> bool:
    """True if :func:`import_tensorrt` would succeed."""
    try:
        import_tensorrt()
    except BackendUnavailableError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def import_cudart() -> Any:
    """Return cuda-python's CUDA runtime bindings (``cuda.bindings.runtime``; the older
    ``cuda.cudart`` layout of cuda-python < 12.6 is accepted too).

    Raises:
        BackendUnavailableError: cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError:
            raise BackendUnavailableError(f"cuda-python is not installed; {INSTALL_HINT}") from None
    return cudart


def cuda_check(result: tuple) -> Any:
    """Unwrap a ``(cudaError_t, *values)`` tuple from ``cuda.bindings``.

    Raises:
        BackendUnavailableError: the call failed (no GPU, driver mismatch, out of memory).
    """
    cudart = import_cudart()
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        raise BackendUnavailableError(f"CUDA call failed: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)
