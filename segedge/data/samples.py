"""THE sample iterator: one data specification in, samples out.

Every reader of evaluation or calibration data goes through :func:`iter_samples` (raw BGR
images, with labels where they exist) or :func:`load_arrays` (the same samples preprocessed
for a model): the drift report's :func:`~segedge.report.drift.load_eval_data`, the
calibration sets of :func:`~segedge.calibration.dataset.load_calibration_set`, the held-out
set of :func:`~segedge.pipeline.sensitivity.held_out_set`, and the training split loader
:func:`load_split_arrays`. Videos and image folders are read through
:func:`~segedge.data.sources.open_source`, the live loop's reader, so every consumer decodes
the same frames.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator

import numpy as np

from segedge.data.images import list_images, read_image
from segedge.data.oxford_pet import OxfordPet, is_pet_root
from segedge.errors import DataError, InputError, SourceError

log = logging.getLogger(__name__)

OnSkip = Callable[[str, DataError], None]  # (sample name, why) for each unreadable sample


@dataclass(frozen=True)
class DataSpec:
    """Where samples come from and which of them to take.

    ``source`` decides the reader: an Oxford-IIIT Pet root (official layout) gives its
    ``split`` with labels; any other folder gives its images (sorted by name), unlabelled; a
    file gives a video's frames, unlabelled.
    """

    source: str | os.PathLike[str]  # Pet root, image folder or video file
    split: str = "test"  # Pet split: "trainval" or "test" (ignored for folders and videos)
    every: int = 1  # take 1 frame in ``every`` (videos and image folders read in order)
    limit: int | None = None  # at most this many readable samples (None: all)
    seed: int | None = None  # None: list order; an int: a random draw of ``limit`` samples with this seed
    labels: bool = True  # read the Pet trimaps (False: images only, e.g. calibration)
    exclude: frozenset[str] = frozenset()  # Pet image file names to leave out (e.g. the calibration images)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"every must be >= 1, got {self.every}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be >= 1 or None, got {self.limit}")

    @property
    def is_pet(self) -> bool:
        """True when ``source`` is an Oxford-IIIT Pet root (labelled)."""
        path = Path(self.source)
        return path.is_dir() and is_pet_root(path)


@dataclass
class Sample:
    """One sample as decoded.

    Attributes:
        name: Pet sample name, image file name, or ``frame NNNNN`` for a video frame.
        index: position in the source's stream (video frame number, readable folder image
            number, Pet list position).
        image: ``(H, W, 3)`` uint8 BGR.
        labels: ``(H, W)`` uint8 class indices at the image's resolution, or ``None``.
        path: the image file, for Pet and folder samples (``None`` for video frames).
    """

    name: str
    index: int
    image: np.ndarray
    labels: np.ndarray | None
    path: Path | None = None  # the image file (Pet and folder samples)


def _warn(name: str, exc: DataError) -> None:
    log.warning("skipping %s: %s", name, exc)


def iter_samples(spec: DataSpec, on_skip: OnSkip = _warn) -> Iterator[Sample]:
    """Yield the samples ``spec`` describes, lazily (videos drawn at random are read first).

    Unreadable images are skipped (``on_skip`` is told, by default a warning) and do not
    count towards ``spec.limit``.

    Args:
        spec: the data specification.
        on_skip: called with the name and the error of each unreadable sample.

    Yields:
        :class:`Sample`: Pet samples in list order (or in the seeded random order), folder
        images in name order (or seeded random order), video frames in frame order (a seeded
        draw keeps frame order).

    Raises:
        DataError: the source does not exist (nor matches as a glob), is an empty folder, or
            cannot be opened (the message is :func:`~segedge.data.sources.open_source`'s).
    """
    path = Path(spec.source)
    if path.is_dir() and is_pet_root(path):
        yield from _pet_samples(path, spec, on_skip)
    elif path.is_dir() and spec.seed is not None:
        yield from _files_drawn(list_images(path), spec, on_skip)
    else:
        yield from _stream_samples(path, spec)


def _order(count: int, spec: DataSpec) -> np.ndarray:
    return np.random.default_rng(spec.seed).permutation(count) if spec.seed is not None else np.arange(count)


def _pet_samples(root: Path, spec: DataSpec, on_skip: OnSkip) -> Iterator[Sample]:
    dataset = OxfordPet(root, spec.split)
    taken = 0
    for i in _order(len(dataset), spec):
        if spec.limit is not None and taken == spec.limit:
            return
        sample = dataset.samples[i]
        if sample.image_path.name in spec.exclude:
            continue
        try:
            image, labels = dataset.read(int(i)) if spec.labels else (read_image(sample.image_path), None)
        except DataError as exc:
            on_skip(sample.image_path.name, exc)
            continue
        taken += 1
        yield Sample(sample.name, int(i), image, labels, sample.image_path)


def _files_drawn(files: list[Path], spec: DataSpec, on_skip: OnSkip) -> Iterator[Sample]:
    taken = 0
    for i in _order(len(files), spec):
        if spec.limit is not None and taken == spec.limit:
            return
        try:
            image = read_image(files[i])
        except DataError as exc:
            on_skip(files[i].name, exc)
            continue
        taken += 1
        yield Sample(files[i].name, int(i), image, None, files[i])


def _stream_samples(path: Path, spec: DataSpec) -> Iterator[Sample]:
    from segedge.data.sources import open_source

    frames: list[Sample] = []
    try:
        with open_source(str(path)) as source:
            for i, frame in enumerate(source):
                if spec.seed is None and spec.limit is not None and len(frames) == spec.limit:
                    break
                if i % spec.every == 0:
                    frames.append(Sample(f"frame {i:05d}", i, frame, None))
    except SourceError as exc:
        raise DataError(str(exc)) from None
    if spec.seed is not None and spec.limit is not None and len(frames) > spec.limit:
        chosen = sorted(np.random.default_rng(spec.seed).permutation(len(frames))[: spec.limit])
        frames = [frames[i] for i in chosen]
    yield from frames


def load_arrays(
    spec: DataSpec,
    config,
    progress: Callable[[int, int], None] | None = None,
    on_skip: OnSkip = _warn,
    empty: Callable[[], str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read the samples of ``spec`` and preprocess them for a model, in memory.

    Args:
        spec: the data specification.
        config: the model's :class:`~segedge.data.transforms.PreprocessConfig`.
        progress: optional ``progress(done, total)`` after each sample (``total`` is the
            number listed, capped by ``spec.limit``; Pet roots only know it up front).
        on_skip: see :func:`iter_samples`.
        empty: the message of the :class:`DataError` raised when no sample is readable
            (default: names the source and split).

    Returns:
        images ``(N, 3, H, W)`` float32 model inputs, labels ``(N, H, W)`` uint8 class
        indices resized with nearest neighbour to the model's ``(H, W)`` (``None`` when the
        source is unlabelled or ``spec.labels`` is False), and the sample names.

    Raises:
        DataError: as :func:`iter_samples`, or no readable sample.
    """
    from segedge.data.transforms import preprocess, resize_labels

    h, w = config.size
    names: list[str] = []
    labels: list[np.ndarray] = []
    total = None
    if spec.is_pet:  # the count is known up front: fill one preallocated batch (the training split is large)
        listed = sum(s.image_path.name not in spec.exclude for s in OxfordPet(spec.source, spec.split).samples)
        total = min(listed, spec.limit) if spec.limit else listed
        batch = np.empty((total, 3, h, w), dtype=np.float32)
    pieces: list[np.ndarray] = []
    for sample in iter_samples(spec, on_skip):
        if total is not None:
            preprocess(sample.image, config, out=batch[len(names) : len(names) + 1])
        else:
            pieces.append(preprocess(sample.image, config))
        if sample.labels is not None:
            labels.append(resize_labels(sample.labels, h, w))
        names.append(sample.name)
        if progress is not None:
            progress(len(names), total or len(names))
    if not names:
        raise DataError(empty() if empty else f"{spec.source}: no readable sample" + (f" in split {spec.split!r}" if spec.is_pet else ""))
    images = batch[: len(names)] if total is not None else np.ascontiguousarray(np.concatenate(pieces))
    return images, (np.stack(labels) if labels else None), names


def load_split_arrays(
    root: str | os.PathLike[str],
    split: str,
    preprocess_config,
    limit: int | None = None,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read and preprocess a whole split into memory (Oxford-IIIT Pet is small at 128x128).

    Args:
        root: Oxford-IIIT Pet root.
        split: ``"trainval"`` or ``"test"``.
        preprocess_config: :class:`~segedge.data.transforms.PreprocessConfig`.
        limit: read at most this many listed samples.
        progress: optional callable ``progress(done, total)`` called after each sample.

    A thin wrapper over :func:`load_arrays` (the shared sample iterator), kept beside it so the
    Pet reader (:mod:`segedge.data.oxford_pet`) imports nothing of the iterator built on it.

    Returns:
        images ``(N, 3, H, W)`` float32 (the model input), labels ``(N, H, W)`` uint8 class
        indices resized with nearest neighbour, and the sample names.

    Raises:
        DataError: not an Oxford-IIIT Pet root, or no readable sample.
    """
    OxfordPet(root, split)  # a labelled Pet root or its DataError (the iterator would read any folder unlabelled)
    images, labels, names = load_arrays(DataSpec(root, split, limit=limit or None), preprocess_config, progress)
    return images, labels, names  # type: ignore[return-value]  # a Pet root is always labelled
