"""`build-engine model.onnx --precision fp16|int8 -o model.engine` wrote its intermediate ONNX to
``output.with_suffix(".onnx")``: the input itself. The input must never be overwritten."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.pipeline.build import intermediate_onnx
from segedge.errors import InputError

cli = CliRunner()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("engine", ["model.engine", "model.plan"])
def test_the_engine_intermediate_is_never_the_input(tmp_path, precision, engine):
    source = tmp_path / "model.onnx"
    target = intermediate_onnx(source, tmp_path / engine, precision)
    assert target.resolve() != source.resolve()
    assert target == tmp_path / f"model.{precision}.onnx"


def test_an_onnx_output_is_the_output(tmp_path):
    assert intermediate_onnx(tmp_path / "a.onnx", tmp_path / "b.onnx", "fp16") == tmp_path / "b.onnx"
    # FP32 into itself writes nothing: it is the same model
    assert intermediate_onnx(tmp_path / "a.onnx", tmp_path / "a.onnx", "fp32") == tmp_path / "a.onnx"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_an_output_that_is_the_input_is_refused(tmp_path, precision):
    source = tmp_path / "model.onnx"
    with pytest.raises(InputError, match="would overwrite the input"):
        intermediate_onnx(source, tmp_path / "." / "model.onnx", precision)
    with pytest.raises(InputError, match="would overwrite the input"):  # the derived name is the input
        intermediate_onnx(tmp_path / f"m.{precision}.onnx", tmp_path / "m.engine", precision)


def test_cli_fp16_over_its_own_input_is_refused_and_the_input_kept(tmp_path, tiny_onnx, one_line_error):
    before = tiny_onnx.read_bytes()
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "--precision", "fp16", "-o", str(tiny_onnx)])
    line = one_line_error(result)
    assert result.exit_code == 2 and str(tiny_onnx) in line and "input" in line
    assert tiny_onnx.read_bytes() == before


def test_cli_fp16_onnx_beside_the_input_leaves_it_intact(tmp_path, tiny_onnx):
    before = tiny_onnx.read_bytes()
    out = tmp_path / "tiny-fp16.onnx"
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "--precision", "fp16", "-o", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert tiny_onnx.read_bytes() == before and out.read_bytes() != before
