"""ONNX variants for servers, each a small graph edit on a copy of the model:

- :func:`with_class_map`: an extra ``classmap`` output, ``(N, H, W)`` uint8, from ArgMax over
  the class axis + Cast, so a client can ask a server for the class map instead of shipping
  ``C`` float planes over the network (Triton sends only the outputs a request names).
- :func:`with_softmax`: the logits replaced by their Softmax over the class axis, for
  DeepStream's semantic-segmentation parser, which marks a pixel -1 unless its best score
  beats ``segmentation-threshold`` (Gst-nvinfer docs); probabilities make that threshold mean
  something and ``0.0`` labels every pixel.
- :func:`fold_normalization`: per-channel ``1/std`` folded into the weights of the first
  convolution, for consumers whose preprocessing is a scalar scale and a per-channel offset
  (nvinfer: ``y = net-scale-factor * (x - offsets[c])``).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from segedge.errors import ExportError

CLASS_MAP = "classmap"


def with_class_map(model: onnx.ModelProto, logits: str, num_classes: int) -> onnx.ModelProto:
    """Copy of ``model`` with a second output ``classmap``: ``(N, H, W)`` uint8 argmax of
    ``logits`` over axis 1 (ties: the first maximum, as ``np.argmax``).

    Raises:
        ExportError: more than 256 classes (uint8 cannot hold the ids).
    """
    if num_classes > 256:
        raise ExportError(f"{num_classes} classes do not fit a uint8 class map (at most 256)")
    out = copy.deepcopy(model)
    graph = out.graph
    graph.node.extend([
        helper.make_node("ArgMax", [logits], ["segedge_argmax"], axis=1, keepdims=0, select_last_index=0, name="segedge_argmax"),
        helper.make_node("Cast", ["segedge_argmax"], [CLASS_MAP], to=TensorProto.UINT8, name="segedge_classmap"),
    ])
    dims = [d for i, d in enumerate(next(o for o in graph.output if o.name == logits).type.tensor_type.shape.dim) if i != 1]
    shape = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else None) for d in dims]
    graph.output.append(helper.make_tensor_value_info(CLASS_MAP, TensorProto.UINT8, shape))
    onnx.checker.check_model(out)
    return out


def with_softmax(model: onnx.ModelProto, logits: str, name: str = "probabilities") -> onnx.ModelProto:
    """Copy of ``model`` whose only output is ``name``: Softmax of ``logits`` over axis 1,
    ``(N, C, H, W)`` float32 in [0, 1]. Argmax is unchanged (Softmax is monotonic)."""
    out = copy.deepcopy(model)
    graph = out.graph
    old = next(o for o in graph.output if o.name == logits)
    graph.node.append(helper.make_node("Softmax", [logits], [name], axis=1, name="segedge_softmax"))
    new = copy.deepcopy(old)
    new.name = name
    del graph.output[:]
    graph.output.append(new)
    onnx.checker.check_model(out)
    return out


def fold_normalization(model: onnx.ModelProto, std: list[float]) -> onnx.ModelProto:
    """Copy of ``model`` that takes ``x * scale - mean[c]`` instead of ``(x * scale - mean[c]) / std[c]``.

    The first convolution's weights ``W[:, c]`` are divided by ``std[c]``: exact, because
    convolution is linear in each input channel and its zero padding is zero either way
    (the mean is left to the consumer's offsets, which act before padding). When the input
    feeds anything but one Conv with constant weights, a per-channel ``Mul`` by ``1/std`` is
    inserted at the input instead (same result, one more node).

    Args:
        model: a model with one ``(N, 3, H, W)`` float32 input.
        std: per-channel standard deviations in the model's channel order (after scaling).

    Raises:
        ExportError: ``std`` has a zero or the wrong length.
    """
    if len(std) != 3 or any(s == 0 for s in std):
        raise ExportError(f"std must be three non-zero values, got {std}")
    out = copy.deepcopy(model)
    graph = out.graph
    name = graph.input[0].name
    consumers = [n for n in graph.node if name in n.input]
    weights = {i.name: i for i in graph.initializer}
    inv = 1.0 / np.asarray(std, dtype=np.float64)
    if len(consumers) == 1 and consumers[0].op_type == "Conv" and consumers[0].input[1] in weights:
        init = weights[consumers[0].input[1]]
        w = numpy_helper.to_array(init)
        if w.ndim == 4 and w.shape[1] == 3 and sum(1 for n in graph.node if init.name in n.input) == 1:
            folded = (w.astype(np.float64) * inv[None, :, None, None]).astype(w.dtype)
            init.CopyFrom(numpy_helper.from_array(folded, init.name))
            onnx.checker.check_model(out)
            return out
    scaled = "segedge_input_scaled"
    for node in consumers:
        node.input[:] = [scaled if i == name else i for i in node.input]
    graph.initializer.append(numpy_helper.from_array(inv.astype(np.float32).reshape(1, 3, 1, 1), "segedge_inv_std"))
    graph.node.insert(0, helper.make_node("Mul", [name, "segedge_inv_std"], [scaled], name="segedge_normalize"))
    onnx.checker.check_model(out)
    return out
