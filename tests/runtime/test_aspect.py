"""Aspect-preserving input: a model of any input size whose contract says ``resize="aspect"``
sees each frame at its own aspect (16:9 stays 16:9), in ``Runner.segment``, the live loop and
``report --video``, while a stretch contract keeps the trained size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segedge.contract import PreprocessConfig
from segedge.data.sources import FrameSource
from segedge.errors import InputError
from segedge.models.checkpoint import Checkpoint
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live


class Frames(FrameSource):
    """A file-like source of fixed frames (not live: every frame is delivered)."""

    live = False

    def __init__(self, frames):
        self.frames, self.index, self.description, self.fps = frames, 0, "frames", 10.0

    def read_into(self, buffer=None):
        if self.index >= len(self.frames):
            return None
        self.index += 1
        return self.frames[self.index - 1].copy()


@pytest.fixture()
def aspect_runner(tiny_checkpoint):
    preprocess = dataclasses.replace(tiny_checkpoint.preprocess, resize="aspect")
    ckpt = Checkpoint(tiny_checkpoint.model, "tiny", preprocess, tiny_checkpoint.classes)
    return TorchRunner(ckpt)


def frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def test_segment_feeds_a_16_9_frame_at_16_9(aspect_runner):
    assert aspect_runner.input_size(90, 160) == (16, 28)  # short side 16, 160/90 * 16 = 28.4 -> 28
    assert aspect_runner.predict(frame(90, 160)).shape == (1, 16, 28)
    class_map, overlay = aspect_runner.segment(frame(90, 160))
    assert class_map.shape == (90, 160) and overlay.shape == (90, 160, 3)


def test_the_same_logits_as_preprocessing_at_that_size_by_hand(aspect_runner):
    from segedge.data.transforms import preprocess

    image = frame(90, 160, seed=1)
    by_hand = aspect_runner.infer(preprocess(image, aspect_runner.preprocess_config, size=(16, 28)))
    assert np.array_equal(aspect_runner.infer(aspect_runner.preprocess(image)), by_hand)


def test_a_stretch_contract_keeps_the_trained_size(tiny_checkpoint):
    runner = TorchRunner(tiny_checkpoint)
    assert runner.input_size(90, 160) == tiny_checkpoint.preprocess.size
    assert runner.predict(frame(90, 160)).shape == (1, *tiny_checkpoint.preprocess.size)


def test_the_live_loop_segments_each_frame_at_its_aspect(aspect_runner):
    shapes = []
    frames = [frame(90, 160, i) for i in range(3)] + [frame(120, 160, 9)]  # a 4:3 frame after three 16:9 ones
    stats = run_live(aspect_runner, Frames(frames), [], LiveOptions(hud=False), on_frame=lambda i, mask: shapes.append(mask.shape))
    assert stats.frames == 4
    assert shapes == [(16, 28)] * 3 + [(16, 21)]


def test_an_artifact_of_the_trained_size_only_refuses_other_sizes(tmp_path, tiny_checkpoint):
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from tests.conftest import write_tiny_onnx

    path = write_tiny_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    runner = OnnxRuntimeRunner(path)
    h, w = runner.preprocess_config.size
    with pytest.raises(InputError, match="expected a batch of shape"):
        runner.infer(np.zeros((1, 3, h, w + 8), np.float32))
