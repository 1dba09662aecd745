"""TensorRT runner: a deserialised engine, cuda-python device buffers, pinned host memory,
one stream, asynchronous copies and ``execute_async_v3``, with optional CUDA graph replay
for batch 1 (the camera loop).

Follows the TensorRT Python API reference (``Runtime``, ``ICudaEngine``,
``IExecutionContext``: ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``),
NVIDIA's ``samples/python/common_runtime.py`` (cuda-python instead of pycuda) and the
developer guide section "CUDA Graphs" (enqueue once after a shape change, then capture the
enqueue on a non-default stream and replay it).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from segedge.contract import Backend
from segedge.engine.build import current_gpu
from segedge.engine.profiles import Profile, format_shape
from segedge.engine.sidecar import check_engine_compatibility, load_engine_info
from segedge.engine.tensorrt_api import cuda_check, import_cudart, require_engine_support
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.base import Runner


class _Buffer:
    """A pinned host array and a device allocation of the same byte size."""

    def __init__(self, nbytes: int, dtype: np.dtype):
        cudart = import_cudart()
        self.nbytes = nbytes
        self.host_ptr = cuda_check(cudart.cudaMallocHost(nbytes))
        self.device = cuda_check(cudart.cudaMalloc(nbytes))
        ctype = np.ctypeslib.as_ctypes_type(dtype)
        self.host = np.ctypeslib.as_array(ctypes.cast(self.host_ptr, ctypes.POINTER(ctype)), (nbytes // dtype.itemsize,))

    def free(self) -> None:
        cudart = import_cudart()
        cudart.cudaFree(self.device)
        cudart.cudaFreeHost(self.host_ptr)


class TensorRTRunner(Runner):
    """Runs a segedge-built ``.engine`` (see :func:`segedge.engine.build.build_engine`).

    Buffers are sized once for the profile's largest shape; each call sets the input shape
    (within the profile), copies host -> device, enqueues the engine and copies device ->
    host on one stream.

    Args:
        path: the ``.engine`` (its ``.engine.json`` sidecar beside it).
        cuda_graph: capture the batch-1 enqueue as a CUDA graph on first use and replay it
            (lower launch overhead for the live loop).

    Raises:
        TensorRTRequestError: TensorRT, cuda-python or a GPU is missing (exit code 2).
        ModelFormatError: no such file, an engine built for another TensorRT version or GPU
            (the message says which and gives the rebuild command), or one that does not
            deserialise.
        InputError: missing or malformed sidecar.
    """

    backend = Backend.TENSORRT

    def __init__(self, path: str | os.PathLike[str], cuda_graph: bool = False):
        self.artifact = Path(path)
        if not self.artifact.is_file():
            raise ModelFormatError(f"engine {self.artifact} does not exist")
        info = load_engine_info(self.artifact)
        trt = require_engine_support(f"running {self.artifact}")
        gpu, capability = current_gpu()
        problem = check_engine_compatibility(info, trt.__version__, gpu, capability, engine_path=self.artifact)
        if problem:
            raise ModelFormatError(problem)
        options = info.options
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if options.version_compatible:  # the plan embeds the lean runtime, which is host code
            self._runtime.engine_host_code_allowed = True
        if options.dla_core is not None:
            self._runtime.DLA_core = options.dla_core
        self.engine = self._runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if self.engine is None:
            raise ModelFormatError(f"TensorRT cannot deserialise {self.artifact} (corrupt or truncated?); rebuild it with `segedge build-engine`")
        self.context = self.engine.create_execution_context()
        self.contract = info.contract
        self.profile = Profile.from_dict(info.profile)
        self.max_batch = self.profile.max[0]
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFormatError(f"{self.artifact}: expected one input and one output, found {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        n, c, h, w = self.profile.max
        self._in = _Buffer(n * c * h * w * self.input_dtype.itemsize, self.input_dtype)
        self._out = _Buffer(n * len(self.classes) * h * w * self.output_dtype.itemsize, self.output_dtype)
        self.context.set_tensor_address(self.input_name, int(self._in.device))
        self.context.set_tensor_address(self.output_name, int(self._out.device))
        self._stream = cuda_check(import_cudart().cudaStreamCreate())
        self._use_graph = cuda_graph
        self._graph = self._graph_exec = None

    def _enqueue(self, n: int) -> None:
        cudart = import_cudart()
        if n == 1 and self._use_graph:
            if self._graph_exec is None:
                self._capture()
            cuda_check(cudart.cudaGraphLaunch(self._graph_exec, self._stream))
        elif not self.context.execute_async_v3(int(self._stream)):
            raise BackendUnavailableError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def _capture(self) -> None:
        """Capture one batch-1 enqueue; the input shape is already set to batch 1."""
        cudart = import_cudart()
        if not self.context.execute_async_v3(int(self._stream)):  # required once after a shape change, before capture
            raise BackendUnavailableError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        cuda_check(cudart.cudaStreamSynchronize(self._stream))
        cuda_check(cudart.cudaStreamBeginCapture(self._stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
        self.context.execute_async_v3(int(self._stream))
        self._graph = cuda_check(cudart.cudaStreamEndCapture(self._stream))
        self._graph_exec = cuda_check(cudart.cudaGraphInstantiate(self._graph, 0))

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        cudart = import_cudart()
        if not self.profile.contains(batch.shape):
            raise InputError(
                f"input {format_shape(batch.shape)} is outside the profile of {self.artifact.name} ({self.profile.describe()}); "
                "rebuild it with --min-shape/--max-shape covering it"
            )
        n = batch.shape[0]
        if not self.context.set_input_shape(self.input_name, batch.shape):
            raise InputError(f"TensorRT rejected input shape {format_shape(batch.shape)} for {self.artifact.name}")
        count_in = batch.size
        self._in.host[:count_in] = batch.ravel()
        kind = cudart.cudaMemcpyKind
        nbytes_in = count_in * self.input_dtype.itemsize
        cuda_check(cudart.cudaMemcpyAsync(self._in.device, self._in.host_ptr, nbytes_in, kind.cudaMemcpyHostToDevice, self._stream))
        self._enqueue(n)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        count_out = int(np.prod(out_shape))
        nbytes_out = count_out * self.output_dtype.itemsize
        cuda_check(cudart.cudaMemcpyAsync(self._out.host_ptr, self._out.device, nbytes_out, kind.cudaMemcpyDeviceToHost, self._stream))
        cuda_check(cudart.cudaStreamSynchronize(self._stream))
        logits = self._out.host[:count_out].reshape(out_shape)
        if out_shape[0] != n:
            raise BackendUnavailableError(f"TensorRT returned batch {out_shape[0]} for an input of batch {n}")
        if out is not None:
            np.copyto(out, logits, casting="same_kind")
            return out
        return logits.astype(np.float32, copy=True)

    def close(self) -> None:
        if getattr(self, "_stream", None) is None:
            return
        cudart = import_cudart()
        if self._graph_exec is not None:
            cudart.cudaGraphExecDestroy(self._graph_exec)
            cudart.cudaGraphDestroy(self._graph)
        cudart.cudaStreamDestroy(self._stream)
        self._in.free()
        self._out.free()
        self._stream = None
