"""What a deployment config needs from an artifact: its tensors and its ``segedge.*`` contract.

Read from an ONNX file (graph inputs/outputs and ``metadata_props``) or from a TensorRT
engine's JSON sidecar (``segedge/engine/sidecar.py``); no TensorRT is needed for either.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from segedge.errors import ModelFormatError

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
        path: the ONNX file or TensorRT engine.
        kind: ``onnx`` or ``plan``.
        inputs, outputs: graph tensors (the first output holds the ``(N, C, H, W)`` logits).
        metadata: ``segedge.*`` contract, keys without the prefix (``preprocess``, ``classes``,
            ``palette``, ``precision``, ...), values as stored (JSON text for lists).
        max_profile_batch: largest batch of a plan's optimization profile (``None`` for ONNX).
    """

    path: Path
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    max_profile_batch: int | None = None

    @property
    def classes(self) -> list[str]:
        """Class names in logit order (from ``segedge.classes``, else ``class_0..``)."""
        if "classes" in self.metadata:
            return list(json.loads(self.metadata["classes"]))
        return [f"class_{i}" for i in range(self.outputs[0].shape[1])]

    @property
    def preprocess(self) -> dict:
        """``segedge.preprocess`` as a dict: ``height``, ``width``, ``scale``, ``channel_order``
        and, for models normalised per channel, ``mean`` / ``std`` (applied after ``scale``:
        ``y = (x * scale - mean[c]) / std[c]``, in the model's channel order)."""
        if "preprocess" not in self.metadata:
            _, _, h, w = self.inputs[0].shape
            return {"height": h, "width": w, "scale": 1 / 255, "channel_order": "RGB"}
        return json.loads(self.metadata["preprocess"])

    @property
    def precision(self) -> str:
        """``fp32``, ``fp16`` or ``int8`` (from the contract; FP16 input tensors mean fp16)."""
        return self.metadata.get("precision", "fp16" if self.inputs[0].dtype == "TYPE_FP16" else "fp32")


def _onnx_tensor(value) -> TensorSpec:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    if tensor.elem_type not in ONNX_TO_TRITON:
        raise ModelFormatError(f"tensor {value.name!r} has ONNX element type {tensor.elem_type}, which has no Triton equivalent here")
    return TensorSpec(value.name, ONNX_TO_TRITON[tensor.elem_type], dims)


def onnx_info(model, path: Path) -> ArtifactInfo:
    """:class:`ArtifactInfo` of a loaded ``onnx.ModelProto`` (``path``: where it came from)."""
    from segedge.export.metadata import read_metadata

    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_onnx_tensor(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_onnx_tensor(v) for v in model.graph.output)
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 4:
        raise ModelFormatError(f"{path}: expected one (N, 3, H, W) input and (N, C, H, W) logits, found inputs "
                               f"{[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}")
    return ArtifactInfo(path, "onnx", inputs, outputs, read_metadata(model))


def read_artifact(path: str | os.PathLike[str]) -> ArtifactInfo:
    """Read an ``.onnx`` file, or an ``.engine`` / ``.plan`` with its JSON sidecar.

    Raises:
        ModelFormatError: missing, corrupt, not a single-input segmentation model, or an
            engine without its sidecar.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from segedge.export.metadata import load_onnx

        return onnx_info(load_onnx(path), path)
    if path.suffix.lower() not in (".engine", ".plan"):
        raise ModelFormatError(f"{path}: expected an .onnx file or a TensorRT .engine/.plan")
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        raise ModelFormatError(f"{path}: engine or its sidecar {sidecar.name} is missing (segedge build-engine writes both)")
    try:
        info = json.loads(sidecar.read_text())
        meta = dict(info.get("metadata", {}))
        _, c, h, w = info["profile"]["max"]
        max_batch = int(info["profile"]["max"][0])
        classes = len(json.loads(meta["classes"])) if "classes" in meta else None
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFormatError(f"{sidecar}: not a segedge engine sidecar ({exc})") from None
    if classes is None:
        raise ModelFormatError(f"{sidecar}: no classes in the engine metadata; rebuild it with segedge build-engine")
    # segedge engines keep float32 input and output at every precision (FP16 and INT8 live inside)
    inputs = (TensorSpec(info.get("input_name", "input"), "TYPE_FP32", (-1, c, h, w)),)
    outputs = (TensorSpec(info.get("output_name", "logits"), "TYPE_FP32", (-1, classes, h, w)),)
    meta.setdefault("precision", info.get("precision", "fp32"))
    return ArtifactInfo(path, "plan", inputs, outputs, meta, max_profile_batch=max_batch)
