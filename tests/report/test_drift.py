"""The drift report: scores from one confusion matrix per model, agreement with the reference."""

import json

import numpy as np
import pytest

from segedge.report.drift import compare, load_eval_data
from segedge.report.metrics import ConfusionMatrix
from segedge.report.render import to_markdown, write_report
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(embedded, exported_onnx, pet_root):
    data = load_eval_data(pet_root, "test", limit=12)
    return compare(TorchRunner(embedded), [OnnxRuntimeRunner(exported_onnx)], data, latency_runs=5), data


def test_reference_scores_match_an_independent_confusion_matrix(report, embedded):
    result, data = report
    from segedge.data.transforms import resize_labels

    runner = TorchRunner(embedded)
    pred = runner.predict(data.images)
    truth = np.stack([resize_labels(lab, 128, 128) for lab in data.labels])
    expected = ConfusionMatrix(3).update(pred, truth)
    ref = result.models[0]
    assert ref.is_reference and ref.agreement == 1.0
    assert ref.pixel_accuracy == pytest.approx(expected.pixel_accuracy())
    assert ref.miou == pytest.approx(expected.miou())
    assert ref.pixel_accuracy == pytest.approx(float((pred == truth).mean()))


def test_onnx_candidate_agrees_with_the_reference(report):
    result, _ = report
    candidate = result.models[1]
    assert candidate.backend == "onnxruntime" and candidate.precision == "fp32"
    assert candidate.agreement >= 0.999
    assert abs(candidate.pixel_accuracy - result.models[0].pixel_accuracy) < 0.002
    assert candidate.latency_ms["p99"] >= candidate.latency_ms["p50"] > 0
    assert candidate.size_mb == pytest.approx(7.07, abs=0.5)


def test_json_and_markdown_are_written_from_the_same_data(report, tmp_path):
    result, _ = report
    json_path, md_path = write_report(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["schema_version"] == 1 and len(data["models"]) == 2
    for model in data["models"]:
        assert {"name", "backend", "precision", "pixel_accuracy", "miou", "iou_per_class", "agreement", "latency_ms", "size_mb"} <= set(model)
        assert set(model["latency_ms"]) >= {"p50", "p99"}
    markdown = md_path.read_text()
    assert markdown == to_markdown(result)
    assert f"{100 * result.models[1].agreement:.3f}%" in markdown


def test_unlabelled_video_reports_agreement_only(embedded, exported_onnx, libby_video):
    data = load_eval_data(libby_video, every=10)
    assert data.labels is None and len(data.images) == 5
    result = compare(TorchRunner(embedded), [OnnxRuntimeRunner(exported_onnx)], data, latency_runs=2)
    assert result.models[1].pixel_accuracy is None and result.models[1].agreement > 0.99
    assert "n/a" in to_markdown(result)
