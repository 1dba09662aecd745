"""FP16 ONNX: the form a strongly typed TensorRT network builds as FP16.

Weights and activations become float16; the graph input and output stay float32 (a Cast
at each edge), so callers feed and read float32 as with the FP32 model. Conversion by
ONNX Runtime's ``float16.convert_float_to_float16`` (a maintained converter, not ours),
with two things set explicitly and one cleanup of what it leaves:

- **op block list** :data:`OP_BLOCK_LIST`, empty: the converter's default list blocks
  ``Max`` and ``Min`` (besides ML ops segedge graphs never contain), which put an FP32
  island (4 Casts in, 1 out) around every window maximum of the unpool rewrite, 20 of the
  29 Casts of the embedded model. A maximum is exact in any float type (it returns one of
  its inputs), so nothing is gained in FP32.
- **the FP32 prefix** (``fp32_layers``): the first convolution layers and every node
  before them (the input BatchNorm) are blocked by name, so the FP32 layer is fed FP32 from
  the graph input, not an FP16-rounded tensor cast back.
- **cleanup**: the converter still routes FP32-to-FP32 edges through a pair of Casts
  (FP32 -> FP16 -> FP32, which rounds the tensor to FP16 on the way) and feeds blocked
  nodes their weights through Casts from FP16 initializers (weights rounded to FP16, then
  widened). Such pairs are bypassed, and blocked weights are FP32 initializers holding the
  original values. What is left are Casts where FP32 meets FP16: after the graph input (with
  ``fp32_layers=0``), after the FP32 prefix, and before the graph output.

The convolutions of the first layer stay FP32 by default. Measured on the embedded
segnet-dsc (test split of the Pet sample, 298 images, before the cleanup above): argmax
agreement with PyTorch 99.467% all-FP16, 99.509% with the first layer in FP32, 99.519% with
the first two; keeping the last layer in FP32 instead changes nothing (99.468%). The first
layer sees the raw pixels: FP16 rounding there (10-bit mantissa) is carried into every later
max-pooling decision, and max-unpooling turns a flipped near-tie into a moved value. It costs
little: 3 input channels at full resolution. ``fp32_layers=0`` gives a pure FP16 model.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import TensorProto

from segedge._io import atomic_path
from segedge.errors import ExportError
from segedge.onnx.layers import conv_layers
from segedge.contract import Contract, Precision
from segedge.onnx.metadata import load_onnx
from segedge.onnx.artifact import OnnxArtifact

# Op types the converter leaves in FP32 (passed explicitly: its default blocks Max, see above).
OP_BLOCK_LIST: tuple[str, ...] = ()


def fp32_prefix(model: onnx.ModelProto, fp32_layers: int) -> list[str]:
    """Names of the nodes that stay FP32: the first ``fp32_layers`` convolution layers and
    every node they depend on (the path from the graph input), in graph order."""
    kept = {node for convs in list(conv_layers(model).values())[:fp32_layers] for node in convs}
    producer = {out: node for node in model.graph.node for out in node.output}
    region: set[str] = set()
    stack = [node for node in model.graph.node if node.name in kept]
    while stack:
        node = stack.pop()
        if node.name in region:
            continue
        region.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer)
    return [node.name for node in model.graph.node if node.name in region]


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _remove_redundant_casts(converted: onnx.ModelProto, original: onnx.ModelProto, fp32_nodes: set[str]) -> None:
    """Bypass FP32 -> FP16 -> FP32 Cast pairs and widen-from-FP16 weight Casts (in place)."""
    graph = converted.graph
    producer = {out: node for node in graph.node for out in node.output}
    fp32_sources = {i.name for i in graph.input} | {out for n in graph.node if n.name in fp32_nodes for out in n.output}
    originals = {i.name: i for i in original.graph.initializer}
    initializers = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    replace: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != TensorProto.FLOAT or node.output[0] in outputs:
            continue
        source = node.input[0]
        before = producer.get(source)
        if before is not None and before.op_type == "Cast" and before.input[0] in fp32_sources:
            replace[node.output[0]] = before.input[0]  # FP32 -> FP16 -> FP32: use the FP32 tensor
        elif source in initializers and source in originals and originals[source].data_type == TensorProto.FLOAT:
            replace[node.output[0]] = source + "_fp32"  # the original FP32 weight, no Cast
            if source + "_fp32" not in initializers:
                weight = TensorProto()
                weight.CopyFrom(originals[source])
                weight.name = source + "_fp32"
                graph.initializer.append(weight)
                initializers[weight.name] = weight
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in replace:
                node.input[i] = replace[name]
    # drop what no longer has a consumer (the bypassed Casts and FP16 copies of FP32 weights)
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def to_fp16(model: onnx.ModelProto, fp32_layers: int = 1, contract: Contract | None = None) -> onnx.ModelProto:
    """An FP16 copy of a model with float32 input/output and ``segedge.precision=fp16``.

    Args:
        model: FP32 model from ``segedge export`` (or its Q/DQ INT8 form at opset 19+,
            whose scales then become FP16 too, see :func:`segedge.calibration.quantize`).
        fp32_layers: how many convolution layers, from the input, stay FP32 together with
            the nodes before them (see the module docstring; 0: everything FP16).

    Returns:
        The converted model; Casts only where FP32 meets FP16 (see the module docstring).

    Raises:
        ExportError: the converter failed or produced an invalid graph.
    """
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    contract = contract or Contract.from_onnx(model)
    kept = fp32_prefix(model, fp32_layers)
    try:
        converted = convert_float_to_float16(
            model, keep_io_types=True, disable_shape_infer=False, op_block_list=list(OP_BLOCK_LIST), node_block_list=kept,
        )
        # the converter leaves stale value_info around blocked (FP32) nodes; shape inference redoes it
        del converted.graph.value_info[:]
        _remove_redundant_casts(converted, model, set(kept))
        # the converter appends the edge Casts at the end of the node list; restore topological order
        graph_model = ir.from_proto(converted)
        graph_model.graph.sort()
        converted = onnx.shape_inference.infer_shapes(ir.to_proto(graph_model), strict_mode=True)
        extra = {**contract.extra, **({"fp32_nodes": ",".join(kept)} if kept else {})}
        contract.replace(precision=Precision.FP16, extra=extra).write_onnx_step(converted, "precision", "fp32_nodes")
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise ExportError(f"FP16 conversion failed: {str(exc).splitlines()[0][:300]}") from None
    return converted


def convert_fp16(onnx_path: str | os.PathLike[str] | OnnxArtifact, output: str | os.PathLike[str]) -> Path:
    """Write an FP16 copy of an FP32 ONNX file (see :func:`to_fp16`), atomically.

    Args:
        onnx_path: the FP32 ONNX, or that file already opened (:func:`~segedge.onnx.artifact.open_onnx`).
        output: destination ``.onnx``.

    Raises:
        ModelFormatError: unreadable input.
        ExportError: the converter or the checker failed.
    """
    if isinstance(onnx_path, OnnxArtifact):
        converted = to_fp16(onnx_path.model, contract=onnx_path.contract)
    else:
        converted = to_fp16(load_onnx(onnx_path))
    with atomic_path(output) as tmp:
        onnx.save(converted, str(tmp))
    return Path(output)
