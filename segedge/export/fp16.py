"""FP16 ONNX: the form a strongly typed TensorRT network builds as FP16.

Weights and activations become float16; the graph input and output stay float32 (a Cast
at each edge), so callers feed and read float32 as with the FP32 model. Conversion by
ONNX Runtime's ``float16.convert_float_to_float16`` (a maintained converter, not ours).

The convolutions of the first layer (the one reading the image) stay FP32 by default, with
FP32 weights; the converter still passes the tensors between nodes through FP16 casts, so
this is FP32 arithmetic in the first layer, not an FP32 first stage. Measured on
the embedded segnet-dsc (test split of the Pet sample, 298 images): argmax agreement with
PyTorch 99.467% all-FP16, 99.509% with the first layer in FP32, 99.519% with the first two;
keeping the last layer in FP32 instead changes nothing (99.468%), nor does the input
BatchNorm (99.406%). The first layer sees the raw pixels: FP16 rounding there (10-bit
mantissa) is carried into every later max-pooling decision, and max-unpooling turns a flipped
near-tie into a moved value. It costs little: 3 input channels at full resolution. The gain
is small (0.04 points of agreement) and measured on one model and data set; ``fp32_layers=0``
gives a pure FP16 model.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from segedge._io import atomic_path
from segedge.errors import ExportError
from segedge.export.layers import conv_layers
from segedge.contract import Contract, Precision
from segedge.export.metadata import load_onnx


def to_fp16(model: onnx.ModelProto, fp32_layers: int = 1) -> onnx.ModelProto:
    """An FP16 copy of an FP32 model with float32 input/output and ``segedge.precision=fp16``.

    Args:
        model: FP32 model from ``segedge export``.
        fp32_layers: how many convolution layers, from the input, stay FP32 (see the module
            docstring for why the first does by default; 0: everything FP16).

    Raises:
        ExportError: the converter failed or produced an invalid graph.
    """
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    contract = Contract.from_onnx(model)
    kept = [node for convs in list(conv_layers(model).values())[:fp32_layers] for node in convs]
    try:
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False, node_block_list=kept)
        # the converter leaves stale value_info around blocked (FP32) nodes; shape inference redoes it
        del converted.graph.value_info[:]
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


def convert_fp16(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Write an FP16 copy of an FP32 ONNX file (see :func:`to_fp16`), atomically.

    Raises:
        ModelFormatError: unreadable input.
        ExportError: the converter or the checker failed.
    """
    converted = to_fp16(load_onnx(onnx_path))
    with atomic_path(output) as tmp:
        onnx.save(converted, str(tmp))
    return Path(output)
