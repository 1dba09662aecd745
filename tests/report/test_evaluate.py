"""The shared evaluation function, against hand-built predictions and a real runner."""

import numpy as np
import pytest

from segedge.errors import InputError
from segedge.report.evaluate import evaluate, predict_classes


def _one_hot_logits(classes: np.ndarray, k: int = 3) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[classes].transpose(0, 3, 1, 2)  # (N, H, W) -> (N, K, H, W)


def test_batches_add_up_to_the_hand_count():
    truth = np.array([[[0, 1], [2, 2]], [[1, 1], [0, 2]], [[2, 0], [0, 0]]])
    pred = np.array([[[0, 1], [2, 0]], [[1, 2], [0, 2]], [[2, 0], [1, 0]]])
    calls = []

    def model(x):
        calls.append(len(x))
        start = sum(calls[:-1])
        return _one_hot_logits(pred[start : start + len(x)])

    scores = evaluate(model, np.zeros((3, 3, 2, 2), np.float32), truth, batch_size=2, reference=truth, num_classes=3)
    assert calls == [2, 1]
    # 12 pixels, 3 wrong (2->0, 1->2, 0->1)
    assert scores.truth.pixel_accuracy() == pytest.approx(9 / 12)
    assert scores.agreement.matrix.tolist() == scores.truth.matrix.tolist()


def test_without_labels_only_agreement_is_counted():
    pred = np.array([[[0, 1, 1, 1]]])
    scores = evaluate(lambda x: _one_hot_logits(pred), np.zeros((1, 3, 1, 4), np.float32), reference=np.ones((1, 1, 4), int), num_classes=3)
    assert scores.truth.total == 0 and scores.agreement.pixel_accuracy() == pytest.approx(3 / 4)


def test_a_callable_needs_num_classes():
    with pytest.raises(InputError, match="num_classes"):
        evaluate(lambda x: x, np.zeros((1, 3, 2, 2), np.float32))


def test_a_runner_scores_like_its_own_argmax(embedded, pet_root):
    from segedge.data.samples import load_split_arrays
    from segedge.runtime.torch_runner import TorchRunner

    images, labels, _ = load_split_arrays(pet_root, "test", embedded.preprocess, limit=4)
    runner = TorchRunner(embedded)
    direct = runner.infer(images).argmax(1)
    assert np.array_equal(predict_classes(runner, images, batch_size=3), direct)
    scores = evaluate(runner, images, labels, batch_size=3)
    assert scores.truth.pixel_accuracy() == pytest.approx(float((direct == labels).mean()))
