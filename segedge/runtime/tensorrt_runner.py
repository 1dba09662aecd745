"""TensorRT runner: a deserialised engine, cuda-python device buffers, pinned host memory,
one stream, asynchronous copies and ``execute_async_v3`` (the TensorRT 10/11 API; the
samples' ``common_runtime.py`` pattern without pycuda)."""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np

from segedge.data.oxford_pet import CLASS_NAMES
from segedge.data.transforms import PreprocessConfig
from segedge.engine.build import current_gpu, load_engine_info
from segedge.engine.tensorrt_api import cuda_check, import_cudart, import_tensorrt
from segedge.errors import BackendUnavailableError, ModelFormatError
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

    Buffers are sized once for the profile's maximum batch; each call sets the input shape,
    copies host -> device, enqueues the engine and copies device -> host on one stream.

    Raises:
        BackendUnavailableError: TensorRT, cuda-python or a GPU is missing.
        ModelFormatError: the engine was built with another TensorRT version or GPU
            (the message says which, and how to rebuild), or it does not deserialise.
    """

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike[str]):
        self.artifact = Path(path)
        if not self.artifact.is_file():
            raise ModelFormatError(f"engine {self.artifact} does not exist")
        info = load_engine_info(self.artifact)
        trt = import_tensorrt()
        gpu, capability = current_gpu()
        rebuild = f"rebuild it here: segedge build-engine MODEL.onnx --precision {info.precision} -o {self.artifact}"
        if info.tensorrt_version != trt.__version__ or info.compute_capability != capability:
            raise ModelFormatError(
                f"{self.artifact} was built with TensorRT {info.tensorrt_version} for {info.gpu} (sm {info.compute_capability}); "
                f"this machine has TensorRT {trt.__version__} and {gpu} (sm {capability}); {rebuild}"
            )
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if self.engine is None:
            raise ModelFormatError(f"TensorRT cannot deserialise {self.artifact} (corrupt or truncated?); {rebuild}")
        self.context = self.engine.create_execution_context()
        meta = info.metadata
        self.preprocess_config = PreprocessConfig.from_json(meta["preprocess"]) if "preprocess" in meta else PreprocessConfig()
        self.classes = tuple(json.loads(meta.get("classes", json.dumps(CLASS_NAMES))))
        self.precision = info.precision
        self.max_batch = info.profile["max"][0]
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFormatError(f"{self.artifact}: expected one input and one output, found {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        h, w = self.preprocess_config.size
        per_image_in = 3 * h * w
        per_image_out = len(self.classes) * h * w
        self._in = _Buffer(self.max_batch * per_image_in * self.input_dtype.itemsize, self.input_dtype)
        self._out = _Buffer(self.max_batch * per_image_out * self.output_dtype.itemsize, self.output_dtype)
        self.context.set_tensor_address(self.input_name, int(self._in.device))
        self.context.set_tensor_address(self.output_name, int(self._out.device))
        self._stream = cuda_check(import_cudart().cudaStreamCreate())

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        cudart = import_cudart()
        n = batch.shape[0]
        self.context.set_input_shape(self.input_name, batch.shape)
        count_in = batch.size
        self._in.host[:count_in] = batch.ravel()
        nbytes_in = count_in * self.input_dtype.itemsize
        kind = cudart.cudaMemcpyKind
        cuda_check(cudart.cudaMemcpyAsync(self._in.device, self._in.host_ptr, nbytes_in, kind.cudaMemcpyHostToDevice, self._stream))
        if not self.context.execute_async_v3(int(self._stream)):
            raise BackendUnavailableError("TensorRT execute_async_v3 failed")
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
        if getattr(self, "_stream", None) is not None:
            cudart = import_cudart()
            cudart.cudaStreamDestroy(self._stream)
            self._in.free()
            self._out.free()
            self._stream = None
