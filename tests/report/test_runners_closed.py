"""`segedge report` closes every runner it opened (sessions, device memory), also when a later
candidate fails to load. Runner.close is wrapped by a recorder that still calls it."""

import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner

cli = CliRunner()


@pytest.fixture
def closed(monkeypatch):
    """Names of the runners closed during the test, in order."""
    names: list[str] = []
    for cls in (TorchRunner, OnnxRuntimeRunner):
        original = cls.close

        def recording(self, _original=original):
            names.append(self.backend)
            _original(self)

        monkeypatch.setattr(cls, "close", recording)
    return names


@pytest.mark.slow
def test_report_closes_the_reference_and_the_candidates(tmp_path, exported_onnx, pet_root, closed):
    result = cli.invoke(app, [
        "report", "--candidates", str(exported_onnx), "--data", str(pet_root), "--limit", "2",
        "--latency-runs", "1", "--warmup", "0", "--worst", "0", "-o", str(tmp_path / "r"),
    ])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(closed) == ["onnxruntime", "torch"]


def test_a_candidate_that_fails_to_load_still_closes_the_loaded_ones(tmp_path, exported_onnx, closed, one_line_error):
    result = cli.invoke(app, ["report", "--candidates", str(exported_onnx), str(tmp_path / "absent.onnx"), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "absent.onnx" in one_line_error(result)
    assert closed == ["onnxruntime"]  # candidates load before the reference: only the first was opened


def test_closed_onnx_runner_releases_its_session(exported_onnx):
    runner = OnnxRuntimeRunner(exported_onnx)
    with runner:
        assert runner.session is not None
    assert runner.session is None
