"""The drift report on real data: scores from one confusion matrix per model, agreement with
the reference, worst cases, per-class deltas, speed."""

import numpy as np
import pytest

from segedge.data.transforms import resize_labels
from segedge.errors import InputError
from segedge.report.drift import ARTICLE, FULL_TEST_SPLIT, compare, load_eval_data
from segedge.report.metrics import ConfusionMatrix
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(embedded, exported_onnx, pet_root):
    data = load_eval_data(pet_root, "test", limit=8)
    return compare(TorchRunner(embedded), [OnnxRuntimeRunner(exported_onnx)], data, latency_runs=3, warmup=1, worst=3), data


def test_reference_scores_match_an_independent_confusion_matrix(report, embedded):
    result, data = report
    runner = TorchRunner(embedded)
    samples = list(data)
    pred = runner.predict([image for _, image, _ in samples])
    truth = np.stack([resize_labels(labels, 128, 128) for _, _, labels in samples])
    expected = ConfusionMatrix(3).update(pred, truth)
    ref = result.models[0]
    assert ref.is_reference and ref.agreement == 1.0 and ref.logits_error is None
    assert ref.pixel_accuracy == pytest.approx(float((pred == truth).mean()))
    assert ref.miou == pytest.approx(expected.miou())
    assert ref.article_iou == pytest.approx(expected.article_iou(1))
    assert ref.border_f1 == pytest.approx(expected.f1(2))
    assert ref.confusion == expected.matrix.tolist()
    assert result.data["images"] == len(samples) == 8 and result.data["article"] is None


def test_onnx_candidate_agrees_and_its_deltas_are_differences(report, embedded, exported_onnx):
    result, data = report
    ref, candidate = result.models
    assert candidate.backend == "onnxruntime" and candidate.precision == "fp32"
    # agreement and accuracy recomputed here from each runner's own predictions, not from the report's matrices
    samples = list(data)
    images = [image for _, image, _ in samples]
    truth = np.stack([resize_labels(labels, 128, 128) for _, _, labels in samples])
    ref_pred, cand_pred = TorchRunner(embedded).predict(images), OnnxRuntimeRunner(exported_onnx).predict(images)
    assert candidate.agreement == pytest.approx(float((ref_pred == cand_pred).mean()), abs=1e-6)
    assert candidate.agreement >= 0.999
    assert candidate.deltas["pixel_accuracy"] == pytest.approx(float((cand_pred == truth).mean() - (ref_pred == truth).mean()), abs=1e-6)
    assert abs(candidate.deltas["pixel_accuracy"]) < 0.002
    for name, delta in candidate.iou_delta_per_class.items():
        assert delta == pytest.approx(candidate.iou_per_class[name] - ref.iou_per_class[name])
    # FP32 ONNX vs PyTorch: float rounding only
    assert 0 < candidate.logits_error["max"] < 0.1
    assert candidate.logits_error["mean"] <= candidate.logits_error["p99"] <= candidate.logits_error["max"]


def test_per_image_agreement_and_worst_cases(report):
    result, _ = report
    candidate = result.models[1]
    assert len(candidate.per_image_agreement) == 8
    # mean of per-image agreement = overall agreement (all images have the same pixel count)
    assert np.mean(candidate.per_image_agreement) == pytest.approx(candidate.agreement, abs=1e-5)
    below = sorted(a for a in candidate.per_image_agreement if a < 1.0)
    assert [c.agreement for c in candidate.worst] == pytest.approx(below[:3], abs=1e-6)
    for case in candidate.worst:
        assert case.panels.shape == (256, 4 * 256 + 3 * 4, 3) and case.panels.dtype == np.uint8
        assert case.image.endswith(".png")


def test_speed_is_measured_at_batch_1_and_8(report):
    result, _ = report
    for model in result.models:
        assert set(model.speed.latency) == {"1", "8"}
        for batch, lat in model.speed.latency.items():
            assert lat.batch == int(batch) and lat.runs == len(lat.samples_ms) == 3
            assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= max(lat.samples_ms) + 1e-3
            assert lat.throughput == pytest.approx(lat.batch * 1000 * lat.runs / sum(lat.samples_ms), rel=1e-3)
        assert model.latency_ms["p50"] == model.speed.latency["1"].p50
    assert result.models[1].size_mb == pytest.approx(7.07, abs=0.5)


def test_candidate_of_another_input_size_is_refused(embedded, tmp_path, pet_root):
    import onnx
    from onnx import TensorProto, helper

    # a tiny 64x64 model (its "logits" are its input) next to the 128x128 reference
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "tiny", [x], [y])
    small = tmp_path / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), small)
    with pytest.raises(InputError, match="not comparable"):
        compare(TorchRunner(embedded), [OnnxRuntimeRunner(small)], load_eval_data(pet_root, limit=1))


def test_full_test_split_is_recognised_for_the_article_reference(tmp_path, pet_root):
    # an Oxford-IIIT Pet root whose test split lists as many images as the official one
    image = next((pet_root / "images").glob("Abyssinian_1*.jpg"))
    trimap = pet_root / "annotations" / "trimaps" / f"{image.stem}.png"
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations" / "trimaps").mkdir(parents=True)
    names = [f"cat_{i}" for i in range(FULL_TEST_SPLIT)]
    for name in names:
        (tmp_path / "images" / f"{name}.jpg").symlink_to(image)
        (tmp_path / "annotations" / "trimaps" / f"{name}.png").symlink_to(trimap)
    (tmp_path / "annotations" / "test.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
    assert load_eval_data(tmp_path, "test").full_test_split
    assert not load_eval_data(tmp_path, "test", limit=100).full_test_split
    assert not load_eval_data(pet_root, "test").full_test_split  # the 298-image sample
    assert ARTICLE["pixel_accuracy"] == {"segnet": 0.8828, "segnet-dsc": 0.8696}
