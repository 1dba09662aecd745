"""An artifact is opened once (issue 24, item 6): the ONNX Runtime runner read an ONNX's metadata
through custom_metadata_map twice, checked its I/O up to three times and parsed the calibration
record as raw JSON; build-engine loaded the ONNX four times and checked the DLA rules three times.

The counters wrap the real functions (each call still runs), as tests/report/test_runners_closed.py
wraps Runner.close."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import segedge.contract
import segedge.engine.options
import segedge.pipeline.build
from segedge.cli.main import app
from segedge.contract import Contract, PreprocessConfig

ROOT = Path(__file__).resolve().parents[2]


def _model(path: Path, contract: Contract | None = None) -> Path:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["logits"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (contract or Contract(preprocess=PreprocessConfig(16, 16), model="tiny", target="tensorrt")).write_onnx(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def count(monkeypatch):
    """``count(key, owner, name, ...)`` wraps each ``owner.name`` (the function and every module
    that imported it by name) so that calls are counted under ``key``; returns the counters."""
    calls: dict[str, int] = {}

    def wrap(key, *pairs):
        calls.setdefault(key, 0)
        for owner, name in zip(pairs[::2], pairs[1::2]):
            original = getattr(owner, name, None)
            if original is None:
                continue

            def counted(*args, _original=original, **kwargs):
                calls[key] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(owner, name, counted)
        return calls

    return wrap


@pytest.mark.parametrize("declared", [True, False])
def test_the_onnxruntime_runner_opens_its_file_once(tmp_path, count, monkeypatch, declared):
    import segedge.onnx.artifact
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    path = _model(tmp_path / "m.onnx", None if declared else Contract(declared=False))
    if not declared:  # a foreign model: no segedge record at all
        model = onnx.load(str(path))
        del model.metadata_props[:]
        onnx.save(model, str(path))
    calls = count("load", onnx, "load")
    count("io", segedge.onnx.artifact, "check_segmentation_io")
    reads = []
    original = segedge.contract.Contract.from_metadata.__func__
    monkeypatch.setattr(segedge.contract.Contract, "from_metadata", classmethod(lambda cls, *a, **k: reads.append(1) or original(cls, *a, **k)))
    with OnnxRuntimeRunner(path) as runner:
        assert runner.contract.declared is declared and runner.infer(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 3, 16, 16)
    assert calls["load"] <= 1 and calls["io"] == 1 and len(reads) == 1


def test_the_calibration_record_is_read_through_the_contract(tmp_path):
    record = {"method": "percentile", "target": "tensorrt", "base": "fp16"}
    contract = Contract(preprocess=PreprocessConfig(16, 16), extra={"calibration": json.dumps(record)})
    assert Contract.from_metadata(contract.to_metadata()).calibration == record
    assert Contract().calibration == {} and Contract(extra={"calibration": "[not json"}).calibration == {}


def test_build_engine_opens_the_onnx_once_and_checks_the_dla_rules_once(tmp_path, count):
    import segedge.engine.build

    path = _model(tmp_path / "m.onnx")
    loads = count("load", onnx, "load")
    count("dla", segedge.engine.options, "check_dla", segedge.pipeline.build, "check_dla", segedge.engine.build, "check_dla")
    result = CliRunner().invoke(app, ["build-engine", str(path), "-o", str(tmp_path / "m.engine"), "--precision", "fp16",
                                      "--dla-core", "0", "--min-shape", "1x3x16x16", "--opt-shape", "1x3x16x16", "--max-shape", "1x3x16x16"])
    assert result.exit_code == 2 and "TensorRT" in result.output  # refused where TensorRT is missing, after every check
    assert loads["load"] == 1 and loads["dla"] == 1
    loads["load"] = 0
    result = CliRunner().invoke(app, ["build-engine", str(path), "-o", str(tmp_path / "m-fp16.onnx"), "--precision", "fp16"])
    assert result.exit_code == 0, result.output
    assert loads["load"] == 1  # the FP16 conversion takes the model already opened


def test_no_module_but_the_contract_reads_or_writes_segedge_metadata():
    """ONNX Runtime's custom_metadata_map and OpenVINO's rt_info were read, and ``segedge.*`` keys
    built, outside segedge/contract.py."""
    offenders = []
    for path in sorted((ROOT / "segedge").rglob("*.py")):
        if path.name == "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("custom_metadata_map", "get_rt_info", "set_rt_info", "has_rt_info"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) and str(node.values[0].value).startswith("segedge."):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: f-string key {node.values[0].value!r}...")
    assert not offenders, "read and write metadata through segedge.contract:\n" + "\n".join(offenders)
