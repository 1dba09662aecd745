"""Sizing the TensorRT runner's buffers from the engine, and pinned-host views of any dtype.

Pure functions (no TensorRT, no CUDA), so the sizing rules are tested on a CPU:

- the input buffer holds the largest input the engine's optimization profile accepts
  (``ICudaEngine.get_tensor_profile_shape(input, 0)[2]``);
- the output buffer holds the output shape TensorRT infers for that largest input
  (``IExecutionContext.get_tensor_shape(output)`` after ``set_input_shape(input, max)``);
- the output's channel dimension is the engine's class count, which must equal the
  contract's (the ONNX metadata's class names), else logits would be read with the wrong
  stride and labelled with the wrong names;
- each buffer's element size is the engine tensor's dtype (``ICudaEngine.get_tensor_dtype``,
  ``trt.nptype``): FP16-I/O engines get half-size buffers.

Source: TensorRT Python API reference (``ICudaEngine``, ``IExecutionContext``) and NVIDIA's
``samples/python/common_runtime.py`` (buffers sized from the engine's tensor shapes and dtypes).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from segedge.errors import ModelFormatError


@dataclass(frozen=True)
class BufferPlan:
    """Sizes of one execution context's buffers."""

    input_shape: tuple[int, ...]  # (N, C, H, W): the profile's largest input
    output_shape: tuple[int, ...]  # (N, classes, H, W): the output for that input
    input_dtype: np.dtype  # the engine's input dtype (float32 or float16)
    output_dtype: np.dtype  # the engine's output dtype

    @property
    def input_nbytes(self) -> int:
        return int(np.prod(self.input_shape)) * self.input_dtype.itemsize

    @property
    def output_nbytes(self) -> int:
        return int(np.prod(self.output_shape)) * self.output_dtype.itemsize


def plan_buffers(
    profile_max: tuple[int, ...],
    output_at_max: tuple[int, ...],
    input_dtype: np.dtype | type,
    output_dtype: np.dtype | type,
    classes: int,
    engine: str = "the engine",
) -> BufferPlan:
    """Buffer sizes from what the engine reports.

    Args:
        profile_max: the input's largest profile shape ``(N, C, H, W)``.
        output_at_max: the output shape TensorRT reports with the input set to
            ``profile_max``; ``-1`` (not yet inferred) in N, H or W is taken from the input.
        input_dtype, output_dtype: numpy dtypes of the engine's I/O tensors.
        classes: the number of class names in the artifact's contract.
        engine: the engine's name, for messages.

    Returns:
        The :class:`BufferPlan`.

    Raises:
        ModelFormatError: an I/O tensor that is not rank 4, an unresolved dimension, or an
            output channel count other than ``classes`` (one line, naming both counts).
    """
    if len(profile_max) != 4 or min(profile_max) <= 0:
        raise ModelFormatError(f"{engine}: expected a (N, C, H, W) input profile, got {tuple(profile_max)}")
    if len(output_at_max) != 4:
        raise ModelFormatError(f"{engine}: expected a (N, classes, H, W) output, got shape {tuple(output_at_max)}")
    n, _, h, w = profile_max
    out = [int(d) for d in output_at_max]
    for axis, fallback in ((0, n), (2, h), (3, w)):
        if out[axis] < 0:
            out[axis] = fallback
    if out[1] < 0:
        raise ModelFormatError(f"{engine}: the output's class dimension is not fixed ({tuple(output_at_max)})")
    if out[1] != classes:
        raise ModelFormatError(
            f"{engine} outputs {out[1]} classes but its contract names {classes}; rebuild the engine from the ONNX whose metadata matches it"
        )
    return BufferPlan(tuple(int(d) for d in profile_max), tuple(out), np.dtype(input_dtype), np.dtype(output_dtype))


def host_view(address: int, nbytes: int, dtype: np.dtype | type) -> np.ndarray:
    """A flat numpy array over ``nbytes`` of host memory at ``address``, of any dtype.

    ``np.ctypeslib.as_ctypes_type`` has no ctypes type for float16 (it raises), so the view
    is made over raw bytes (``ctypes.c_char``) and reinterpreted, which works for every dtype.

    Args:
        address: start of the memory (``cudaMallocHost`` result), aligned for ``dtype``.
        nbytes: size in bytes, a multiple of the dtype's size.
        dtype: element type.

    Returns:
        A writable ``(nbytes // itemsize,)`` array sharing the memory (no copy).
    """
    dtype = np.dtype(dtype)
    raw = (ctypes.c_char * nbytes).from_address(int(address))
    return np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize)


# --- CUDA graph policy and per-worker slots (pure, tested on a CPU) -------------------------

REPLAY = "replay"  # launch the graph captured for this shape
ENQUEUE_AND_CAPTURE = "enqueue+capture"  # plain enqueue (required after a shape change), then capture this shape
ENQUEUE = "enqueue"  # plain enqueue only (graphs off, or this shape's capture failed before)


def graph_step(use_graph: bool, graph_shape: tuple[int, ...] | None, shape: tuple[int, ...], failed: set[tuple[int, ...]]) -> str:
    """What one inference does with CUDA graphs, given the context's state.

    TensorRT's developer guide ("CUDA Graphs"): after an input shape change the context must
    enqueue once before a capture, and a graph holds the kernels of the shape it was captured
    with. So a graph is replayed only while the shape stays the one it was captured with; any
    other shape is enqueued plainly (and captured, unless its capture failed before).

    Args:
        use_graph: CUDA graphs asked for.
        graph_shape: the shape of the graph held now (None: no graph).
        shape: the input shape of this call.
        failed: shapes whose capture failed (never retried).

    Returns:
        :data:`REPLAY`, :data:`ENQUEUE_AND_CAPTURE` or :data:`ENQUEUE`.
    """
    if use_graph and graph_shape == shape:
        return REPLAY
    if use_graph and shape not in failed:
        return ENQUEUE_AND_CAPTURE
    return ENQUEUE


def concurrent_contexts(profiles: "list") -> int | None:
    """How many execution contexts of an engine may run at once, from its optimization profiles.

    TensorRT's ``IExecutionContext`` reference: "If the engine supports dynamic shapes, each
    execution context in concurrent use must use a separate optimization profile." So an engine
    with a dynamic input runs at most one context per profile at a time (context ``i`` selects
    profile ``i``, ``IExecutionContext.set_optimization_profile_async``); an engine whose every
    profile is static (min = max) has no such limit.

    Args:
        profiles: the engine's :class:`~segedge.engine.profiles.Profile` per profile index
            (``ICudaEngine.get_tensor_profile_shape(input, i)`` for ``i`` below
            ``num_optimization_profiles``).

    Returns:
        The number of profiles for a dynamic engine, ``None`` (unbounded) for a static one.
    """
    if all(tuple(p.min) == tuple(p.max) for p in profiles):
        return None
    return len(profiles)


class SlotPool:
    """Per-caller resources (an execution context with its stream and buffers): a caller takes
    a slot no other caller holds, and gives it back; new slots are made only when all are busy,
    so N concurrent workers end up with N slots, each used by one thread at a time (TensorRT
    developer guide, "Threading": an execution context must not be used by two threads at once).

    Slots are numbered 0, 1, ... in the order they are made; with a ``capacity`` (a dynamic
    engine's profile count, :func:`concurrent_contexts`) no more are made, and a caller waits
    for a free one: more workers than profiles share the contexts one at a time instead of
    running two on one profile.

    :meth:`close` frees the idle slots at once and each busy one when its holder gives it back,
    never a slot another thread is still inferring with.

    Args:
        create: ``create(number)`` makes slot ``number`` (called outside the lock; may raise).
        capacity: most slots ever made (``None``: unbounded).
        free: releases a slot (its context, stream, buffers); default: nothing to release.
    """

    def __init__(self, create, capacity: int | None = None, free=None):
        import threading

        self._create = create
        self._free_slot = free or (lambda slot: None)
        self.capacity = capacity
        self._changed = threading.Condition()
        self._free: list = []
        self._busy = 0
        self._reserved = 0  # numbers handed to ``create`` calls that have not returned yet
        self.closed = False
        self.waited = False  # a caller once had to wait for a slot (more workers than profiles)
        self.all: list = []  # every live slot made, for closing

    def add(self, slot) -> None:
        """Register an already made slot (number ``len(all)``) as free: the one made up front to fail early."""
        with self._changed:
            self.all.append(slot)
            self._free.append(slot)
            self._changed.notify()

    def take(self):
        """A slot no other caller holds: a free one, a new one, or (at capacity) the next one given back.

        Raises:
            RuntimeError: the pool is closed.
        """
        with self._changed:
            while True:
                if self.closed:
                    raise RuntimeError("the slot pool is closed (the runner was closed)")
                if self._free:
                    self._busy += 1
                    return self._free.pop()
                made = len(self.all) + self._reserved
                if self.capacity is None or made < self.capacity:
                    self._reserved += 1
                    number = made
                    break
                self.waited = True
                self._changed.wait()
        try:
            slot = self._create(number)
        except BaseException:
            with self._changed:
                self._reserved -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._reserved -= 1
            self.all.append(slot)
            self._busy += 1
        return slot

    def give_back(self, slot) -> None:
        """Return a slot taken with :meth:`take`; after :meth:`close` it is freed instead."""
        with self._changed:
            self._busy -= 1
            if not self.closed:
                self._free.append(slot)
                self._changed.notify()
                return
            self.all = [s for s in self.all if s is not slot]
        self._free_slot(slot)

    def close(self) -> None:
        """Free the idle slots now, each busy one when it is given back; later takes raise."""
        with self._changed:
            self.closed = True
            idle, self._free = self._free, []
            self.all = [s for s in self.all if all(s is not i for i in idle)]
            self._changed.notify_all()
        for slot in idle:
            self._free_slot(slot)
