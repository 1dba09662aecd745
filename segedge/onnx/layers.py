"""Layers of an exported graph: Conv nodes grouped by the PyTorch module they came from.

Mixed precision works on layers, not nodes: INT8 sensitivity analysis keeps a layer in float,
FP16 conversion keeps the first layer in FP32.
"""

from __future__ import annotations

import onnx


def _layer_name(node: onnx.NodeProto) -> str:
    weight = node.input[1] if len(node.input) > 1 else ""
    if not weight.endswith(".weight"):
        return node.name
    name = weight[: -len(".weight")]
    for suffix in (".depthwise_conv", ".pointwise_conv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def conv_layers(model: onnx.ModelProto) -> dict[str, list[str]]:
    """The quantizable layers of an exported model: layer name -> Conv node names, in graph order.

    A layer is the PyTorch module a convolution came from, read from its weight's name
    (``dc1.seq.0.weight`` -> ``dc1.seq.0``); the depthwise and pointwise convolutions of one
    depthwise-separable layer (``...depthwise_conv.weight``, ``...pointwise_conv.weight``)
    form one layer, since TensorRT runs them back to back and keeping half of a pair in
    float buys little. A Conv whose weight has no module name is a layer of its own.
    """
    layers: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            layers.setdefault(_layer_name(node), []).append(node.name)
    return layers
