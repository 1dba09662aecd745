import numpy as np
import pytest

from segedge.errors import InputError
from segedge.report.metrics import ConfusionMatrix


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


def test_out_of_range_or_mismatched_inputs_are_refused():
    with pytest.raises(InputError):
        ConfusionMatrix(3).update(np.array([3]), np.array([0]))
    with pytest.raises(InputError):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3)))
