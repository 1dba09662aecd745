"""Video drift on the real DAVIS `libby` clip with its per-frame masks."""

import cv2
import numpy as np
import pytest

from segedge.errors import DataError, InputError
from segedge.report.video import video_drift
from segedge.runtime.torch_runner import TorchRunner

pytestmark = pytest.mark.slow


def test_frames_are_compared_with_the_reference_and_the_masks(small_report):
    video = small_report.video
    assert video.frames == 5 and video.every == 12  # frames 0, 12, 24, 36, 48 of 49
    assert video.gt_masks.endswith("masks")
    candidate, int8 = video.candidates
    assert candidate.name == small_report.models[1].name and int8.name == small_report.models[2].name
    for cand in video.candidates:
        assert len(cand.per_frame_agreement) == len(cand.per_frame_iou) == len(video.reference_iou) == 5
        assert cand.agreement == pytest.approx(np.mean(cand.per_frame_agreement))
    assert candidate.agreement > 0.999  # FP32 ONNX
    assert int8.agreement < candidate.agreement
    assert all(0 <= v <= 1 for v in video.reference_iou if v is not None)
    # the same class maps give almost the same IoU
    assert candidate.mean_iou == pytest.approx(np.mean([v for v in video.reference_iou if v is not None]), abs=0.01)
    # the unlabelled video gives the model rows their agreement too
    assert small_report.models[1].agreement >= 0.999


def test_reference_iou_of_a_frame_matches_an_independent_computation(small_report, embedded, libby_video, libby_dir):
    capture = cv2.VideoCapture(str(libby_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 12)
    ok, frame = capture.read()
    capture.release()
    assert ok
    pred = TorchRunner(embedded).predict(frame)[0]
    full = cv2.resize(pred, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST) == 0  # pet
    truth = cv2.imread(str(libby_dir / "masks" / "00012.png"), cv2.IMREAD_GRAYSCALE) > 0
    expected = np.logical_and(full, truth).sum() / np.logical_or(full, truth).sum()
    assert small_report.video.reference_iou[1] == pytest.approx(expected, abs=1e-5)


def test_bad_video_inputs_are_refused(embedded, tmp_path, libby_video):
    reference = TorchRunner(embedded)
    with pytest.raises(InputError):
        video_drift(reference, [], libby_video, every=0)
    with pytest.raises(DataError):
        video_drift(reference, [], tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        video_drift(reference, [], libby_video, gt_masks=tmp_path / "empty")
