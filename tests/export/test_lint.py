"""The TensorRT parser lint flags what the parser rejects, by node name."""

import onnx
from onnx import TensorProto, helper

from segedge.export.lint import lint_tensorrt


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
    report = lint_tensorrt(model_of(nodes, [vi("x")], [vi("y", TensorProto.INT64, (4, 192)), vi("d", shape=(1, 3))], opset=21))
    assert [i.node for i in report.errors] == ["det"]
    assert any("opset 21" in i.message and i.severity == "warning" for i in report.issues)  # fine for 10.15, not 8.6
