"""ONNX Runtime is an extra (`segedge[cpu]` or `segedge[gpu]`, never both): without it a command
that needs it stops with one line naming the two extras, exit code 4."""

import sys

import onnx
from onnx import TensorProto, helper
from typer.testing import CliRunner

from segedge.cli.main import app

cli = CliRunner()


def test_a_command_without_onnx_runtime_names_both_extras(tmp_path, monkeypatch, one_line_error):
    model = tmp_path / "m.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 128, 128])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 128, 128])],
    )
    onnx.save(helper.make_model(graph), str(model))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails as if not installed
    result = cli.invoke(app, ["report", "--candidates", str(model), "--data", str(tmp_path)])
    line = one_line_error(result)
    assert result.exit_code == 4
    assert "segedge[cpu]" in line and "segedge[gpu]" in line and "internal error" not in line
