"""Inspect (``segedge inspect``): what an artifact is, before anyone deploys it.

For an ONNX file: inputs and outputs, opset, op histogram, parameters, GMACs at the
model's own input size (batch 1), precision, unpool form, segedge metadata and the
TensorRT lint. For a checkpoint: model, parameters, preprocessing and training record. For
an engine: its sidecar.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from segedge.contract import Target
from segedge.errors import InputError
from segedge.onnx.lint import lint_tensorrt
from segedge.onnx.metadata import read_metadata
from segedge.onnx.artifact import open_onnx

if TYPE_CHECKING:
    from segedge.engine.sidecar import EngineInfo

WEIGHT_OPS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "BatchNormalization": 1}


def _tensor_desc(info: onnx.ValueInfoProto) -> dict[str, Any]:
    t = info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return {"name": info.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": shape}


def onnx_macs(model: onnx.ModelProto, height: int, width: int) -> tuple[int, int]:
    """Multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul nodes for one image of
    ``height x width`` and the number of weight parameters they and BatchNormalization hold
    (quantized weights are followed through their DequantizeLinear).

    Returns:
        ``(macs, parameters)``.
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, dims[1].dim_value or 3, height, width)):
        if not dim.HasField("dim_value"):  # only symbolic dims take the given size
            dim.Clear()
            dim.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    }
    inits = {init.name: init for init in inferred.graph.initializer}
    producer = {out: n for n in inferred.graph.node for out in n.output}

    def weight(name: str) -> onnx.TensorProto | None:
        node = producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            name = node.input[0]
        return inits.get(name)

    macs = params = 0
    seen: set[str] = set()
    for node in inferred.graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
            continue
        for name in node.input[1:]:
            w = weight(name) if name else None
            if w is not None and w.name not in seen:
                seen.add(w.name)
                params += int(np.prod(w.dims))
        w = weight(node.input[1])
        out = shapes.get(node.output[0], [])
        if w is None or not out or 0 in out:
            continue
        if node.op_type == "Conv":
            macs += int(np.prod(out)) * int(np.prod(w.dims[1:]))
        elif node.op_type == "ConvTranspose":
            in_shape = shapes.get(node.input[0], [])
            macs += int(np.prod(in_shape)) * int(np.prod(w.dims[1:])) if in_shape else 0
        elif node.op_type in ("Gemm", "MatMul"):
            macs += int(np.prod(out)) * int(w.dims[0])
    return macs, params


@dataclass
class ArtifactInfo:
    """What :func:`inspect_artifact` found; ``to_dict()`` is ``segedge inspect --json``'s object."""

    artifact: str  # the path as given
    kind: str  # "onnx" | "checkpoint" | "tensorrt engine"
    size_mb: float  # file size in MB (10^6 bytes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``artifact``, ``kind``, ``size_mb``, then the kind's own fields in
        declaration order."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


@dataclass
class OnnxInfo(ArtifactInfo):
    """An ONNX model."""

    opset: int | None = None  # ai.onnx opset
    producer: str = ""  # producer name and version
    inputs: list[dict[str, Any]] = field(default_factory=list)  # {"name", "dtype", "shape"} per graph input
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the same per graph output
    ops: dict[str, int] = field(default_factory=dict)  # op type -> node count, most frequent first
    parameters: int = 0  # weights of Conv/ConvTranspose/Gemm/MatMul/BatchNormalization
    gmacs: float = 0.0  # 10^9 multiply-accumulates for one image at ``gmacs_at``
    gmacs_at: list[int] = field(default_factory=list)  # [height, width] in pixels
    precision: str = "unknown"  # Precision value from the contract, or "unknown"
    target: str = "unknown"  # Target value from the contract (or inferred from MaxUnpool), or "unknown"
    metadata: dict[str, str] = field(default_factory=dict)  # segedge metadata_props as stored
    lint: dict[str, Any] = field(default_factory=dict)  # TensorRT lint: {"summary", "issues"}


@dataclass
class CheckpointInfo(ArtifactInfo):
    """A segedge checkpoint."""

    model: str = ""  # registry name
    parameters: int = 0  # trainable and fixed parameters
    preprocess: dict[str, Any] = field(default_factory=dict)  # PreprocessConfig.to_dict()
    classes: list[str] = field(default_factory=list)  # class names, index order
    meta: dict[str, Any] = field(default_factory=dict)  # training record without the per-epoch history
    resumable: bool = False  # holds optimiser state (``segedge train --resume``)


@dataclass
class EngineArtifactInfo(ArtifactInfo):
    """A TensorRT engine: its sidecar."""

    sidecar: EngineInfo | None = None  # the engine's sidecar (segedge.engine.sidecar)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "kind": self.kind, "size_mb": self.size_mb, **(asdict(self.sidecar) if self.sidecar is not None else {})}


def inspect_artifact(path: str | os.PathLike[str]) -> ArtifactInfo:
    """Describe a ``.onnx``, ``.pt`` or ``.engine`` artifact.

    Returns:
        :class:`OnnxInfo`, :class:`CheckpointInfo` or :class:`EngineArtifactInfo`; ``to_dict()`` is
        what ``segedge inspect --json`` prints.

    Raises:
        InputError: unknown suffix or missing file.
        ModelFormatError, CheckpointError: unreadable artifact.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        source = open_onnx(path, segmentation=False)  # once: any graph is described, segmentation or not
        model, contract = source.model, source.contract
        meta = read_metadata(model)  # as stored, for display
        dims = model.graph.input[0].type.tensor_type.shape.dim
        static = [d.dim_value for d in dims[2:4]] if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:4]) else None
        size = static or list(contract.input_size)
        macs, params = onnx_macs(model, *size)
        lint = lint_tensorrt(model)
        init_names = {i.name for i in model.graph.initializer}
        return OnnxInfo(
            artifact=str(path),
            kind="onnx",
            size_mb=path.stat().st_size / 1e6,
            opset=next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
            producer=f"{model.producer_name} {model.producer_version}".strip(),
            inputs=[_tensor_desc(i) for i in model.graph.input if i.name not in init_names],
            outputs=[_tensor_desc(o) for o in model.graph.output],
            ops=dict(Counter(n.op_type for n in model.graph.node).most_common()),
            parameters=params,
            gmacs=macs / 1e9,
            gmacs_at=size,
            precision=contract.precision.value if contract.declared else "unknown",
            target=contract.target.value if contract.target else (
                Target.ONNXRUNTIME.value if any(n.op_type == "MaxUnpool" for n in model.graph.node) else "unknown"
            ),
            metadata=meta,
            lint={"summary": lint.summary(), "issues": [str(i) for i in lint.issues]},
        )
    if suffix in (".pt", ".pth"):
        from segedge.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        return CheckpointInfo(
            artifact=str(path),
            kind="checkpoint",
            size_mb=path.stat().st_size / 1e6,
            model=ckpt.model_name,
            parameters=sum(p.numel() for p in ckpt.model.parameters()),
            preprocess=ckpt.preprocess.to_dict(),
            classes=list(ckpt.classes),
            meta={k: v for k, v in ckpt.meta.items() if k != "history"},
            resumable="optimizer" in ckpt.raw,
        )
    if suffix in (".engine", ".plan"):
        from segedge.engine.build import load_engine_info

        return EngineArtifactInfo(str(path), "tensorrt engine", path.stat().st_size / 1e6, load_engine_info(path))
    raise InputError(f"cannot inspect {path}: expected .onnx, .pt or .engine")

