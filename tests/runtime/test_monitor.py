"""The drift monitor inside the live loop, on real video: its numbers against the drift report's,
skipping (never waiting) when the reference falls behind, and the CLI's alert and fail-below."""

import json
import re
import threading

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.cli.run import DRIFT_EXIT_CODE
from segedge.data.sources import open_source
from segedge.errors import InputError
from segedge.report.monitor import DriftMonitor, load_reference
from segedge.report.panels import PANEL_SCALE
from segedge.report.video import video_drift
from segedge.runtime.base import Runner
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.sinks import StatsSink
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live

pytestmark = pytest.mark.slow
cli = CliRunner()


@pytest.fixture(scope="module")
def int8_onnx(embedded, exported_onnx, pet_root, tmp_path_factory):
    """The embedded model quantized to Q/DQ INT8 on 8 trainval images (min-max): a real
    candidate that disagrees with the reference on some pixels of every frame."""
    from segedge.calibration.dataset import load_calibration_set
    from segedge.calibration.quantize import quantize_int8

    calibration = load_calibration_set(pet_root, embedded.preprocess, num_images=8)
    return quantize_int8(exported_onnx, tmp_path_factory.mktemp("int8") / "int8.onnx", calibration, method="minmax").path


class GatedRunner(Runner):
    """The reference, held inside ``infer`` until ``release`` is set: a reference that is
    as slow as the test needs, with no timing involved."""

    def __init__(self, real: Runner):
        self.real, self.backend = real, real.backend
        if hasattr(real, "contract"):  # runners that carry a Contract
            self.contract = real.contract
        else:
            self.preprocess_config, self.classes = real.preprocess_config, real.classes
        self.entered, self.release, self.calls = threading.Event(), threading.Event(), 0

    def _infer(self, batch, out):
        self.calls += 1
        self.entered.set()
        if not self.release.wait(60):
            raise RuntimeError("the test never released the reference")
        return self.real.infer(batch, out=out)


def test_monitor_agreement_equals_the_video_report_on_the_same_frames(tmp_path, embedded, int8_onnx, libby_video):
    results = []
    monitor = DriftMonitor(TorchRunner(embedded), every=2, wait=True, on_result=results.append)
    with open_source(str(libby_video)) as source:
        stats = run_live(OnnxRuntimeRunner(int8_onnx), source, [StatsSink(tmp_path / "s.jsonl")], LiveOptions(max_frames=12), monitor=monitor)
    report = video_drift(TorchRunner(embedded), [OnnxRuntimeRunner(int8_onnx)], libby_video, every=2, limit=6).candidates[0]

    assert [r.frame for r in results] == [0, 2, 4, 6, 8, 10]
    ours = np.array([r.agreement for r in results])
    theirs = np.array(report.per_frame_agreement)
    assert (theirs < 0.999).all()  # INT8 really disagrees somewhere: the comparison means something
    np.testing.assert_allclose(ours, theirs, atol=1e-3)  # a few pixels at most (batch 1 against batch 8)
    summary = stats.drift
    assert summary.scored == 6 and summary.skipped == 0 and summary.due == 6
    assert abs(summary.mean - float(np.mean(theirs))) < 0.001  # within 0.1 point
    assert summary.worst_frame == 2 * int(np.argmin(theirs))
    assert summary.worst == pytest.approx(theirs.min(), abs=1e-3)
    assert theirs.min() - 1e-3 <= summary.p5 <= np.percentile(theirs, 5) + 1e-3
    hud = monitor.hud_line()  # the window (10) holds all 6: its mean is the run's, its worst the run's worst
    assert f"{100 * summary.mean:.1f}%" in hud and f"worst #{summary.worst_frame} " in hud
    # the --stats file carries one drift line per scored frame, with IoU per class and the logit error
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    drift = [line["drift"] for line in lines if "drift" in line]
    assert [d["frame"] for d in drift] == [0, 2, 4, 6, 8, 10]
    assert [d["agreement"] for d in drift] == pytest.approx(list(ours), abs=1e-6)
    assert set(drift[0]["iou"]) == {"pet", "background", "border"} and all(0 < v <= 1 for v in drift[0]["iou"].values())
    assert sum("drift" not in line for line in lines) == 12  # frame lines unchanged


def test_on_a_file_run_scores_every_due_frame_and_agrees_with_the_video_report(tmp_path, embedded, int8_onnx, libby_video):
    """A file has no real-time deadline: `segedge run --reference-every 1` on it waits for the
    reference, so every due frame is scored and its mean is the one `report --video` gives."""
    reference = tmp_path / "reference.pt"
    reference.write_bytes(embedded.path.read_bytes())
    result = cli.invoke(app, ["run", "--engine", str(int8_onnx), "--source", str(libby_video), "--reference", str(reference),
                              "--reference-every", "1", "--backend", "onnxruntime"])  # the report's backend
    assert result.exit_code == 0, result.stdout + result.stderr
    found = re.search(r"(\d+) of (\d+) due frames scored; a file: the loop waits for the reference\): mean (\d+\.\d+)%", result.stdout)
    assert found, result.stdout
    scored, due, mean = int(found[1]), int(found[2]), float(found[3])
    assert scored == due == 49
    report = video_drift(TorchRunner(embedded), [OnnxRuntimeRunner(int8_onnx)], libby_video).candidates[0]
    assert abs(mean - 100 * float(np.mean(report.per_frame_agreement))) <= 0.1


def test_logit_error_is_that_of_the_two_models_on_the_frame(embedded, int8_onnx, libby_video):
    results = []
    monitor = DriftMonitor(TorchRunner(embedded), every=5, wait=True, on_result=results.append)
    candidate = OnnxRuntimeRunner(int8_onnx)
    with open_source(str(libby_video)) as source:
        run_live(candidate, source, [], LiveOptions(max_frames=6, pipelined=False), monitor=monitor)
        source.rewind()
        frames = [source.read_into() for _ in range(6)]
    assert [r.frame for r in results] == [0, 5]
    batch = candidate.preprocess(frames[5])
    difference = np.abs(candidate.infer(batch) - TorchRunner(embedded).infer(batch))
    assert results[1].logits_error["max"] == pytest.approx(float(difference.max()), rel=1e-4)
    assert results[1].logits_error["mean"] == pytest.approx(float(difference.mean()), rel=1e-4)


def test_a_slow_reference_is_skipped_never_waited_for(embedded, exported_onnx, libby_video):
    reference = GatedRunner(TorchRunner(embedded))
    delivered, results = [], []

    def on_frame(index, mask):
        delivered.append(index)
        if index == 0:  # the reference has taken frame 0 and stays busy ...
            assert reference.entered.wait(60)
        if index == 23:  # ... until every frame was delivered
            reference.release.set()

    monitor = DriftMonitor(reference, every=1, on_result=results.append)
    with open_source(str(libby_video)) as source:
        stats = run_live(OnnxRuntimeRunner(exported_onnx), source, [], LiveOptions(max_frames=24), on_frame=on_frame, monitor=monitor)
    assert delivered == list(range(24))  # the live path went on while the reference was held
    summary = stats.drift
    # frame 0 was being scored; frames 1..23 each replaced the one waiting before it
    assert summary.due == 24 and summary.skipped == 22 and summary.scored == 2
    assert [r.frame for r in results] == [0, 23] and reference.calls == 2


def test_a_reference_of_another_contract_is_refused(embedded, libby_video):
    import dataclasses

    from segedge.data.transforms import PreprocessConfig

    other = TorchRunner(dataclasses.replace(embedded, preprocess=PreprocessConfig(height=64, width=64)))
    monitor = DriftMonitor(other)
    with pytest.raises(InputError, match="cannot share one input"):
        monitor.check(TorchRunner(embedded))


def test_the_default_reference_is_the_checkpoint_recorded_in_the_artifact(embedded, exported_onnx, tmp_path):
    reference, note = load_reference("auto", OnnxRuntimeRunner(exported_onnx))
    assert reference.backend == "torch" and "exported from" in note  # the embedded checkpoint's sha256 matches


def test_cli_alert_saves_the_panel_and_fail_below_exits_6(tmp_path, int8_onnx, libby_video):
    out = tmp_path / "out.mp4"
    args = ["run", "--engine", str(int8_onnx), "--source", str(libby_video), "--max-frames", "8", "-o", str(out),
            "--reference", "auto", "--reference-every", "4", "--alert-window", "1", "--alert-below", "100"]
    result = cli.invoke(app, [*args, "--fail-below", "100"])
    assert result.exit_code == DRIFT_EXIT_CODE == 6, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    alerts = re.findall(r"drift alert at frame (\d+)", result.stderr)
    assert len(alerts) == 1  # one line per excursion below the threshold, not one per frame
    panel = cv2.imread(str(tmp_path / f"drift-alert-{int(alerts[0]):06d}.png"), cv2.IMREAD_COLOR)
    side = 128 * PANEL_SCALE
    assert panel is not None and panel.shape == (side, 3 * side + 8, 3)  # reference | candidate | disagreement
    assert (panel[:, -side:] == (0, 0, 255)).all(axis=2).any()  # disagreeing pixels in red
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "below --fail-below 100%" in errors[0]
    assert out.is_file()  # the video was finalised before the exit code

    passing = cli.invoke(app, [*args[:-4], "--fail-below", "50", "--force"])  # replaces out.mp4 of the first run
    assert passing.exit_code == 0, passing.stdout + passing.stderr
    assert re.search(r"agreement with .*: mean \d+\.\d+%, p5 \d+\.\d+%, worst \d+\.\d+% at frame \d+", passing.stdout)


def test_the_alert_panel_shows_the_image_the_model_saw():
    from segedge.data.transforms import PreprocessConfig, preprocess
    from segedge.report.monitor import input_image

    class Preprocessing:  # input_image reads only the preprocessing contract
        preprocess_config = PreprocessConfig(height=32, width=48)

    frame = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    batch = preprocess(frame, Preprocessing.preprocess_config)
    expected = cv2.resize(frame, (48, 32), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(input_image(batch, Preprocessing()), expected)


def test_a_checkpoint_candidate_is_its_own_reference(embedded):
    """`report --candidates segnet-dsc.pt` and `run -e segnet-dsc.pt --reference auto` compare the
    checkpoint with itself, not with the embedded default segnet-lite0 (another model)."""
    from segedge.report.monitor import find_reference_checkpoint

    with TorchRunner(embedded.path) as candidate:
        path, note = find_reference_checkpoint(candidate)
    assert path == embedded.path, note
    assert "itself" in note
