import numpy as np
import pytest

from segedge.data.transforms import PreprocessConfig, preprocess, resize_labels
from segedge.errors import InputError


def test_bgr_frame_becomes_rgb_nchw_in_unit_range():
    frame = np.zeros((50, 70, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in OpenCV's BGR
    batch = preprocess(frame, PreprocessConfig(height=32, width=48))
    assert batch.shape == (1, 3, 32, 48) and batch.dtype == np.float32
    assert np.all(batch[0, 2] == 1.0) and np.all(batch[0, :2] == 0.0)  # blue lands in RGB channel 2


def test_scaling_is_exact_division_by_255():
    frame = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    batch = preprocess(frame, PreprocessConfig(height=16, width=16))
    assert np.allclose(batch[0, 0], frame[..., 2] / 255.0, atol=1e-7)


def test_buffer_is_filled_in_place():
    out = np.full((2, 3, 8, 8), -1, np.float32)
    frames = [np.full((10, 10, 3), 51, np.uint8), np.full((20, 30, 3), 102, np.uint8)]
    result = preprocess(frames, PreprocessConfig(height=8, width=8), out=out)
    assert result is out and np.allclose(out[0], 0.2) and np.allclose(out[1], 0.4)


def test_config_survives_json_and_rejects_nonsense():
    config = PreprocessConfig(height=96, width=64, interpolation="area")
    assert PreprocessConfig.from_json(config.to_json()) == config
    with pytest.raises(InputError):
        PreprocessConfig.from_dict({"height": 128, "mean": [0.5]})
    with pytest.raises(InputError):
        PreprocessConfig(interpolation="lanczos9")


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)])
def test_non_bgr_images_are_refused(bad):
    with pytest.raises(InputError):
        preprocess(bad)


def test_label_resizing_never_invents_classes():
    labels = np.random.default_rng(0).integers(0, 3, (37, 53)).astype(np.uint8)
    assert set(np.unique(resize_labels(labels, 128, 128))) <= {0, 1, 2}
