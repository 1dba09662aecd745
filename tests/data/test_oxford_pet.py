"""Reading the official Oxford-IIIT Pet layout on real files, quirks included."""

import logging
import os

import cv2
import numpy as np
import pytest

from segedge.data.images import read_image, read_label_map
from segedge.data.oxford_pet import OxfordPet, trimap_to_classes
from segedge.data.samples import load_split_arrays
from segedge.data.transforms import PreprocessConfig
from segedge.errors import DataError


def test_trimap_values_map_to_pet_background_border_on_real_files(pet_root):
    dataset = OxfordPet(pet_root, "trainval")
    for index in range(5):
        sample = dataset.samples[index]
        raw = cv2.imread(str(sample.trimap_path), cv2.IMREAD_UNCHANGED)  # independent decoder call
        _, classes = dataset.read(index)
        assert set(np.unique(raw)) <= {1, 2, 3}
        assert np.array_equal(classes == 0, raw == 1)  # pet
        assert np.array_equal(classes == 1, raw == 2)  # background
        assert np.array_equal(classes == 2, raw == 3)  # border / not classified


def test_official_splits_are_read_without_overlap(pet_root):
    trainval = {s.name for s in OxfordPet(pet_root, "trainval").samples}
    test = {s.name for s in OxfordPet(pet_root, "test").samples}
    assert len(trainval) == 300 and len(test) == 298
    assert not trainval & test


def test_gif_named_jpg_is_read_by_content(pet_root):
    path = pet_root / "images" / "Abyssinian_34.jpg"
    assert path.read_bytes()[:3] == b"GIF"
    image = read_image(path)
    assert image.shape == (202, 250, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a real picture, not a blank decode


def test_rgba_png_named_jpg_loses_alpha_only(pet_root):
    path = pet_root / "images" / "Abyssinian_5.jpg"
    assert path.read_bytes()[1:4] == b"PNG"
    image = read_image(path)
    rgba = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    assert np.array_equal(image, rgba[:, :, :3])


def test_listed_but_missing_files_are_skipped_with_a_warning_naming_them(pet_root, tmp_path, caplog):
    root = tmp_path / "pet"
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "images").mkdir()
    names = ["Abyssinian_100", "Abyssinian_101", "Ghost_1"]
    for name in names[:2]:
        os.symlink(pet_root / "images" / f"{name}.jpg", root / "images" / f"{name}.jpg")
        os.symlink(pet_root / "annotations" / "trimaps" / f"{name}.png", root / "annotations" / "trimaps" / f"{name}.png")
    (root / "annotations" / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
    with caplog.at_level(logging.WARNING, logger="segedge"):
        dataset = OxfordPet(root, "trainval")
    assert [s.name for s in dataset.samples] == names[:2]
    assert "Ghost_1" in caplog.text


def test_corrupt_images_are_skipped_by_the_split_loader(pet_root, tmp_path, caplog):
    root = tmp_path / "pet"
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "images").mkdir()
    good, bad = "Abyssinian_100", "Abyssinian_101"
    os.symlink(pet_root / "images" / f"{good}.jpg", root / "images" / f"{good}.jpg")
    (root / "images" / f"{bad}.jpg").write_bytes((pet_root / "images" / f"{bad}.jpg").read_bytes()[:300])
    for name in (good, bad):
        os.symlink(pet_root / "annotations" / "trimaps" / f"{name}.png", root / "annotations" / "trimaps" / f"{name}.png")
    (root / "annotations" / "trainval.txt").write_text(f"{good} 1 1 1\n{bad} 1 1 1\n")
    with caplog.at_level(logging.WARNING, logger="segedge"):
        images, labels, names = load_split_arrays(root, "trainval", PreprocessConfig())
    assert names == [good] and images.shape == (1, 3, 128, 128) and labels.shape == (1, 128, 128)
    assert bad in caplog.text


@pytest.mark.parametrize("payload", [b"", b"\xff\xd8\xff\xe0 truncated jpeg", b"hello"])
def test_corrupt_image_raises_data_error(tmp_path, payload):
    path = tmp_path / "x.jpg"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="x.jpg"):
        read_image(path)


def test_trimap_with_foreign_values_is_rejected():
    with pytest.raises(DataError, match="1, 2 or 3"):
        trimap_to_classes(np.array([[1, 2], [3, 0]], np.uint8))


def test_not_a_pet_root_says_how_to_get_one(tmp_path):
    with pytest.raises(DataError, match="download-data"):
        OxfordPet(tmp_path, "trainval")


def test_label_maps_read_raw_values(pet_root):
    path = pet_root / "annotations" / "trimaps" / "Abyssinian_100.png"
    assert read_label_map(path).ndim == 2
