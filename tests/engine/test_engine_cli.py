"""`segedge build-engine`: asking for an engine where TensorRT is absent, builder options,
and the ONNX Runtime artifact (no TensorRT needed)."""

import shlex

import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.engine.tensorrt_api import TensorRTRequestError, tensorrt_available
from segedge.errors import BackendUnavailableError, InputError

cli = CliRunner()
no_tensorrt = pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed: the absent-TensorRT path cannot be checked")


@no_tensorrt
@pytest.mark.parametrize("suffix", [".engine", ".plan"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_without_tensorrt_is_exit_2_one_line_and_writes_nothing(tmp_path, tiny_onnx, one_line_error, suffix, precision):
    out = tmp_path / "out"
    out.mkdir()
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(out / f"m{suffix}"), "--precision", precision])
    line = one_line_error(result)
    assert result.exit_code == 2
    assert "pip install 'segedge[tensorrt-cu12]'" in line and f"m{suffix}" in line and "m.onnx" in line
    assert list(out.iterdir()) == []


@no_tensorrt
def test_int8_engine_without_tensorrt_fails_before_calibrating(tmp_path, tiny_onnx, one_line_error):
    """The TensorRT check comes first: no calibration data is read, nothing is written."""
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "q.engine"), "--precision", "int8", "--calib-data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "segedge[tensorrt-cu12]" in one_line_error(result)
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "q.engine").exists()


@no_tensorrt
def test_library_call_raises_the_same_error(tmp_path, tiny_onnx):
    from segedge.pipeline.build import build_artifact

    with pytest.raises(TensorRTRequestError) as info:
        build_artifact(tiny_onnx, tmp_path / "m.engine")
    assert isinstance(info.value, BackendUnavailableError) and isinstance(info.value, InputError)
    assert info.value.exit_code == 2
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_output_needs_no_tensorrt(tmp_path, tiny_onnx):
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "copy.onnx")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (tmp_path / "copy.onnx").read_bytes() == tiny_onnx.read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-shape", "8x3x128"], "--max-shape '8x3x128' is not a shape"),
        (["--hardware-compatibility", "ampere+", "--dla-core", "0"], "not to DLA engines"),
    ],
)
def test_bad_builder_options_are_one_line(tmp_path, tiny_onnx, one_line_error, args, message):
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.engine"), *args])
    assert result.exit_code == 2 and message in one_line_error(result)
    assert not list(tmp_path.glob("m.*"))


def test_option_ranges_are_checked_by_the_parser(tmp_path, tiny_onnx):
    for args in (["--builder-optimization-level", "7"], ["--workspace", "0"], ["--hardware-compatibility", "turing+"], ["--dla-core", "-1"]):
        result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.engine"), *args])
        assert result.exit_code == 2, args


def test_every_builder_option_reaches_the_build_options(tmp_path, tiny_onnx):
    """Each engine option is parsed into BuildOptions (shown: an ONNX output names the engine
    options it ignores, as BuildOptions.cli_args renders them); BuildOptions -> IBuilderConfig
    is tested in test_builder_config.py."""
    options = [
        "--min-shape", "1x3x128x128", "--opt-shape", "2x3x128x128", "--max-shape", "16x3x128x128", "--workspace", "512",
        "--builder-optimization-level", "4", "--timing-cache", str(tmp_path / "t.cache"), "--version-compatible",
        "--hardware-compatibility", "ampere+",
    ]
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.onnx"), *options, "--calib-cache", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.stdout + result.stderr
    note = next(line for line in result.stdout.splitlines() if "engine options ignored" in line)
    assert shlex.split(note.split("builds no engine: ", 1)[1]) == options
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.onnx"), "--dla-core", "1", "--force"])  # m.onnx exists
    assert result.exit_code == 0 and "--dla-core 1" in result.stdout
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.onnx"), "--force"])
    assert result.exit_code == 0 and "engine options ignored" not in result.stdout
