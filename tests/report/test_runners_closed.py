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


def _tiny(path, seed=0):
    """A 16x16 1x1-convolution segmenter with a segedge contract (no export needed)."""
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from segedge.contract import Contract, PreprocessConfig

    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((3, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["logits"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    Contract(preprocess=PreprocessConfig(16, 16), model="tiny").write_onnx(model)
    onnx.save(model, str(path))
    return path


def test_compare_closes_the_runners_it_loaded_and_only_those(tmp_path, closed):
    """Issue 24, item 12: compare() never closed runners it loaded from paths."""
    import numpy as np

    import segedge

    reference, candidate = _tiny(tmp_path / "ref.onnx"), _tiny(tmp_path / "cand.onnx", seed=1)
    mine = OnnxRuntimeRunner(_tiny(tmp_path / "mine.onnx", seed=2))
    frames = [np.random.default_rng(i).integers(0, 256, (24, 32, 3), np.uint8) for i in range(2)]
    report = segedge.compare(str(reference), [str(candidate), mine], frames, latency_runs=1)
    assert len(report.models) == 3
    assert closed == ["onnxruntime", "onnxruntime"]  # the reference and the candidate it opened
    assert mine.session is not None  # the caller's runner stays open
    mine.close()


def test_run_closes_the_reference_runner(tmp_path, closed):
    """Issue 24, item 12: `run --reference` never closed the reference runner."""
    import cv2
    import numpy as np

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (24, 32, 3), np.uint8))
    model, reference = _tiny(tmp_path / "m.onnx"), _tiny(tmp_path / "ref.onnx", seed=1)
    result = cli.invoke(app, ["run", "-s", str(frames), "-e", str(model), "--reference", str(reference), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert closed == ["onnxruntime", "onnxruntime"]  # the live model and the reference
