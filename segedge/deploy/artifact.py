"""What a deployment config needs from an artifact: its tensors and its contract.

Tensors come from an ONNX graph or a TensorRT engine's JSON sidecar (``segedge/engine/sidecar.py``;
no TensorRT is needed); the contract is read by :class:`~segedge.contract.Contract`, the only
reader of segedge metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from segedge.contract import Contract, Precision, PreprocessConfig
from segedge.errors import InputError, ModelFormatError

# ONNX TensorProto element type -> Triton data type (model_config.proto DataType)
ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 2: "TYPE_UINT8", 3: "TYPE_INT8", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL"}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: tensor name in the graph.
        dtype: Triton data type, ``TYPE_FP32``, ``TYPE_UINT8``, ...
        shape: full shape with the batch axis first; ``-1`` for a symbolic axis.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ArtifactInfo:
    """An artifact as a server sees it.

    Attributes:
        path: the ONNX file, TensorRT engine or checkpoint.
        kind: ``onnx``, ``plan`` or the suffix of another artifact (``pt``).
        inputs, outputs: graph tensors (the first output holds the ``(N, C, H, W)`` logits).
        contract: the deployment contract (:class:`~segedge.contract.Contract`: preprocessing,
            classes, palette, precision, provenance), read by the contract type itself.
        max_profile_batch: largest batch of a plan's optimization profile (``None`` otherwise).
    """

    path: Path
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    contract: Contract = field(default_factory=Contract)
    max_profile_batch: int | None = None

    @property
    def classes(self) -> list[str]:
        """Class names in logit order."""
        return list(self.contract.classes)

    @property
    def preprocess(self) -> PreprocessConfig:
        """The preprocessing (``x = (pixel * scale - mean) / std`` per channel, see
        :class:`~segedge.contract.PreprocessConfig`)."""
        return self.contract.preprocess

    @property
    def precision(self) -> Precision:
        """Numeric precision of the artifact."""
        return self.contract.precision

    def parameters(self) -> dict[str, str]:
        """The contract as Triton config ``parameters``: ``segedge.``-prefixed strings."""
        return self.contract.to_props()


def _onnx_tensor(value) -> TensorSpec:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    if tensor.elem_type not in ONNX_TO_TRITON:
        raise ModelFormatError(f"tensor {value.name!r} has ONNX element type {tensor.elem_type}, which has no Triton equivalent here")
    return TensorSpec(value.name, ONNX_TO_TRITON[tensor.elem_type], dims)


def onnx_info(model, path: Path) -> ArtifactInfo:
    """:class:`ArtifactInfo` of a loaded ``onnx.ModelProto`` (``path``: where it came from).

    Raises:
        ModelFormatError: not a single-input segmentation model, or a malformed contract.
    """
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_onnx_tensor(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_onnx_tensor(v) for v in model.graph.output)
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 4:
        raise ModelFormatError(f"{path}: expected one (N, 3, H, W) input and (N, C, H, W) logits, found inputs "
                               f"{[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}")
    _, _, h, w = inputs[0].shape
    contract = Contract.from_onnx(model, str(path), fallback_size=(h if h > 0 else None, w if w > 0 else None),
                                  fallback_precision=Precision.FP16 if inputs[0].dtype == "TYPE_FP16" else Precision.FP32)
    if contract.num_classes != outputs[0].shape[1]:
        raise ModelFormatError(f"{path}: {contract.num_classes} classes in its contract but {outputs[0].shape[1]} logit channels")
    return ArtifactInfo(path, "onnx", inputs, outputs, contract)


def read_artifact(path: str | os.PathLike[str]) -> ArtifactInfo:
    """Read an ``.onnx`` file, or an ``.engine`` / ``.plan`` with its JSON sidecar.

    Raises:
        ModelFormatError: missing, corrupt, not a single-input segmentation model, or an
            engine without its sidecar.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from segedge.onnx.metadata import load_onnx

        return onnx_info(load_onnx(path), path)
    if path.suffix.lower() not in (".engine", ".plan"):
        raise ModelFormatError(f"{path}: expected an .onnx file or a TensorRT .engine/.plan")
    from segedge.engine.sidecar import read_engine, sidecar_path

    if not path.is_file() or not sidecar_path(path).is_file():
        raise ModelFormatError(f"{path}: engine or its sidecar {sidecar_path(path).name} is missing (segedge build-engine writes both)")
    try:
        _, info = read_engine(path)  # the sidecar, checked to describe this engine
        _, c, h, w = info.profile["max"]
        max_batch = int(info.profile["max"][0])
    except (KeyError, ValueError, TypeError, InputError) as exc:
        raise ModelFormatError(f"{sidecar_path(path)}: not a segedge engine sidecar ({exc})") from None
    contract = info.contract
    if not contract.declared:  # a foreign ONNX's engine: defaults at the engine's own input size
        contract = Contract.from_metadata(info.metadata, str(sidecar_path(path)), fallback_size=(h, w), fallback_precision=info.precision)
    # segedge engines keep float32 input and output at every precision (FP16 and INT8 live inside)
    inputs = (TensorSpec(info.input_name or "input", "TYPE_FP32", (-1, c, h, w)),)
    outputs = (TensorSpec("logits", "TYPE_FP32", (-1, contract.num_classes, h, w)),)
    return ArtifactInfo(path, "plan", inputs, outputs, contract, max_profile_batch=max_batch)
