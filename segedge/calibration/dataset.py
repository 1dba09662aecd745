"""Calibration sets: real images, preprocessed exactly as the deployed model will see them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from segedge.data.samples import DataSpec, iter_samples
from segedge.data.transforms import PreprocessConfig, preprocess
from segedge.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class CalibrationSet:
    """Preprocessed calibration images.

    Attributes:
        images: ``(N, 3, H, W)`` float32 model inputs.
        source: where they came from (for reports and the quantized model's metadata).
        names: file names (or ``frame NNNNN``) of the images used.
    """

    images: np.ndarray
    source: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int = 8) -> Iterator[np.ndarray]:
        """Yield ``(<= batch_size, 3, H, W)`` float32 slices."""
        for start in range(0, len(self.images), batch_size):
            yield self.images[start : start + batch_size]

    def summary(self) -> str:
        """One line: count, source, resolution and per-channel mean/std of the inputs."""
        mean = self.images.mean((0, 2, 3))
        std = self.images.std((0, 2, 3))
        h, w = self.images.shape[2:]
        stats = ", ".join(f"{m:.3f}/{s:.3f}" for m, s in zip(mean, std))
        return f"{len(self)} images from {self.source} at {w}x{h}, per-channel mean/std {stats}"


def load_calibration_set(
    source: str | os.PathLike[str],
    config: PreprocessConfig,
    num_images: int = 64,
    seed: int = 0,
    every: int = 5,
) -> CalibrationSet:
    """Build a calibration set from an Oxford-IIIT Pet root (its ``trainval`` split), a
    folder of images or a video file (every ``every``-th frame).

    Images are drawn at random (``seed``) when there are more than ``num_images``;
    unreadable files are skipped with a warning. Reads through the shared sample iterator
    (:func:`segedge.data.samples.iter_samples`).

    Args:
        source: Pet root, image directory or video file.
        config: the model's preprocessing (from its artifact).
        num_images: at most this many images.
        seed: random draw of the subset.
        every: frame stride for videos.

    Raises:
        DataError: the source does not exist, holds nothing readable, or ``num_images < 1``.
    """
    path = Path(source)
    if num_images < 1:
        raise DataError(f"the calibration set needs at least 1 image, asked for {num_images}")
    if not path.exists():
        raise DataError(f"calibration source {path} does not exist (expected a Pet root, an image folder or a video)")
    spec = DataSpec(path, split="trainval", every=every, limit=num_images, seed=seed, labels=False)
    if path.is_file():
        description = f"video {path.name} (1 frame in {every})"
    elif spec.is_pet:
        description = f"Oxford-IIIT Pet trainval split in {path}"
    else:
        description = f"image folder {path}"
    skipped: list[str] = []
    samples = list(iter_samples(spec, on_skip=lambda name, exc: skipped.append(name)))
    if skipped and samples:
        log.warning("calibration: skipped %d unreadable images: %s", len(skipped), ", ".join(skipped[:5]))
    if skipped and not samples:
        raise DataError(f"calibration source {path} yielded no readable image ({len(skipped)} unreadable: {', '.join(skipped[:3])})")
    if not samples:
        raise DataError(f"calibration source {path} yielded no readable image")
    images = preprocess([s.image for s in samples], config)
    names = [s.path.name if s.path is not None else s.name for s in samples]
    return CalibrationSet(images, description, names)


def load_calibration_sets(
    sources: Sequence[str | os.PathLike[str]],
    config: PreprocessConfig,
    num_images: int = 64,
    seed: int = 0,
    every: int = 5,
) -> CalibrationSet:
    """One calibration set from several sources (Pet roots, image folders, videos).

    Each source contributes up to ``num_images`` images (see :func:`load_calibration_set`);
    when together they hold more, ``num_images`` are drawn from the union (``seed``).

    Raises:
        DataError: no source given, or any source fails as in :func:`load_calibration_set`.
    """
    if not sources:
        raise DataError("no calibration source given")
    sets = [load_calibration_set(source, config, num_images, seed, every) for source in sources]
    if len(sets) == 1:
        return sets[0]
    images = np.concatenate([s.images for s in sets])
    names = [name for s in sets for name in s.names]
    if len(images) > num_images:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:num_images])
        images = images[chosen]
        names = [names[i] for i in chosen]
    return CalibrationSet(np.ascontiguousarray(images), " + ".join(s.source for s in sets), names)


def calibration_set_from_arrays(images: Sequence[np.ndarray], config: PreprocessConfig, source: str) -> CalibrationSet:
    """Calibration set from BGR uint8 images already in memory (e.g. demo frames).

    Raises:
        DataError: no image given.
    """
    if not images:
        raise DataError(f"calibration source {source} yielded no image")
    return CalibrationSet(preprocess(list(images), config), source, [f"image {i}" for i in range(len(images))])
