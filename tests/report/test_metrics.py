"""Metrics from one confusion matrix, against hand-computed cases and torchmetrics."""

import numpy as np
import pytest

from segedge.errors import InputError
from segedge.report.metrics import ConfusionMatrix, LogitsError


def test_hand_computed_example():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    m = ConfusionMatrix(3).update(pred, target)
    # rows truth, columns prediction
    assert m.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.pixel_accuracy() == pytest.approx(4 / 6)
    # IoU: class 0 = 1 / (2 + 2 - 1), class 1 = 2 / (2 + 3 - 2), class 2 = 1 / (2 + 1 - 1)
    assert m.iou_per_class() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert m.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_article_iou_drops_background_pixels_and_the_background_class_by_hand():
    # truth: pet pet bg bg border border ; pred: pet bg pet bg border pet
    target = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 0, 1, 2, 0])
    m = ConfusionMatrix(3).update(pred, target)
    # background truth pixels (positions 2, 3) are dropped: left are truth 0 0 2 2, pred 0 1 2 0.
    # pet: TP 1 (pos 0), FN 1 (pos 1 predicted bg), FP 1 (pos 5: border predicted pet) -> 1 + 1 + 1 = 3
    # border: TP 1 (pos 4), FN 1 (pos 5), FP 0 -> 2 ; micro = (1 + 1) / (3 + 2)
    assert m.article_iou(ignore=1) == pytest.approx(2 / 5)
    # the background-as-pet pixel (position 2) counts nowhere: removing it changes nothing
    keep = np.arange(6) != 2
    assert ConfusionMatrix(3).update(pred[keep], target[keep]).article_iou(ignore=1) == pytest.approx(2 / 5)


def test_border_f1_by_hand():
    target = np.array([2, 2, 2, 0, 1, 1])
    pred = np.array([2, 2, 0, 2, 2, 1])
    m = ConfusionMatrix(3).update(pred, target)
    # border: TP 2, FP 2 (positions 3 and 4), FN 1 (position 2) -> 2*2 / (4 + 2 + 1)
    assert m.f1(2) == pytest.approx(4 / 7)
    assert np.isnan(ConfusionMatrix(3).update(np.array([0]), np.array([0])).f1(2))
    with pytest.raises(InputError):
        m.f1(3)


def test_absent_class_is_left_out_of_miou():
    m = ConfusionMatrix(3).update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    iou = m.iou_per_class()
    assert np.isnan(iou[2]) and m.miou() == pytest.approx((0.5 + 0.5) / 2)


def test_batches_accumulate():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, (2, 4, 5, 5))
    whole = ConfusionMatrix(3).update(a, b)
    split = ConfusionMatrix(3).update(a[:2], b[:2]).update(a[2:], b[2:])
    assert np.array_equal(whole.matrix, split.matrix) and whole.total == 100
    assert np.array_equal(ConfusionMatrix.from_matrix(whole.matrix.tolist()).matrix, whole.matrix)


def test_out_of_range_or_mismatched_inputs_are_refused():
    with pytest.raises(InputError):
        ConfusionMatrix(3).update(np.array([3]), np.array([0]))
    with pytest.raises(InputError):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(InputError):
        ConfusionMatrix.from_matrix([[1, 2, 3]])


@pytest.mark.slow  # importing torchmetrics (and the scipy it pulls in) alone takes seconds; runs in `make test`
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_torchmetrics(seed):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification", reason="torchmetrics is not installed (pip install 'segedge[test]')")
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 3, (4, 16, 16))
    # a prediction that is right most of the time, like a real model
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 3, target.shape))
    m = ConfusionMatrix(3).update(pred, target)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    assert m.pixel_accuracy() == pytest.approx(tm.MulticlassAccuracy(3, average="micro")(p, t).item(), abs=1e-6)
    assert m.iou_per_class() == pytest.approx(tm.MulticlassJaccardIndex(3, average="none")(p, t).numpy(), abs=1e-6)
    assert m.miou() == pytest.approx(tm.MulticlassJaccardIndex(3, average="macro")(p, t).item(), abs=1e-6)
    article = tm.MulticlassJaccardIndex(3, average="micro", ignore_index=1)(p, t).item()
    assert m.article_iou(ignore=1) == pytest.approx(article, abs=1e-6)
    assert m.f1(2) == pytest.approx(tm.MulticlassF1Score(3, average="none")(p, t)[2].item(), abs=1e-6)


def test_logits_error_statistics_match_numpy():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    candidate = reference + rng.normal(scale=1e-3, size=reference.shape).astype(np.float32)
    candidate[0, 0, :4, :4] = reference[0, 0, :4, :4]  # some exact zeros
    err = LogitsError().update(candidate[:1], reference[:1]).update(candidate[1:], reference[1:])
    diff = np.abs(candidate.astype(np.float64) - reference)
    summary = err.summary()
    assert summary["max"] == pytest.approx(diff.max())
    assert summary["mean"] == pytest.approx(diff.mean())
    exact = np.quantile(diff, 0.99)
    assert exact <= summary["p99"] <= exact * 1.024  # one histogram bin (2.3%) above at most
    assert err.quantile(0.001) == 0.0  # the 16 zeros are the lowest 0.26%
    with pytest.raises(InputError):
        err.update(candidate, reference[:1])
