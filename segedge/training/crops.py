"""Aspect-preserving training crops, for models that see every frame at its own aspect.

A model whose contract says ``resize="aspect"`` is fed a 16:9 frame at 16:9 (short side
``S``). Training it on images stretched to ``S x S`` would teach it pets squeezed by up to
4:3, shapes it never meets live. Here each training image is resized once so its shorter side
is ``S`` (aspect kept, as live), and every step takes a random ``S x S`` crop of it (the crop
slides along the longer side; a pet cut at the crop's edge is a pet entering the frame).
"""

from __future__ import annotations

import os
from typing import Callable

import cv2
import numpy as np
import torch

from segedge.contract import PreprocessConfig
from segedge.data.transforms import INTERPOLATIONS


def load_aspect_split(
    root: str | os.PathLike[str], split: str, config: PreprocessConfig, limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read a labelled Oxford-IIIT Pet split, each image resized so its shorter side is
    ``min(config.size)`` pixels (aspect kept; ``config.interpolation``; trimaps by nearest
    neighbour), RGB in [0, 1] (mean/std are applied at the model's input, after augmentation).

    Returns:
        One ``(image, labels)`` pair per readable sample: ``(h, w, 3)`` float32 and ``(h, w)``
        uint8 class indices, with ``min(h, w) == min(config.size)``.

    Raises:
        DataError: not a Pet root, or no readable sample.
    """
    from segedge.data.oxford_pet import OxfordPet
    from segedge.data.samples import DataSpec, iter_samples
    from segedge.errors import DataError

    dataset = OxfordPet(root, split)  # a labelled Pet root or its DataError
    total = min(len(dataset.samples), limit) if limit else len(dataset.samples)
    short = min(config.size)
    pairs = []
    for sample in iter_samples(DataSpec(root, split, limit=limit or None)):
        h, w = sample.image.shape[:2]
        scale = short / min(h, w)
        size = (max(short, round(w * scale)), max(short, round(h * scale)))  # (width, height) for OpenCV
        image = cv2.resize(sample.image, size, interpolation=INTERPOLATIONS[config.interpolation])
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if config.channel_order == "RGB" else image
        labels = cv2.resize(sample.labels, size, interpolation=cv2.INTER_NEAREST)
        pairs.append((image.astype(np.float32) * np.float32(config.scale), labels))
        if progress is not None:
            progress(len(pairs), total)
    if not pairs:
        raise DataError(f"{root}: no readable sample in split {split!r}")
    return pairs


def random_crops(
    pairs: list[tuple[np.ndarray, np.ndarray]], indices: list[int], side: int, generator: torch.Generator | None = None,
    p_whole: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``side x side`` crop of each chosen pair, at a random offset along its longer side
    (``generator`` is None: the centred crop). A pair whose shorter side is not ``side`` is
    first resized to it (the image by area averaging when shrinking, bilinear when enlarging;
    the labels by nearest neighbour): the
    multi-scale training of :class:`~segedge.training.loop.TrainConfig` ``train_sizes``.

    With probability ``p_whole`` (drawn per pair; only with a ``generator``) the "crop" is the
    whole image resized to ``side x side``, its aspect not kept: the input of Matani & Singh's
    Oxford-IIIT Pet protocol (every photo stretched to 128x128), so a model trained for
    aspect-kept video frames still meets the article's benchmark input.

    Args:
        pairs: from :func:`load_aspect_split`.
        indices: which pairs, in batch order.
        side: crop side in pixels.
        generator: source of randomness.
        p_whole: probability a pair is taken whole and stretched to the square, in [0, 1].

    Returns:
        images ``(N, 3, side, side)`` float32 and labels ``(N, side, side)`` int64.
    """
    images = torch.empty((len(indices), 3, side, side))
    labels = torch.empty((len(indices), side, side), dtype=torch.int64)
    for k, i in enumerate(indices):
        image, label = pairs[i]
        h, w = label.shape
        if generator is not None and p_whole > 0 and float(torch.rand((), generator=generator)) < p_whole:
            image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if side < min(h, w) else cv2.INTER_LINEAR)
            label = cv2.resize(label, (side, side), interpolation=cv2.INTER_NEAREST)
            h, w = side, side
        if min(h, w) != side:
            scale = side / min(h, w)
            size = (max(side, round(w * scale)), max(side, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
            h, w = label.shape

        def offset(extent: int) -> int:
            if extent <= side:
                return 0
            if generator is None:
                return (extent - side) // 2
            return int(torch.randint(0, extent - side + 1, (1,), generator=generator))

        y, x = offset(h), offset(w)
        images[k] = torch.from_numpy(image[y : y + side, x : x + side].transpose(2, 0, 1))
        labels[k] = torch.from_numpy(label[y : y + side, x : x + side].astype(np.int64))
    return images, labels
