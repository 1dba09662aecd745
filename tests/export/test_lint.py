"""The TensorRT parser lint flags what the parser rejects, by node name."""

import onnx
import pytest
from onnx import TensorProto, helper

from segedge.onnx.lint import lint_tensorrt


def model_of(nodes, inputs, outputs, opset=17, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, dtype=TensorProto.FLOAT, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def test_a_plain_conv_relu_pool_graph_is_clean():
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], [1.0] * 9)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    report = lint_tensorrt(model_of(nodes, [vi("x")], [vi("y", shape=(1, 3, 4, 4))], initializers=[weight]))
    assert report.ok and not report.issues


def test_pool_indices_and_maxunpool_are_errors_naming_the_nodes():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["v", "i"], name="enc_pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxUnpool", ["v", "i"], ["y"], name="dec_unpool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    report = lint_tensorrt(model_of(nodes, [vi("x")], [vi("y")]))
    names = {issue.node for issue in report.errors}
    assert names == {"enc_pool", "dec_unpool"} and not report.ok
    assert any("Indices" in issue.message for issue in report.errors)


def test_uint8_inside_the_network_and_nonzero_zero_points_are_errors():
    zero = helper.make_tensor("zp", TensorProto.INT8, [], [3])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    nodes = [
        helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TensorProto.UINT8),
        helper.make_node("Cast", ["u"], ["f"], name="back", to=TensorProto.FLOAT),
        helper.make_node("QuantizeLinear", ["f", "s", "zp"], ["q"], name="quant"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant"),
    ]
    report = lint_tensorrt(model_of(nodes, [vi("x")], [vi("y")], initializers=[zero, scale]))
    assert {i.node for i in report.errors} >= {"to_u8", "quant", "dequant"}


def test_opset_and_unsupported_ops():
    nodes = [helper.make_node("NonZero", ["x"], ["y"], name="nz"), helper.make_node("Det", ["x"], ["d"], name="det")]
    report = lint_tensorrt(model_of(nodes, [vi("x")], [vi("y", TensorProto.INT64, (4, 192)), vi("d", shape=(1, 3))], opset=17))
    assert [i.node for i in report.errors] == ["det"]


@pytest.mark.parametrize("opset", [21, 22, 24])
def test_opsets_above_20_are_errors_for_tensorrt_10(opset):
    """TensorRT 10.0 (and JetPack 6's 10.3) parse opset 9..20 (onnx-tensorrt docs/operators.md):
    a newer opset fails the parse, so it is an error unless the target is 10.15+ / 11."""
    model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [vi("x")], [vi("y")], opset=opset)
    for version in (None, "10.3.0", "10.0.1"):
        report = lint_tensorrt(model, version)
        assert not report.ok and [i.message for i in report.errors if f"opset {opset}" in i.message], (version, report.issues)
    for version in ("10.15.1", "11.4.0"):
        assert lint_tensorrt(model, version).ok, version


@pytest.mark.parametrize("opset", [9, 17, 19, 20])
def test_opsets_every_supported_tensorrt_reads_are_clean(opset):
    model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [vi("x")], [vi("y")], opset=opset)
    assert lint_tensorrt(model).issues == []


def test_opset_25_is_refused_everywhere_and_8_too():
    for opset in (8, 25):
        model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [vi("x")], [vi("y")], opset=opset)
        assert not lint_tensorrt(model, "11.4.0").ok and not lint_tensorrt(model).ok


