"""segedge deploy deepstream: nvinfer keys from the contract, and an ONNX that, fed nvinfer's own
preprocessing, gives the artifact's class probabilities."""

from __future__ import annotations

import configparser

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.deploy.deepstream import DOCUMENTED_KEYS, check_nvinfer, write_deepstream
from segedge.errors import ExportError

cli = CliRunner()
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # as the voc_like fixture's contract
IMAGENET_STD = [0.229, 0.224, 0.225]


def props(config):
    parser = configparser.ConfigParser()
    parser.read_string(config.read_text())
    return parser["property"]


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def frames(h=32, w=48, n=2):
    """uint8 pixels in [0, 255], already in the model's channel order and size (nvinfer's x)."""
    return np.random.default_rng(3).integers(0, 256, (n, 3, h, w)).astype(np.float32)


def nvinfer(x, p):
    """nvinfer's preprocessing as documented: y = net-scale-factor * (x - offsets[c])."""
    offsets = np.array([float(v) for v in p["offsets"].split(";")], dtype=np.float32).reshape(1, 3, 1, 1)
    return (float(p["net-scale-factor"]) * (x - offsets)).astype(np.float32)


def test_three_classes_scale_only(tmp_path, pet_like):
    config = write_deepstream(pet_like, tmp_path / "ds", batch_size=4)
    p = props(config)
    assert set(p) <= DOCUMENTED_KEYS
    assert p["network-type"] == "2" and p["num-detected-classes"] == "3" and p["infer-dims"] == "3;32;48"
    assert p["batch-size"] == "4" and p["network-mode"] == "0" and p["model-color-format"] == "0"
    assert float(p["net-scale-factor"]) == pytest.approx(1 / 255) and p["offsets"] == "0;0;0"
    assert float(p["segmentation-threshold"]) == 0.0 and p["scaling-filter"] == "1"  # linear in the contract
    assert (config.parent / p["labelfile-path"]).read_text().splitlines() == ["c0", "c1", "c2"]
    model = config.parent / p["onnx-file"]
    assert [o.name for o in onnx.load(str(model)).graph.output] == [p["output-blob-names"]]
    x = frames()
    probs = run(model, nvinfer(x, p))
    np.testing.assert_allclose(probs, softmax(run(pet_like, x / 255)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_21_classes_imagenet_mean_std_folded(tmp_path, voc_like):
    config = write_deepstream(voc_like, tmp_path / "ds")
    p = props(config)
    assert p["num-detected-classes"] == "21" and p["model-color-format"] == "1"  # BGR contract
    assert float(p["net-scale-factor"]) == pytest.approx(1 / 255)
    assert [float(v) for v in p["offsets"].split(";")] == pytest.approx([255 * m for m in IMAGENET_MEAN], rel=1e-6)
    folded = onnx.load(str(config.parent / p["onnx-file"]))
    original = onnx.load(str(voc_like))
    assert [n.op_type for n in folded.graph.node] == [n.op_type for n in original.graph.node] + ["Softmax"]  # folded, no extra Mul
    x = frames()
    mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array(IMAGENET_STD, dtype=np.float32).reshape(1, 3, 1, 1)
    expected = softmax(run(voc_like, ((x / 255 - mean) / std).astype(np.float32)))
    np.testing.assert_allclose(run(config.parent / p["onnx-file"], nvinfer(x, p)), expected, rtol=1e-4, atol=1e-5)


def test_uniform_std_goes_into_the_scale(tmp_path, make_segmenter):
    src = make_segmenter(tmp_path / "u.onnx", 5, preprocess={"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    p = props(write_deepstream(src, tmp_path / "ds"))
    assert float(p["net-scale-factor"]) == pytest.approx(2 / 255) and p["offsets"] == "127.5;127.5;127.5"
    x = frames()
    expected = softmax(run(src, ((x / 255 - 0.5) / 0.5).astype(np.float32)))
    np.testing.assert_allclose(run(tmp_path / "ds" / p["onnx-file"], nvinfer(x, p)), expected, rtol=1e-4, atol=1e-5)


def test_check_rejects_an_undocumented_key(tmp_path, pet_like):
    config = write_deepstream(pet_like, tmp_path / "ds")
    config.write_text(config.read_text() + "segmentation-treshold=0.5\n")
    with pytest.raises(ExportError, match="segmentation-treshold"):
        check_nvinfer(config)


def test_cli(tmp_path, pet_like, one_line_error):
    result = cli.invoke(app, ["deploy", "deepstream", str(pet_like), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ds" / "config_infer_pet.txt").is_file()
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    assert "ONNX" in one_line_error(cli.invoke(app, ["deploy", "deepstream", str(engine), "-o", str(tmp_path / "d2")]))
