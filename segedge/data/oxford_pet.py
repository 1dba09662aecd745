"""Reader of the official Oxford-IIIT Pet layout.

Dataset: Parkhi, Vedaldi, Zisserman, Jawahar, "Cats and Dogs", CVPR 2012.
Layout (as distributed in ``images.tar.gz`` and ``annotations.tar.gz``)::

    ROOT/images/<name>.jpg
    ROOT/annotations/trimaps/<name>.png   values 1 pet, 2 background, 3 border ("not classified")
    ROOT/annotations/trainval.txt          "<name> <class-id> <species> <breed-id>" per line
    ROOT/annotations/test.txt

The real dataset has quirks a reader must survive: files named ``.jpg`` that are GIF or
RGBA PNG (decoded by content, see :func:`segedge.data.images.read_image`), names listed in
no split, and listed names whose files are missing or unreadable (skipped with a warning
that names the file).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segedge.contract import PET_CLASSES, PET_PALETTE
from segedge.data.images import read_image, read_label_map
from segedge.errors import DataError

log = logging.getLogger(__name__)

# class index = trimap value - 1; defined once, as the default of the deployment contract
CLASS_NAMES, CLASS_PALETTE = PET_CLASSES, PET_PALETTE
SPLITS = ("trainval", "test")


@dataclass(frozen=True)
class PetSample:
    """One listed image of the data set."""

    name: str  # e.g. "Abyssinian_100"
    image_path: Path
    trimap_path: Path


def trimap_to_classes(trimap: np.ndarray, source: str | os.PathLike[str] = "trimap") -> np.ndarray:
    """Map trimap values 1/2/3 to class indices 0/1/2 (pet, background, border).

    Args:
        trimap: ``(H, W)`` uint8 array of trimap values.
        source: name used in the error message.

    Returns:
        ``(H, W)`` uint8 class indices.

    Raises:
        DataError: a value outside {1, 2, 3}.
    """
    bad = (trimap < 1) | (trimap > 3)
    if bad.any():
        values = np.unique(trimap[bad])[:5].tolist()
        raise DataError(f"{source}: trimap values must be 1, 2 or 3; found {values}")
    return (trimap - 1).astype(np.uint8)


def is_pet_root(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` looks like an Oxford-IIIT Pet root (images/ and annotations/trimaps/)."""
    path = Path(path)
    return (path / "images").is_dir() and (path / "annotations" / "trimaps").is_dir()


class OxfordPet:
    """Lists and reads the samples of one split of an Oxford-IIIT Pet root.

    Args:
        root: directory holding ``images/`` and ``annotations/``.
        split: ``"trainval"`` or ``"test"`` (the official split files).

    Raises:
        DataError: not a Pet root, an unknown split, a missing or non-UTF-8 split file, a
            split line naming a path (``/abs``, ``../x``: nothing outside the root is read),
            or a split with no usable sample.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "trainval"):
        self.root = Path(root)
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if not is_pet_root(self.root):
            raise DataError(
                f"{self.root} is not an Oxford-IIIT Pet root: expected images/ and annotations/trimaps/ "
                "(get it with `segedge download-data DIR`)"
            )
        split_file = self.root / "annotations" / f"{split}.txt"
        if not split_file.is_file():
            raise DataError(f"{self.root}: split file annotations/{split}.txt is missing")
        self.split = split
        self.samples: list[PetSample] = []
        try:
            text = split_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{split_file} is not UTF-8 text (byte {exc.start}); expected one '<name> <class> ...' line per image") from None
        except OSError as exc:
            raise DataError(f"cannot read {split_file}: {exc.strerror or exc}") from None
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            name = line.split()[0]
            if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
                raise DataError(
                    f"{split_file} line {line_no} names {name!r}: a sample name may not hold a path "
                    "(no '/', '\\', leading '.'); the images must lie in images/ of the dataset root"
                )
            image_path = self.root / "images" / f"{name}.jpg"
            trimap_path = self.root / "annotations" / "trimaps" / f"{name}.png"
            if not image_path.is_file() or not trimap_path.is_file():
                missing = image_path if not image_path.is_file() else trimap_path
                log.warning("skipping %s (listed in %s line %d): %s is missing", name, split_file.name, line_no, missing)
                continue
            self.samples.append(PetSample(name, image_path, trimap_path))
        if not self.samples:
            raise DataError(f"{split_file} lists no sample whose image and trimap exist")

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read sample ``index``.

        Returns:
            image ``(H, W, 3)`` uint8 BGR and classes ``(H, W)`` uint8 in {0, 1, 2}.

        Raises:
            DataError: unreadable image or trimap, or image and trimap sizes differ.
        """
        sample = self.samples[index]
        image = read_image(sample.image_path)
        classes = trimap_to_classes(read_label_map(sample.trimap_path), sample.trimap_path)
        if image.shape[:2] != classes.shape:
            raise DataError(
                f"{sample.name}: image is {image.shape[1]}x{image.shape[0]} but trimap is "
                f"{classes.shape[1]}x{classes.shape[0]}"
            )
        return image, classes

    def iter_readable(self, limit: int | None = None):
        """Yield ``(sample, image, classes)`` for readable samples, warning about and skipping
        the unreadable ones; at most ``limit`` samples are read."""
        for index, sample in enumerate(self.samples[:limit] if limit else self.samples):
            try:
                image, classes = self.read(index)
            except DataError as exc:
                log.warning("skipping %s: %s", sample.name, exc)
                continue
            yield sample, image, classes

