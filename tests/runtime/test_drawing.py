"""Postprocessing and drawing of the live loop against plain NumPy references: the running
argmax must be np.argmax (ties included), the packed overlay must be the textbook alpha
blend of the nearest-neighbour class map."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segedge.data.oxford_pet import CLASS_PALETTE
from segedge.runtime.overlay import Overlay
from segedge.runtime.postprocess import Postprocessor


@settings(max_examples=60, deadline=None)
@given(classes=st.integers(1, 12), h=st.integers(1, 40), w=st.integers(1, 40), levels=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_class_map_is_numpys_argmax_ties_included(classes, h, w, levels, seed):
    rng = np.random.default_rng(seed)
    # few distinct values: most pixels have ties, where the first maximum must win
    logits = rng.integers(0, levels, size=(classes, h, w)).astype(np.float32) - 2.0
    post = Postprocessor(classes, h, w)
    np.testing.assert_array_equal(post(logits), np.argmax(logits, axis=0).astype(np.uint8))


def test_class_map_handles_infinities_like_argmax():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[2, 0, 0] = np.inf
    logits[:, 0, 1] = -np.inf  # all equal: class 0
    logits[1, 1, 0] = np.inf
    logits[2, 1, 0] = np.inf  # tie at +inf: the first one
    np.testing.assert_array_equal(Postprocessor(3, 2, 2)(logits), np.argmax(logits, axis=0))


def test_flicker_is_the_fraction_of_changed_pixels():
    post = Postprocessor(2, 4, 5)
    first = np.zeros((2, 4, 5), np.float32)
    first[1] = 1.0  # class 1 everywhere
    post(first)
    second = first.copy()
    second[0, :2, :3] = 2.0  # 6 of 20 pixels become class 0
    post(second)
    assert post.flicker == pytest.approx(6 / 20)


def test_postprocessor_rejects_more_classes_than_a_uint8_map_holds():
    with pytest.raises(ValueError, match="256"):
        Postprocessor(257, 4, 4)


def reference_overlay(frame, mask, alpha, drawn, palette=CLASS_PALETTE):
    """Textbook alpha blend, pixel by pixel in float, of the nearest-neighbour class map."""
    h, w = frame.shape[:2]
    full = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    out = frame.astype(np.float64)
    for index in drawn:
        where = full == index
        out[where] = (1 - alpha) * out[where] + alpha * np.array(palette[index], np.float64)
    return full, out


@pytest.mark.parametrize("alpha", [0.0, 0.35, 0.5, 1.0])
@pytest.mark.parametrize("size", [(480, 854), (272, 640), (7, 5), (128, 128)])
def test_overlay_is_the_alpha_blend_of_the_nearest_neighbour_class_map(alpha, size):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, size=(128, 128), dtype=np.uint8)
    overlay = Overlay(alpha=alpha)
    expected_full, expected = reference_overlay(frame, mask, alpha, drawn=(0, 2))
    drawn = overlay.draw(frame.copy(), mask)
    np.testing.assert_array_equal(overlay.full_mask, expected_full)
    # addWeighted rounds once; the float reference differs by at most rounding
    assert np.abs(drawn.astype(np.float64) - expected).max() <= 0.5 + 1e-9
    undrawn = expected_full == 1
    np.testing.assert_array_equal(drawn[undrawn], frame[undrawn])  # background left exactly as it was


def test_overlay_buffers_follow_a_change_of_frame_size():
    overlay = Overlay(alpha=1.0)
    mask = np.zeros((16, 16), np.uint8)  # pet everywhere
    for size in ((40, 60), (30, 20), (40, 60)):
        frame = overlay.draw(np.zeros((*size, 3), np.uint8), mask)
        assert overlay.full_mask.shape == size
        assert (frame == np.array(CLASS_PALETTE[0], np.uint8)).all()


def test_overlay_of_a_mask_with_classes_beyond_the_palette_leaves_them_undrawn():
    frame = np.full((8, 8, 3), 50, np.uint8)
    mask = np.full((4, 4), 7, np.uint8)  # a class the palette has no colour for
    Overlay(alpha=1.0).draw(frame, mask)
    assert (frame == 50).all()
