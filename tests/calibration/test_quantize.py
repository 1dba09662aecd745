"""INT8 Q/DQ ONNX: the form TensorRT's explicit quantization expects, and it runs in ONNX Runtime."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from segedge.calibration.dataset import CalibrationSet, load_calibration_set
from segedge.calibration.quantize import quantize_int8
from segedge.errors import DataError
from segedge.onnx.export import read_metadata
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_onnx(tmp_path_factory, exported_onnx, embedded, pet_root):
    calibration = load_calibration_set(pet_root, embedded.preprocess, num_images=16)
    path = tmp_path_factory.mktemp("int8") / "int8.onnx"
    quantize_int8(exported_onnx, path, calibration)
    return path


def initializers(model):
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_qdq_is_symmetric_int8_with_per_channel_conv_weights(int8_onnx):
    model = onnx.load(str(int8_onnx))
    inits = initializers(model)
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq_nodes = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert q_nodes and dq_nodes
    for node in q_nodes + dq_nodes:
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        if zero_point is not None:
            assert zero_point.dtype == np.int8 and not zero_point.any()  # signed, zero point 0
    produced_by = {out: n for n in model.graph.node for out in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 40
    for conv in convs:
        for operand in conv.input[:2]:  # activation and weight both arrive through a DQ
            assert produced_by[operand].op_type == "DequantizeLinear"
        weight_dq = produced_by[conv.input[1]]
        scale = inits[weight_dq.input[1]]
        out_channels = inits[weight_dq.input[0]].shape[0]
        assert scale.shape == (out_channels,)  # per output channel
        if len(conv.input) > 2:
            assert conv.input[2] in inits  # bias stays float: no int32 bias DQ
    # the logits are not quantized: no DequantizeLinear between the last Conv and the output
    node = produced_by[model.graph.output[0].name]
    while node.op_type != "Conv":
        assert node.op_type not in ("QuantizeLinear", "DequantizeLinear")
        node = produced_by[node.input[0]]
    # the argmax search of the unpool rewrite compares un-requantized tensors only: a Q/DQ
    # on one side of an Equal would re-round it and misplace every unpooled value
    for node in model.graph.node:
        if node.op_type in ("MaxPool", "Equal", "Max"):
            assert all(produced_by.get(i) is None or produced_by[i].op_type != "DequantizeLinear" for i in node.input)


def test_int8_runs_in_onnx_runtime_and_tracks_fp32(int8_onnx, exported_onnx, embedded, pet_root):
    from segedge.data.samples import load_split_arrays

    images, _, _ = load_split_arrays(pet_root, "test", embedded.preprocess, limit=8)
    fp32 = OnnxRuntimeRunner(exported_onnx).infer(images)
    runner = OnnxRuntimeRunner(int8_onnx)
    int8 = runner.infer(images)
    assert runner.precision == "int8"
    # INT8 noise flips near-ties in pooling windows, which moves unpooled values: ~93% here;
    # a broken argmax search (Q/DQ on one side of the Equal) measured 80%
    assert (int8.argmax(1) == fp32.argmax(1)).mean() > 0.9
    assert json.loads(read_metadata(onnx.load(str(int8_onnx)))["calibration"])["images"] == 16


def test_empty_or_missing_calibration_data_is_refused(tmp_path, exported_onnx, embedded):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        load_calibration_set(tmp_path / "empty", embedded.preprocess)
    with pytest.raises(DataError):
        load_calibration_set(tmp_path / "nowhere", embedded.preprocess)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="no readable image"):
        load_calibration_set(tmp_path / "broken", embedded.preprocess)
    empty = CalibrationSet(np.empty((0, 3, 128, 128), np.float32), "nothing", [])
    with pytest.raises(DataError):
        quantize_int8(exported_onnx, tmp_path / "x.onnx", empty)
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_from_video_takes_every_kth_frame(libby_video, embedded):
    calibration = load_calibration_set(libby_video, embedded.preprocess, num_images=100, every=10)
    assert len(calibration) == 5  # 49 frames: 0, 10, 20, 30, 40
    assert calibration.names == [f"frame {i:05d}" for i in (0, 10, 20, 30, 40)]
