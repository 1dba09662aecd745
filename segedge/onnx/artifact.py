"""An ONNX file opened once: the graph (with its external weights), its I/O, its contract.

Polygraphy's loaders (``BytesFromPath`` -> ``OnnxFromBytes`` -> ``SessionFromOnnx``) each do one
thing once and hand the result on; segedge's equivalent is :func:`open_onnx`, which turns a
path into an :class:`OnnxArtifact`: the ``onnx.ModelProto`` loaded once, its input and output
tensors as ONNX Runtime names their types, its :class:`~segedge.contract.Contract` read once
(through the contract type, the only metadata reader), and the checks that the graph is a
segmentation network segedge can run, made once, before anything reads its contract. Runners,
calibration, build and inspect take that object instead of reading the file again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from segedge.contract import Contract, Precision, onnx_input_size
from segedge.errors import ModelFormatError
from segedge.onnx.metadata import load_onnx, uses_external_data

log = logging.getLogger(__name__)

_FLOAT_TYPES = ("tensor(float)", "tensor(float16)")


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output."""

    name: str
    shape: tuple[int | str, ...]  # fixed dims as ints, symbolic ones by name (``"batch"``; ``"?"`` when unnamed)
    type: str  # as ONNX Runtime spells it: ``"tensor(float)"``, ``"tensor(float16)"``, ``"tensor(int64)"``


@dataclass(frozen=True)
class OnnxArtifact:
    """An ONNX file opened once (see :func:`open_onnx`).

    Attributes:
        path: the file.
        model: the graph, external weight data loaded into it.
        contract: its deployment contract (``declared`` False: defaults at its input size).
        inputs: graph inputs that are not initializers, ``(N, 3, H, W)`` for a segmentation network.
        outputs: graph outputs, ``(N, C, H, W)`` class scores first.
        external: the weights lived in external data files beside ``path``.
    """

    path: Path
    model: onnx.ModelProto
    contract: Contract
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    external: bool = False

    @property
    def calibration(self) -> dict[str, Any]:
        """The INT8 calibration record (:attr:`segedge.contract.Contract.calibration`)."""
        return self.contract.calibration

    @property
    def op_types(self) -> set[str]:
        """Operator types in the graph (``MaxUnpool``, ``QuantizeLinear``, ...)."""
        return {node.op_type for node in self.model.graph.node}

    def serialized(self) -> bytes:
        """The whole model as bytes (weights inside), for ONNX Runtime's ``InferenceSession``."""
        return self.model.SerializeToString()


def _tensor(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?") for d in tensor.shape.dim)
    kind = onnx.TensorProto.DataType.Name(tensor.elem_type).lower() if tensor.elem_type else "undefined"
    return TensorInfo(value.name, dims, f"tensor({kind})")


def graph_io(model: onnx.ModelProto) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """``(inputs, outputs)`` of a graph; inputs that are initializers (older IR versions list
    weights as inputs) are left out."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_tensor(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(_tensor(v) for v in model.graph.output)


def check_segmentation_io(path: str | os.PathLike[str], inputs, outputs) -> None:
    """Check that a graph looks like a segmentation network segedge can run: one float
    ``(N, 3, H, W)`` image input and a float ``(N, C, H, W)`` score output.

    Args:
        path: the model file, for messages.
        inputs, outputs: :class:`TensorInfo` (or ONNX Runtime's ``get_inputs()``: objects with
            ``name``, ``shape`` and ``type``).

    Raises:
        ModelFormatError: what differs (exit code 2), e.g. a 1-channel or int64 input, a
            classifier's ``(N, 1000)`` output.
    """
    if len(inputs) != 1:
        raise ModelFormatError(f"{path} has {len(inputs)} inputs; expected one (N, 3, H, W) image input")
    shape, kind = list(inputs[0].shape), inputs[0].type
    if kind not in _FLOAT_TYPES:
        raise ModelFormatError(f"{path}: input {inputs[0].name} is {kind}; expected float32 or float16 (N, 3, H, W) pixels")
    if len(shape) != 4:
        raise ModelFormatError(f"{path}: input {inputs[0].name} has shape {shape}; expected (N, 3, H, W)")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise ModelFormatError(f"{path}: input {inputs[0].name} has {shape[1]} channels; expected 3 (an RGB or BGR image)")
    if not outputs:
        raise ModelFormatError(f"{path} has no output")
    out_shape, out_kind = list(outputs[0].shape), outputs[0].type
    if out_kind not in _FLOAT_TYPES:
        raise ModelFormatError(f"{path}: output {outputs[0].name} is {out_kind}; expected float32 or float16 class scores")
    if len(out_shape) != 4:
        raise ModelFormatError(
            f"{path}: output {outputs[0].name} has shape {out_shape}; expected per-pixel class scores (N, C, H, W) "
            "(a classifier or detector is not a segmentation network)"
        )


def check_class_count(path: str | os.PathLike[str], outputs, contract: Contract) -> None:
    """The score output's channel count (when fixed) is the contract's number of classes.

    Raises:
        ModelFormatError: e.g. 21 output channels for the 3 Pet classes a model without
            segedge metadata is taken to predict (the message says which case it is).
    """
    channels = outputs[0].shape[1] if outputs and len(outputs[0].shape) == 4 else None
    if isinstance(channels, int) and channels != contract.num_classes:
        origin = "its segedge metadata names" if contract.declared else "without segedge metadata the Oxford-IIIT Pet classes are assumed:"
        raise ModelFormatError(
            f"{path}: output {outputs[0].name} has {channels} class channels but {origin} {contract.num_classes} "
            f"({', '.join(contract.classes)}); export it with `segedge export` so it carries its classes"
        )


def open_onnx(path: str | os.PathLike[str], segmentation: bool = True) -> OnnxArtifact:
    """Open an ONNX file once: load it with its external weights, check it is a segmentation
    network (before reading its contract, so a foreign model is told what is wrong with it),
    read its contract, check the class count, and say once when defaults are assumed.

    Args:
        path: the ``.onnx``; external data files are read from beside it.
        segmentation: check the segmentation shape and class count, and say when defaults
            are assumed (``False`` for ``inspect``, which describes any graph; a symbolic
            input size then reads as 128x128).

    Returns:
        The :class:`OnnxArtifact`.

    Raises:
        ModelFormatError: missing, truncated or not ONNX; external data missing or outside
            the model's folder; not a segmentation network; bad segedge metadata; no metadata
            and a dynamic input size; a class count its contract does not match.
    """
    path = Path(path)
    model = load_onnx(path, load_external_data=False)
    external = uses_external_data(model)
    if external:
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # a missing file, a location escaping the folder (refused by onnx)
            raise ModelFormatError(f"{path}: cannot read its external weight data: {str(exc).splitlines()[0][:200]}") from None
    inputs, outputs = graph_io(model)
    if segmentation:
        check_segmentation_io(path, inputs, outputs)
    fp16_input = bool(inputs) and inputs[0].type == "tensor(float16)"
    fallbacks: dict[str, Any] = {"fallback_precision": Precision.FP16 if fp16_input else Precision.FP32}
    if not segmentation and None in onnx_input_size(model):  # only described: 128x128 stands in for a symbolic size
        fallbacks["fallback_size"] = None
    contract = Contract.from_onnx(model, str(path), **fallbacks)
    if segmentation:
        check_class_count(path, outputs, contract)
        if not contract.declared:
            log.warning("%s", contract.defaults_note(str(path)))
    return OnnxArtifact(path, model, contract, inputs, outputs, external)
