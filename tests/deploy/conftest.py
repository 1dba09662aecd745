"""Tiny segmentation ONNX models with a segedge contract, built here with onnx.helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def tiny_segmenter(path: Path, classes: int, size=(32, 48), batch="batch", preprocess: dict | None = None,
                   precision: str = "fp32", seed: int = 0) -> Path:
    """A 3x3 Conv (3 -> classes, padding 1) + Relu + 1x1 Conv: ``(N, 3, H, W)`` -> ``(N, classes, H, W)`` logits,
    with segedge.* metadata as ``segedge export`` writes it."""
    rng = np.random.default_rng(seed)
    h, w = size
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (classes, 8, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes, h, w])],
        [w1, b1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pre = {"channel_order": "RGB", "height": h, "interpolation": "linear", "scale": 1 / 255, "width": w}
    pre.update(preprocess or {})
    meta = {"classes": json.dumps([f"c{i}" for i in range(classes)]), "preprocess": json.dumps(pre), "precision": precision,
            "palette": json.dumps([[i, i, i] for i in range(classes)])}
    for key, value in meta.items():
        model.metadata_props.add(key=f"segedge.{key}", value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def pet_like(tmp_path) -> Path:
    """3 classes, scale 1/255 only (as the embedded segnet-dsc), symbolic batch."""
    return tiny_segmenter(tmp_path / "pet.onnx", 3)


@pytest.fixture
def voc_like(tmp_path) -> Path:
    """21 classes (Pascal VOC), ImageNet mean/std after scaling, BGR input."""
    return tiny_segmenter(tmp_path / "voc.onnx", 21, preprocess={"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "channel_order": "BGR"})


@pytest.fixture
def make_segmenter():
    """:func:`tiny_segmenter` for tests that need other sizes, batch axes or contracts."""
    return tiny_segmenter
