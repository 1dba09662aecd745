"""Aspect-preserving training crops (segedge.training.crops.random_crops)."""

import numpy as np
import pytest
import torch

from segedge.training.crops import random_crops


def _stripes(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An (h, w) pair whose left third is class 0 and the rest class 1; the image's red channel
    is the column index / w, so where a crop came from can be read off its pixels."""
    labels = np.ones((h, w), np.uint8)
    labels[:, : w // 3] = 0
    image = np.zeros((h, w, 3), np.float32)
    image[..., 0] = np.arange(w, dtype=np.float32)[None, :] / w
    return image, labels


def test_a_crop_keeps_the_aspect_and_slides_along_the_longer_side():
    pairs = [_stripes(320, 480)]
    images, labels = random_crops(pairs, [0], 128)
    assert images.shape == (1, 3, 128, 128) and labels.shape == (1, 128, 128)
    # resized to short side 128 (width 192), centred crop: columns 32..159 of 192
    assert float(images[0, 0, 0, 0]) == pytest.approx(32 / 192, abs=0.01)
    assert float(images[0, 0, 0, -1]) == pytest.approx(159 / 192, abs=0.01)
    assert float((labels[0] == 0).float().mean()) == pytest.approx((64 - 32) / 128, abs=0.02)


def test_p_whole_stretches_the_whole_image_to_the_square():
    pairs = [_stripes(320, 480)]
    images, labels = random_crops(pairs, [0], 128, torch.Generator().manual_seed(0), p_whole=1.0)
    assert images.shape == (1, 3, 128, 128)
    # the whole width is in the square: from the first column to the last, the left third class 0
    assert float(images[0, 0, 0, 0]) < 0.01 and float(images[0, 0, 0, -1]) > 0.98
    assert float((labels[0] == 0).float().mean()) == pytest.approx(1 / 3, abs=0.02)


def test_p_whole_is_a_probability_per_pair():
    pairs = [_stripes(320, 480) for _ in range(200)]
    images, _ = random_crops(pairs, list(range(200)), 128, torch.Generator().manual_seed(1), p_whole=0.25)
    whole = (images[:, 0, 0, 0] < 0.01) & (images[:, 0, 0, -1] > 0.98)  # a crop never spans both ends
    assert 30 <= int(whole.sum()) <= 70  # 25% of 200, binomial sd 6
