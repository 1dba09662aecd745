"""FP16 ONNX: the form a strongly typed TensorRT network builds as FP16.

Weights and activations become float16; the graph input and output stay float32 (a Cast
at each edge), so callers feed and read float32 as with the FP32 model. Conversion by
ONNX Runtime's ``float16.convert_float_to_float16`` (a maintained converter, not ours).
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from segedge._io import atomic_path
from segedge.errors import ExportError
from segedge.export.metadata import load_onnx, read_metadata, set_metadata


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP16 copy of an FP32 model with float32 input/output and ``segedge.precision=fp16``.

    Raises:
        ExportError: the converter failed or produced an invalid graph.
    """
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    metadata = read_metadata(model)
    try:
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
        # the converter appends the edge Casts at the end of the node list; restore topological order
        graph_model = ir.from_proto(converted)
        graph_model.graph.sort()
        converted = ir.to_proto(graph_model)
        metadata["precision"] = "fp16"
        set_metadata(converted, metadata)
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
