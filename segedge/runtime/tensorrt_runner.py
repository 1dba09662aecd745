"""TensorRT runner: a deserialised engine and, per inference thread, an execution context with
its own stream and buffers (cuda-python device memory, pinned host memory), asynchronous
copies and ``execute_async_v3``, with optional CUDA graph replay per input shape.

Follows the TensorRT Python API reference (``Runtime``, ``ICudaEngine``,
``IExecutionContext``: ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``),
NVIDIA's ``samples/python/common_runtime.py`` (cuda-python instead of pycuda; buffers sized
from the engine), the developer guide sections "Threading" (an execution context is used by
one thread at a time) and "CUDA Graphs" (enqueue once after a shape change, then capture on
a non-default stream; a graph is valid for the shape it was captured with), and trtexec's
``sampleInference.cpp`` (end the capture and fall back to plain enqueue when it fails).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segedge.contract import Backend, default_palette
from segedge.engine.buffers import (
    ENQUEUE_AND_CAPTURE, REPLAY, BufferPlan, SlotPool, concurrent_contexts, graph_step, host_view, plan_buffers,
)
from segedge.engine.build import current_gpu
from segedge.engine.profiles import Profile, format_shape
from segedge.engine.sidecar import check_engine_compatibility, read_engine
from segedge.engine.tensorrt_api import cuda_check, import_cudart, require_engine_support, trt_logger
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.base import Runner

if TYPE_CHECKING:  # annotations only: tensorrt is imported lazily
    import tensorrt as trt

log = logging.getLogger(__name__)


class _Buffer:
    """A pinned host array and a device allocation of the same byte size (freed by :meth:`free`)."""

    def __init__(self, nbytes: int, dtype: np.dtype):
        cudart = import_cudart()
        self.host_ptr = self.device = None
        try:
            self.host_ptr = cuda_check(cudart.cudaMallocHost(nbytes))
            self.device = cuda_check(cudart.cudaMalloc(nbytes))
        except BaseException:  # the host half must not leak when the device half fails
            self.free()
            raise
        self.host = host_view(self.host_ptr, nbytes, dtype)

    def free(self) -> None:
        cudart = import_cudart()
        if self.device is not None:
            cudart.cudaFree(self.device)
        if self.host_ptr is not None:
            cudart.cudaFreeHost(self.host_ptr)
        self.host_ptr = self.device = None


class _Slot:
    """What one thread needs to run the engine: context (on its own optimization profile),
    stream, buffers, the CUDA graph of its current shape."""

    context: trt.IExecutionContext | None

    def __init__(self, engine: trt.ICudaEngine, plan: BufferPlan, input_name: str, output_name: str, artifact: Path,
                 profile_index: int, profile: Profile):
        cudart = import_cudart()
        self.stream = None
        self.buffers: list[_Buffer] = []
        self.graph = None  # CUDA graph exec captured for ``graph_shape`` (None: none held)
        self.graph_shape: tuple[int, ...] | None = None
        self.no_graph: set[tuple[int, ...]] = set()  # shapes whose capture failed: plain enqueue only
        self.shape: tuple[int, ...] | None = None  # the input shape the context was last enqueued with
        self.profile_index, self.profile = profile_index, profile
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailableError(f"TensorRT could not create an execution context for {artifact} (out of GPU memory?)")
        try:
            self.input = _Buffer(plan.input_nbytes, plan.input_dtype)
            self.buffers.append(self.input)
            self.output = _Buffer(plan.output_nbytes, plan.output_dtype)
            self.buffers.append(self.output)
            self.stream = cuda_check(cudart.cudaStreamCreate())
            if profile_index and not self.context.set_optimization_profile_async(profile_index, int(self.stream)):
                raise BackendUnavailableError(f"TensorRT could not select optimization profile {profile_index} of {artifact}")
            cuda_check(cudart.cudaStreamSynchronize(self.stream))
            # addresses after the profile: selecting one invalidates the context's bindings
            self.context.set_tensor_address(input_name, int(self.input.device))
            self.context.set_tensor_address(output_name, int(self.output.device))
        except BaseException:
            self.free()
            raise

    def drop_graph(self) -> None:
        if self.graph is not None:
            import_cudart().cudaGraphExecDestroy(self.graph)
        self.graph = self.graph_shape = None

    def free(self) -> None:
        cudart = import_cudart()
        self.drop_graph()
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None
        for buffer in self.buffers:
            buffer.free()
        self.buffers.clear()
        self.context = None


class TensorRTRunner(Runner):
    """Runs a segedge-built ``.engine`` (see :func:`segedge.engine.build.build_engine`).

    Buffers are sized from the engine (its profile's largest input and the output TensorRT
    infers for it, in the engine's I/O dtypes, float32 or float16). Each thread that calls
    :meth:`infer` gets its own execution context, stream and buffers (created on first use,
    reused after), and each context of a dynamic-shape engine its own optimization profile
    (context ``i`` on profile ``i``: TensorRT's ``IExecutionContext`` reference, "each execution
    context in concurrent use must use a separate optimization profile"). So ``segedge run
    X.engine --workers N`` runs N contexts side by side on an engine built with ``--profiles N``;
    with fewer profiles the workers share the contexts one at a time (a warning says so once).

    Args:
        path: the ``.engine`` (its ``.engine.json`` sidecar beside it).
        cuda_graph: capture the enqueue as a CUDA graph (after one plain enqueue of the
            shape) and replay it while the shape stays the same; a shape change drops the
            graph and captures again; a shape whose capture fails runs plainly.

    Raises:
        TensorRTRequestError: TensorRT, cuda-python or a GPU is missing (exit code 2).
        ModelFormatError: no such file, an engine its sidecar was not written with (a crash
            between the two, see :func:`~segedge.engine.sidecar.read_engine`), an engine built
            for another TensorRT version or GPU (the message says which and gives the rebuild
            command), one that does not deserialise, or whose class count differs from its contract's.
        BackendUnavailableError: no execution context could be created (GPU memory).
        InputError: missing or malformed sidecar.
    """

    backend = Backend.TENSORRT

    def __init__(self, path: str | os.PathLike[str], cuda_graph: bool = False):
        self._pool = SlotPool(self._new_slot, free=_Slot.free)  # one context + stream + buffers per concurrent caller
        self.artifact = Path(path)
        serialized, info = read_engine(self.artifact)  # read once: the bytes deserialised are the bytes the sidecar's hash was checked on
        trt = require_engine_support(f"running {self.artifact}")
        gpu, capability = current_gpu()
        problem = check_engine_compatibility(info, trt.__version__, gpu, capability, engine_path=self.artifact)
        if problem:
            raise ModelFormatError(problem)
        options = info.options
        self._runtime = trt.Runtime(trt_logger())
        if options.version_compatible:  # the plan embeds the lean runtime, which is host code
            self._runtime.engine_host_code_allowed = True
        if options.dla_core is not None:
            self._runtime.DLA_core = options.dla_core
        self.engine = self._runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise ModelFormatError(f"TensorRT cannot deserialise {self.artifact} (corrupt or truncated?); rebuild it with `segedge build-engine`")
        self.contract = info.contract
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFormatError(f"{self.artifact}: expected one input and one output, found {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.profiles = [
            Profile(*(tuple(shape) for shape in self.engine.get_tensor_profile_shape(self.input_name, i)))
            for i in range(self.engine.num_optimization_profiles)
        ]
        self.profile = self.profiles[0]  # segedge builds identical profiles (one per concurrent context)
        self._pool.capacity = concurrent_contexts(self.profiles)
        low, opt, high = self.profile.min, self.profile.opt, self.profile.max
        self.max_batch = high[0]
        self._use_graph = cuda_graph
        self._warned_sharing = False
        first = None
        try:
            first = self.engine.create_execution_context()
            if first is None:
                raise BackendUnavailableError(f"TensorRT could not create an execution context for {self.artifact} (out of GPU memory?)")
            if not first.set_input_shape(self.input_name, high):
                raise ModelFormatError(f"{self.artifact}: TensorRT rejected its own profile's largest input {format_shape(high)}")
            out_at_max = tuple(first.get_tensor_shape(self.output_name))
            if not self.contract.declared and len(out_at_max) == 4 and out_at_max[1] > 0 and out_at_max[1] != self.contract.num_classes:
                names = tuple(f"class {i}" for i in range(out_at_max[1]))  # no contract in the sidecar: the engine decides
                self.contract = self.contract.replace(classes=names, palette=default_palette(names))
            self._plan = plan_buffers(
                high, out_at_max,
                trt.nptype(self.engine.get_tensor_dtype(self.input_name)), trt.nptype(self.engine.get_tensor_dtype(self.output_name)),
                len(self.classes), str(self.artifact),
            )
            del first  # sizing only; each thread's slot has its own context
            self._pool.add(self._new_slot(0))  # fail here, not on the first frame
        except BaseException:
            self.close()
            raise

    def _new_slot(self, number: int) -> _Slot:
        """Slot ``number``: a dynamic engine's context ``number`` runs on profile ``number`` (the
        pool makes no more slots than profiles); a static engine's contexts all share profile 0."""
        index = number if self._pool.capacity is not None else 0
        return _Slot(self.engine, self._plan, self.input_name, self.output_name, self.artifact, index, self.profiles[index])

    def _enqueue(self, slot: _Slot, shape: tuple[int, ...]) -> None:
        """Run the engine on ``slot``'s stream; the input shape is already set.

        With CUDA graphs: the graph captured for this shape is replayed while the context
        stays on it; a new shape is enqueued plainly once (TensorRT needs that after a shape
        change), the old graph is dropped, and the new shape captured.
        """
        cudart = import_cudart()
        step = graph_step(self._use_graph, slot.graph_shape if slot.graph is not None else None, shape, slot.no_graph)
        if step == REPLAY:
            cuda_check(cudart.cudaGraphLaunch(slot.graph, slot.stream))
            return
        slot.drop_graph()  # captured for another shape: never replayed after a shape change
        if not slot.context.execute_async_v3(int(slot.stream)):
            raise BackendUnavailableError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        slot.shape = shape
        if step == ENQUEUE_AND_CAPTURE:
            slot.graph = self._capture(slot)
            if slot.graph is None:
                slot.no_graph.add(shape)
            else:
                slot.graph_shape = shape

    def _capture(self, slot: _Slot):
        """Capture one enqueue on ``slot``'s stream; ``None`` (plain enqueue from then on) on failure."""
        cudart = import_cudart()
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal  # other workers' CUDA calls stay legal
        err, = cudart.cudaStreamBeginCapture(slot.stream, mode)
        if err != cudart.cudaError_t.cudaSuccess:
            log.warning("CUDA graph capture could not start (%s); running without a graph", err)
            return None
        enqueued = slot.context.execute_async_v3(int(slot.stream))
        err, graph = cudart.cudaStreamEndCapture(slot.stream)  # always end the capture, even after a failed enqueue
        graph_exec = None
        if err == cudart.cudaError_t.cudaSuccess:
            if enqueued:
                err, graph_exec = cudart.cudaGraphInstantiate(graph, 0)
                if err != cudart.cudaError_t.cudaSuccess:
                    graph_exec = None
            cudart.cudaGraphDestroy(graph)  # the instantiated graph does not need it
        if graph_exec is None:
            cudart.cudaGetLastError()  # clear the sticky capture error
            log.warning("CUDA graph capture failed for %s (enqueue %s, %s); running without a graph", self.artifact.name, enqueued, err)
        return graph_exec

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if not self.profile.contains(batch.shape):
            raise InputError(
                f"input {format_shape(batch.shape)} is outside the profile of {self.artifact.name} ({self.profile.describe()}); "
                "rebuild it with --min-shape/--max-shape covering it"
            )
        slot = self._pool.take()
        if self._pool.waited and not self._warned_sharing:
            self._warned_sharing = True
            log.warning(
                "%s has %d optimization profile(s): more inference threads than that share its contexts one at a time; "
                "rebuild it with --profiles N to run N at once", self.artifact.name, len(self.profiles),
            )
        try:
            if not slot.profile.contains(batch.shape):
                raise InputError(f"input {format_shape(batch.shape)} is outside profile {slot.profile_index} of {self.artifact.name} ({slot.profile.describe()})")
            return self._run(slot, batch, out)
        finally:
            self._pool.give_back(slot)

    def _run(self, slot: _Slot, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        cudart = import_cudart()
        shape = tuple(batch.shape)
        if slot.shape != shape and not slot.context.set_input_shape(self.input_name, shape):
            raise InputError(f"TensorRT rejected input shape {format_shape(shape)} for {self.artifact.name}")
        count_in = batch.size
        slot.input.host[:count_in] = batch.ravel()  # casts to the engine's input dtype (float16 I/O)
        kind = cudart.cudaMemcpyKind
        nbytes_in = count_in * self._plan.input_dtype.itemsize
        cuda_check(cudart.cudaMemcpyAsync(slot.input.device, slot.input.host_ptr, nbytes_in, kind.cudaMemcpyHostToDevice, slot.stream))
        self._enqueue(slot, shape)
        out_shape = tuple(slot.context.get_tensor_shape(self.output_name))
        count_out = int(np.prod(out_shape))
        if out_shape[0] != shape[0] or count_out * self._plan.output_dtype.itemsize > self._plan.output_nbytes:
            raise BackendUnavailableError(f"TensorRT reports output {out_shape} for input {shape}, beyond the buffer sized for {self._plan.output_shape}")
        nbytes_out = count_out * self._plan.output_dtype.itemsize
        cuda_check(cudart.cudaMemcpyAsync(slot.output.host_ptr, slot.output.device, nbytes_out, kind.cudaMemcpyDeviceToHost, slot.stream))
        cuda_check(cudart.cudaStreamSynchronize(slot.stream))
        logits = slot.output.host[:count_out].reshape(out_shape)
        if out is not None:
            np.copyto(out, logits, casting="same_kind")
            return out
        return logits.astype(np.float32, copy=True)

    def close(self) -> None:
        """Free every slot's context, stream, buffers and graphs: idle ones now, one another
        thread is inferring with when it finishes (safe after a failed ``__init__``)."""
        if hasattr(self, "_pool"):
            self._pool.close()
