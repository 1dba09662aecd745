"""The shared sample iterator on real files: Pet splits, image folders and a video."""

import os

import cv2
import numpy as np
import pytest

from segedge.data.oxford_pet import OxfordPet
from segedge.data.samples import DataSpec, iter_samples, load_arrays
from segedge.data.transforms import PreprocessConfig
from segedge.errors import DataError, InputError


def test_pet_split_in_list_order_with_labels_limit_and_exclude(pet_root):
    listed = OxfordPet(pet_root, "test").samples
    skip = listed[1].image_path.name
    samples = list(iter_samples(DataSpec(pet_root, "test", limit=3, exclude=frozenset({skip}))))
    assert [s.name for s in samples] == [listed[0].name, listed[2].name, listed[3].name]
    for s in samples:
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.labels.shape == s.image.shape[:2]
        assert np.array_equal(s.image, cv2.imread(str(s.path)))  # an independent decoder call


def test_a_seeded_draw_is_reproducible_distinct_and_depends_on_the_seed(pet_root):
    def draw(seed):
        return [s.name for s in iter_samples(DataSpec(pet_root, "trainval", limit=6, seed=seed, labels=False))]

    first = draw(3)
    assert first == draw(3) and len(set(first)) == 6 and first != draw(4)
    assert first != [s.name for s in OxfordPet(pet_root, "trainval").samples[:6]]


def test_unreadable_folder_images_are_reported_and_not_counted(pet_root, tmp_path):
    good = sorted((pet_root / "images").glob("*.jpg"))[:3]
    for path in good:
        os.symlink(path, tmp_path / path.name)
    (tmp_path / "0_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    skipped = []
    samples = list(iter_samples(DataSpec(tmp_path, limit=3, seed=0), on_skip=lambda name, exc: skipped.append(name)))
    assert skipped == ["0_broken.jpg"] and sorted(s.name for s in samples) == sorted(p.name for p in good)


def test_video_every_and_limit_count_frames_in_order(libby_video):
    samples = list(iter_samples(DataSpec(libby_video, every=10, limit=3)))
    assert [s.name for s in samples] == ["frame 00000", "frame 00010", "frame 00020"]
    capture = cv2.VideoCapture(str(libby_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 10)
    ok, frame = capture.read()
    capture.release()
    assert ok and np.array_equal(samples[1].image, frame)


def test_load_arrays_gives_model_inputs_and_labels_at_model_size(pet_root):
    config = PreprocessConfig()
    images, labels, names = load_arrays(DataSpec(pet_root, "test", limit=4), config)
    assert images.shape == (4, 3, *config.size) and images.dtype == np.float32
    assert labels.shape == (4, *config.size) and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
    assert len(names) == 4


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="every"):
        DataSpec(tmp_path, every=0)
    with pytest.raises(DataError, match="neither"):
        list(iter_samples(DataSpec(tmp_path / "nowhere")))
