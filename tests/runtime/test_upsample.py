"""Smooth masks: the linear mode's full-resolution class map is the argmax of bilinearly
resized class scores, differs from nearest only near class boundaries, and reaches the
live loop's sinks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segedge.data.oxford_pet import CLASS_PALETTE
from segedge.contract import Upsample
from segedge.runtime.overlay import Overlay
from segedge.runtime.sinks import Sink


def smooth_logits(seed: int, classes: int = 3, size: tuple[int, int] = (128, 128)) -> np.ndarray:
    """(C, h, w) float32 logits with blob-shaped class regions, like a segmentation network's."""
    rng = np.random.default_rng(seed)
    planes = [cv2.GaussianBlur(rng.standard_normal(size).astype(np.float32), (0, 0), 5) for _ in range(classes)]
    return np.stack(planes)


@pytest.mark.parametrize("frame_size", [(480, 854), (272, 640), (100, 90)])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_class_map_is_the_argmax_of_bilinearly_resized_scores(frame_size, seed):
    logits = smooth_logits(seed)
    h, w = frame_size
    expected = np.stack([cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR) for plane in logits]).argmax(0)
    overlay = Overlay(alpha=1.0)
    frame = overlay.draw(np.zeros((h, w, 3), np.uint8), logits.argmax(0).astype(np.uint8), logits)
    np.testing.assert_array_equal(overlay.full_mask, expected)
    for index in (0, 2):  # the default palette draws pet and border, not background
        np.testing.assert_array_equal(frame[expected == index], np.broadcast_to(np.array(CLASS_PALETTE[index], np.uint8), frame[expected == index].shape))
    assert (frame[expected == 1] == 0).all()


def test_ties_go_to_the_first_class_as_in_numpy():
    logits = np.zeros((3, 8, 8), np.float32)
    logits[1, :, 4:] = 1.0
    logits[2, :, 4:] = 1.0  # tied with class 1 on the right half
    overlay = Overlay()
    overlay.draw(np.zeros((16, 16, 3), np.uint8), logits.argmax(0).astype(np.uint8), logits)
    expected = np.stack([cv2.resize(p, (16, 16), interpolation=cv2.INTER_LINEAR) for p in logits]).argmax(0)
    np.testing.assert_array_equal(overlay.full_mask, expected)
    assert set(np.unique(overlay.full_mask)) == {0, 1}


def test_linear_and_nearest_differ_only_near_class_boundaries():
    logits = smooth_logits(3)
    mask = logits.argmax(0).astype(np.uint8)
    h, w = 480, 854
    linear, nearest = Overlay(), Overlay(upsample=Upsample.NEAREST)
    linear.draw(np.zeros((h, w, 3), np.uint8), mask, logits)
    nearest.draw(np.zeros((h, w, 3), np.uint8), mask, logits)
    differs = linear.full_mask != nearest.full_mask
    assert differs.any()  # the blocks are smoothed
    # every difference lies within one model pixel (854/128 ~ 6.7 frame pixels) of a boundary of the nearest map
    boundary = cv2.morphologyEx(nearest.full_mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    near_boundary = cv2.dilate(boundary.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    assert not (differs & ~near_boundary).any()
    assert differs.mean() < 0.1


def test_nearest_mode_and_a_missing_score_array_keep_the_class_map_upsampling():
    logits = smooth_logits(4)
    mask = logits.argmax(0).astype(np.uint8)
    reference = cv2.resize(mask, (854, 480), interpolation=cv2.INTER_NEAREST)
    for overlay, scores in ((Overlay(upsample="nearest"), logits), (Overlay(), None)):
        overlay.draw(np.zeros((480, 854, 3), np.uint8), mask, scores)
        np.testing.assert_array_equal(overlay.full_mask, reference)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        Overlay(upsample="cubic")


@pytest.mark.slow
def test_live_loop_hands_the_sinks_the_smooth_map(embedded, libby_video):
    from segedge.data.sources import open_source
    from segedge.runtime.torch_runner import TorchRunner
    from segedge.runtime.video import LiveOptions, run_live

    class Keep(Sink):
        def __init__(self):
            self.masks = []

        def write(self, frame, full_mask, info):
            self.masks.append(full_mask.copy())

    runner = TorchRunner(embedded)
    kept = {}
    for mode in ("linear", "nearest"):
        sink = Keep()
        with open_source(str(libby_video)) as source:
            run_live(runner, source, [sink], LiveOptions(max_frames=3, upsample=mode, pipelined=False))
        kept[mode] = sink.masks
    batch = None
    with open_source(str(libby_video)) as source:
        batch = runner.preprocess(source.read_into(None))
    logits = runner.infer(batch)[0]
    h, w = kept["linear"][0].shape
    expected = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in logits]).argmax(0)
    np.testing.assert_array_equal(kept["linear"][0], expected)
    assert any((a != b).any() for a, b in zip(kept["linear"], kept["nearest"]))
