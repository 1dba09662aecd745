"""`segedge export` and `segedge inspect` from the command line."""

import json

import pytest
import torch
from typer.testing import CliRunner

from segedge.cli.main import app

cli = CliRunner()


@pytest.mark.slow
def test_export_prints_counts_lint_and_parity_then_inspect_reads_it_back(tmp_path):
    out = tmp_path / "m.onnx"
    result = cli.invoke(app, ["export", "segnet-dsc", "-o", str(out)])  # the embedded article model, by name
    assert result.exit_code == 0, result.stderr
    assert "4 unpool pairs rewritten" in result.stdout and "TensorRT lint: clean" in result.stdout
    assert "argmax agreement 100.000%" in result.stdout
    info = json.loads(cli.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert info["opset"] == 17 and info["precision"] == "fp32" and info["target"] == "tensorrt"
    assert info["inputs"][0]["shape"] == ["batch", 3, 128, 128]
    assert info["metadata"]["model"] == "segnet-dsc" and "MaxUnpool" not in info["ops"]
    # BatchNorm folded into the convolutions: 1,749,671 PyTorch parameters become 1,744,810
    assert info["parameters"] == 1_744_810
    # depthwise-separable convs at 128x128: a hand count of the 40 convolutions' MACs
    assert 1.0 < info["gmacs"] < 1.2


@pytest.mark.slow
def test_the_default_model_exports_with_symbolic_height_and_width_and_static_pads(tmp_path):
    """segnet-lite0 is fed each frame at its own aspect: the export's height and width are
    symbolic, and TensorFlow's SAME padding is folded into the convolutions (no Pad, no
    Shape/Ceil chain computing it)."""
    out = tmp_path / "lite.onnx"
    result = cli.invoke(app, ["export", "-o", str(out), "--target", "onnxruntime"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(cli.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert info["metadata"]["model"] == "segnet-lite0"
    assert info["inputs"][0]["shape"][2:] == ["32*height_blocks", "32*width_blocks"]
    assert json.loads(info["metadata"]["preprocess"])["resize"] == "aspect"
    assert "Pad" not in info["ops"] and "Ceil" not in info["ops"] and info["ops"]["MaxUnpool"] == 4
    import onnx

    pads = [list(a.ints) for n in onnx.load(str(out)).graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "pads"]
    assert [0, 0, 1, 1] in pads and [1, 1, 2, 2] in pads  # stride 2, 3x3 and 5x5: TensorFlow's asymmetric SAME padding


def test_inspect_counts_macs_of_a_known_conv(tmp_path):
    from onnx import TensorProto, helper, save

    weight = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], [0.1] * 216)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], initializer=[weight],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "c.onnx"))
    info = json.loads(cli.invoke(app, ["inspect", str(tmp_path / "c.onnx"), "--json"]).stdout)
    # 8 * 16 * 16 outputs, 3 * 3 * 3 MACs each
    assert info["gmacs"] * 1e9 == pytest.approx(8 * 16 * 16 * 27) and info["parameters"] == 216
    assert info["gmacs_at"] == [16, 16]


def test_inspect_returns_a_dataclass_whose_dict_is_the_json(tmp_path):
    from onnx import TensorProto, helper, save

    from segedge.pipeline.inspect import OnnxInfo, inspect_artifact

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "r.onnx"))
    info = inspect_artifact(tmp_path / "r.onnx")
    assert isinstance(info, OnnxInfo) and info.ops == {"Relu": 1} and info.opset == 17
    printed = json.loads(cli.invoke(app, ["inspect", str(tmp_path / "r.onnx"), "--json"]).stdout)
    assert list(printed) == list(info.to_dict()) == [
        "artifact", "kind", "size_mb", "opset", "producer", "inputs", "outputs", "ops", "parameters",
        "gmacs", "gmacs_at", "precision", "target", "metadata", "lint",
    ]
    assert printed["inputs"] == [{"name": "x", "dtype": "float", "shape": [1, 3, 4, 4]}]


def test_export_errors_are_one_line_and_touch_nothing(tmp_path, one_line_error):
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep")
    assert "--force" in one_line_error(cli.invoke(app, ["export", "-o", str(existing)]))
    assert existing.read_bytes() == b"keep"
    assert "does not exist" in one_line_error(cli.invoke(app, ["export", "-o", str(tmp_path / "no" / "m.onnx")]))
    assert "does not exist" in one_line_error(cli.invoke(app, ["export", str(tmp_path / "absent.pt"), "-o", str(tmp_path / "a.onnx")]))
    from segedge.data.transforms import PreprocessConfig
    from segedge.models.checkpoint import save_checkpoint
    from segedge.models.registry import create_model

    path = save_checkpoint(tmp_path / "dsc.pt", create_model("segnet-dsc"), "segnet-dsc", PreprocessConfig())
    payload = torch.load(path, weights_only=True)
    payload["model"] = "segnet"  # weights of one architecture labelled as the other
    torch.save(payload, tmp_path / "other.pt")
    assert "does not fit model 'segnet'" in one_line_error(cli.invoke(app, ["export", str(tmp_path / "other.pt"), "-o", str(tmp_path / "b.onnx")]))
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:5000])
    assert "cut.pt" in one_line_error(cli.invoke(app, ["export", str(tmp_path / "cut.pt"), "-o", str(tmp_path / "c.onnx")]))
    # nothing was written: no ONNX but the one that was there, and no temporary file left behind
    # (atomic writes use hidden ".<name>.*.tmp" files, which a plain glob would not list)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pt", "dsc.pt", "m.onnx", "other.pt"]
