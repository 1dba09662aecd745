"""Lazy access to TensorRT and CUDA (cuda-python's ``cuda.bindings``), and the one place
that tells TensorRT 10.x from 11.x.

Neither is a core dependency: importing segedge never imports them, and asking for a
TensorRT feature where they are missing raises one clear error naming the extra.

Version paths are chosen by feature detection (:func:`has_weak_typing`), never by version
strings. Which names each path may use is checked against NVIDIA's compiled bindings by
``tests/engine/test_tensorrt_api_conformance.py`` (the checker is `tests/engine/conformance.py`).
"""

from __future__ import annotations

import functools
from typing import Any

from segedge.errors import BackendUnavailableError, InputError

INSTALL_HINT = (
    "pip install 'segedge[tensorrt-cu12]' (CUDA 12 driver) or 'segedge[tensorrt-cu13]' (CUDA 13) on a machine with an "
    "NVIDIA GPU; on JetPack, TensorRT comes from apt (python3-libnvinfer) and pip adds 'segedge[cuda12]'"
)

# Python APIs TensorRT 11 removed (weak typing and implicit INT8 calibration), from NVIDIA's
# "Removed Python APIs and Replacements" page of the "Migrating from TensorRT 10.x to 11.x"
# guide (docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html).
# Qualified names ("Enum.MEMBER") are matched on ``trt.Enum.MEMBER`` chains; bare names on any
# attribute of a TensorRT object. segedge's 11.x path must use none of them.
REMOVED_IN_11 = frozenset({
    "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.FP8", "BuilderFlag.BF16", "BuilderFlag.INT4",
    "BuilderFlag.FP4", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "BuilderFlag.PREFER_PRECISION_CONSTRAINTS",
    "BuilderFlag.DIRECT_IO", "int8_calibrator", "set_calibration_profile", "get_calibration_profile",
    "set_quantization_flag", "get_quantization_flag", "quantization_flags", "clear_quantization_flag",
    "IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
    "IInt8LegacyCalibrator", "platform_has_fast_fp16", "platform_has_fast_int8", "device_memory_size",
    "IAlgorithmSelector", "algorithm_selector", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
})


class TensorRTRequestError(InputError, BackendUnavailableError):
    """A TensorRT engine (``-o X.engine``, ``--backend tensorrt``) was asked for where TensorRT,
    cuda-python or a GPU is missing: a request this machine cannot serve (exit code 2), and a
    :class:`BackendUnavailableError` for library callers."""

    exit_code = 2


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


@functools.lru_cache(maxsize=None)
def trt_logger() -> Any:
    """The process's one ``trt.Logger`` (severity WARNING), shared by every builder and runtime.

    TensorRT's Python samples and API reference use one logger per process: the bindings keep
    a reference to the logger a builder or runtime was created with, and several loggers
    interleave their messages.

    Raises:
        BackendUnavailableError: TensorRT is not installed.
    """
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def dla_unavailable_message(dla_core: int, available: int, trt_version: str) -> str:
    """One line for ``--dla-core N`` on a builder that reports ``available`` DLA cores, worded
    for the TensorRT release.

    DLA support by release, from NVIDIA's "Migrating TensorRT from 10.x to 11.x on
    Jetson/JetPack" and support-matrix pages: TensorRT 10.x on JetPack (Jetson AGX Orin has 2
    DLA cores, Orin NX 1 or 2, discrete GPUs none); TensorRT 11.0-11.3 have no DLA at all;
    11.4.0 only on Windows on ARM; 11.4.1 and later on Jetson AGX Orin under JetPack 7.2.2+.

    Args:
        dla_core: the core asked for.
        available: ``Builder.num_DLA_cores`` on this machine.
        trt_version: ``tensorrt.__version__``.
    """
    major, minor, patch = (version_tuple(trt_version) + (0, 0, 0))[:3]
    here = f"--dla-core {dla_core}: TensorRT {trt_version} on this machine reports {available} DLA cores"
    if major == 11 and minor <= 3:
        return f"{here}; TensorRT 11.0-11.3 have no DLA support: use TensorRT 10.x from JetPack 6, or 11.4.1+ on Jetson AGX Orin with JetPack 7.2.2+, or drop --dla-core"
    if major == 11 and (minor, patch) == (4, 0):
        return f"{here}; TensorRT 11.4.0 supports DLA only on Windows on ARM: use 11.4.1+ on Jetson AGX Orin (JetPack 7.2.2+) or TensorRT 10.x from JetPack 6, or drop --dla-core"
    fix = f"pick a core below {available} or drop --dla-core" if available else "drop --dla-core"
    return f"{here} (Jetson AGX Orin has 2, Orin NX 1 or 2, discrete GPUs and Jetson Thor none); {fix}"


def version_tuple(text: str) -> tuple[int, ...]:
    """``"10.3.0"`` -> ``(10, 3)``, ``"11.4.0.106"`` -> ``(11, 4, 0, 106)``: the digits of each
    dot-separated part, trailing zeros dropped (so ``"10.3.0" == "10.3"``)."""
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


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


def has_weak_typing(trt: Any) -> bool:
    """True on TensorRT 10.x (the JetPack 6 path), False on 11.x.

    TensorRT 10 still has the weak-typing API (``IBuilderConfig.int8_calibrator``,
    ``BuilderFlag.FP16``) and builds a strongly typed network only when asked with
    ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; TensorRT 11 removed that API and every
    network is strongly typed (the flag is deprecated and ignored). Source: "Migrating from
    TensorRT 10.x to 11.x", section "Strongly Typed Networks Are Now Required".
    """
    return hasattr(trt.IBuilderConfig, "int8_calibrator")


def require_engine_support(what: str) -> Any:
    """Check, before anything is written, that this machine can build or run an engine.

    Args:
        what: the user's request, for the message (``"-o model.engine"``).

    Returns:
        The ``tensorrt`` module.

    Raises:
        TensorRTRequestError: TensorRT, cuda-python or a CUDA GPU is missing (one line
            naming the ``segedge[tensorrt-cu12]`` / ``segedge[tensorrt-cu13]`` extras).
    """
    try:
        trt = import_tensorrt()
        cudart = import_cudart()
        count = cuda_check(cudart.cudaGetDeviceCount())
    except BackendUnavailableError as exc:
        raise TensorRTRequestError(f"{what} needs TensorRT on an NVIDIA GPU: {exc}") from None
    if not count:
        raise TensorRTRequestError(f"{what} needs TensorRT on an NVIDIA GPU: no CUDA device found; {INSTALL_HINT}")
    return trt


def engine_build_available() -> bool:
    """True if :func:`require_engine_support` would succeed (TensorRT, cuda-python and a GPU)."""
    try:
        require_engine_support("an engine")
    except BackendUnavailableError:
        return False
    return True
