"""Tiny ONNX models with segedge metadata, built in the test (no export, no TensorRT)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper


def make_onnx(path: Path, dims: list, size: tuple[int, int] = (128, 128)) -> Path:
    """An ``input (dims) -> Relu -> logits`` model with segedge metadata; ``dims`` entries
    are ints or symbolic names."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"], name="relu0")], "tiny", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"preprocess": json.dumps({"height": size[0], "width": size[1]}), "input_size": json.dumps(list(size)),
            "size_multiple": "16", "precision": "fp32", "target": "tensorrt", "classes": json.dumps(["pet", "background", "border"])}
    for key, value in meta.items():
        model.metadata_props.add(key=f"segedge.{key}", value=value)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    """Dynamic batch, fixed 3x128x128 (what `segedge export` writes by default)."""
    return make_onnx(tmp_path / "tiny.onnx", ["batch", 3, 128, 128])


@pytest.fixture
def tiny_onnx_dynamic_hw(tmp_path) -> Path:
    """Dynamic batch, height and width (`segedge export --dynamic-hw`)."""
    return make_onnx(tmp_path / "tiny-hw.onnx", ["batch", 3, "height", "width"])


@pytest.fixture
def onnx_factory(tmp_path):
    """``onnx_factory("m.onnx", [4, 3, 128, 128])`` -> path of a tiny model with that input."""
    return lambda name, dims: make_onnx(tmp_path / name, dims)
