"""``segedge report`` and ``segedge bench`` through the command line."""

import json

import pytest
import typer
from typer.testing import CliRunner

from segedge.cli.bench import bench_command
from segedge.cli.main import app
from segedge.report.schema import validate_report

cli = CliRunner()


@pytest.mark.slow
def test_report_writes_three_files_with_video_drift(tmp_path, exported_onnx, pet_root, libby_video, libby_dir):
    out = tmp_path / "report"
    result = cli.invoke(app, [
        "report", "--candidates", str(exported_onnx), "--data", str(pet_root), "--limit", "2",
        "--video", str(libby_video), "--gt-masks", str(libby_dir), "--every", "24",
        "--latency-runs", "2", "--warmup", "0", "-o", str(out),
    ])
    assert result.exit_code == 0, result.stdout + result.stderr
    for name in ("report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    validate_report(data)
    assert data["data"]["images"] == 2 and data["video"]["frames"] == 2  # frames 0 and 24; --limit caps at 2
    assert data["video"]["reference_iou"] is not None
    assert "b8 p99 ms" in result.stdout and "mean pet IoU" in result.stdout
    assert exported_onnx.name in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--candidates", "x.onnx"], "--data"),
        (["--candidates", "x.onnx", "--data", "d", "--gt-masks", "m"], "--gt-masks needs --video"),
    ],
)
def test_missing_inputs_are_one_line(args, message, one_line_error):
    assert message in one_line_error(cli.invoke(app, ["report", *args]))


@pytest.mark.slow
def test_bench_prints_the_speed_table(exported_onnx, pet_root):
    bench = typer.Typer()
    bench.command("bench")(bench_command)
    bench.command("unused")(lambda: None)  # two commands: the first is addressed by name, as in segedge
    result = cli.invoke(bench, ["bench", str(exported_onnx), "--data", str(pet_root), "--runs", "2", "--warmup", "0"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "b1 p50 ms" in result.stdout and "b8 img/s" in result.stdout
    row = next(line for line in result.stdout.splitlines() if exported_onnx.name in line)
    cells = [c.strip() for c in row.split("│")[2:-1]]
    p50, p90, p99 = map(float, cells[:3])
    assert 0 < p50 <= p90 <= p99
    assert cells[4] == "2"  # batch-1 runs
