"""The command line: bad input gives one line and a non-zero exit, destroys nothing."""

import pytest
import torch
from typer.testing import CliRunner

from segedge.cli.main import app

cli = CliRunner()


def test_help_lists_every_command():
    result = cli.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "train", "export", "calibrate", "build-engine", "inspect", "run", "report", "bench", "doctor", "download-data"):
        assert command in result.stdout


def test_corrupt_image_as_source_is_named_and_ends_in_one_error_line(tmp_path, embedded):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "report"
    # the candidate loads (the embedded checkpoint), so the command really reaches the corrupt JPEG
    result = cli.invoke(app, ["report", "--candidates", str(embedded.path), "--data", str(folder), "-o", str(out)])
    text = result.output  # stdout and stderr in the order they were written
    lines = [line for line in text.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in text, text
    assert any("a.jpg" in line and "not a decodable image" in line for line in lines), text  # the file is named
    assert lines[-1] == f"error: {folder} yielded no readable image"
    assert not (out / "report.json").exists()


def test_missing_model_is_one_line(tmp_path, one_line_error):
    result = cli.invoke(app, ["build-engine", str(tmp_path / "x.onnx"), "-o", str(tmp_path / "y.onnx")])
    assert "x.onnx" in one_line_error(result) and result.exit_code == 2
    assert not (tmp_path / "y.onnx").exists()


@pytest.mark.slow
def test_corrupt_calibration_image_is_one_line(tmp_path, exported_onnx, one_line_error):
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    result = cli.invoke(
        app, ["build-engine", str(exported_onnx), "--precision", "int8", "--calib-data", str(folder), "-o", str(tmp_path / "m.onnx")]
    )
    assert "no readable image" in one_line_error(result)
    assert result.exit_code == 2
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_truncated_onnx_is_one_line_and_leaves_the_output_alone(tmp_path, exported_onnx, libby_video, one_line_error):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported_onnx.read_bytes()[:100_000])
    out = tmp_path / "existing.mp4"
    out.write_bytes(b"previous result")
    result = cli.invoke(app, ["run", "--engine", str(cut), "--source", str(libby_video), "-o", str(out)])
    assert "cut.onnx" in one_line_error(result) and result.exit_code == 2
    assert out.read_bytes() == b"previous result"
    result = cli.invoke(app, ["build-engine", str(cut), "--precision", "fp16", "-o", str(tmp_path / "h.onnx")])
    one_line_error(result)


def test_wrong_checkpoint_is_one_line(tmp_path, one_line_error):
    bad = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    result = cli.invoke(app, ["export", str(bad), "-o", str(out), "--force"])
    assert "matches none of the models" in one_line_error(result) and result.exit_code == 2
    assert out.read_bytes() == b"keep me"
    (tmp_path / "garbage.pt").write_bytes(b"\x80\x04 garbage")
    one_line_error(cli.invoke(app, ["export", str(tmp_path / "garbage.pt"), "-o", str(out), "--force"]))
    assert out.read_bytes() == b"keep me"


def test_missing_source_is_one_line(one_line_error):
    result = cli.invoke(app, ["run", "--source", "/no/such/clip.mp4"])
    assert result.exit_code == 5 and "clip.mp4" in one_line_error(result)


def test_bad_option_values_are_rejected_by_the_parser():
    result = cli.invoke(app, ["build-engine", "m.onnx", "-o", "x.engine", "--precision", "int4"])
    assert result.exit_code == 2 and "int4" in (result.stderr + result.stdout)


def _commands():
    """``(argv prefix, callback)`` of every command, sub-commands of groups included."""
    import typer.main

    def walk(command, prefix):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*prefix, name])
        if not getattr(command, "commands", None):
            yield prefix, command

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("argv", [c[0] for c in _commands()], ids=[" ".join(c[0]) for c in _commands()])
def test_help_paragraphs_are_wrapped_by_the_terminal_not_the_source(argv):
    """Issue 24, item 16: docstrings are hard-wrapped in the source and rich kept those line breaks,
    so `run --help` broke "the running / agreement" mid-sentence at any width. On a wide terminal
    every paragraph of a command's description is one line."""
    import inspect

    command = dict((tuple(a), c) for a, c in _commands())[tuple(argv)]
    result = cli.invoke(app, [*argv, "--help"], env={"TERMINAL_WIDTH": "2000", "COLUMNS": "2000"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    paragraphs = [" ".join(p.split()) for p in inspect.cleandoc(command.callback.__doc__ or "").split("\n\n") if p.strip()]
    assert paragraphs, f"{argv} has no description"
    for paragraph in paragraphs:
        assert any(paragraph in line for line in lines), f"{' '.join(argv)} --help breaks the paragraph {paragraph[:60]!r}... across lines"
