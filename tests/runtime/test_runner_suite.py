"""One test suite for every runner (the BaseModelTester pattern of segmentation_models_pytorch):
each backend that is available here loads the same tiny model and must honour the Runner
interface: shapes and dtypes, ``out=`` buffers, ``max_batch``, ``close``, and its contract."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from segedge.contract import Backend
from segedge.engine.tensorrt_api import engine_build_available
from segedge.errors import InputError

RUNNERS = [
    Backend.TORCH,
    Backend.ONNXRUNTIME,
    pytest.param(Backend.OPENVINO, marks=pytest.mark.skipif(
        importlib.util.find_spec("openvino") is None, reason="openvino is not installed (pip install 'segedge[openvino]')")),
    pytest.param(Backend.TENSORRT, marks=[pytest.mark.tensorrt, pytest.mark.gpu, pytest.mark.skipif(
        not engine_build_available(), reason="needs TensorRT, cuda-python and a CUDA GPU (pip install 'segedge[tensorrt-cu12]' or '[tensorrt-cu13]' on a GPU machine)")]),
]


def _open(backend: Backend, checkpoint, onnx_path, tmp_path):
    if backend is Backend.TORCH:
        from segedge.runtime.torch_runner import TorchRunner

        return TorchRunner(checkpoint)
    if backend is Backend.ONNXRUNTIME:
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(onnx_path)
    if backend is Backend.OPENVINO:
        from segedge.runtime.openvino_runner import OpenVINORunner

        return OpenVINORunner(onnx_path)
    from segedge.engine.build import build_engine
    from segedge.engine.options import BuildOptions
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine = tmp_path / "tiny.engine"
    h, w = checkpoint.preprocess.size
    build_engine(onnx_path, engine, BuildOptions.from_strings(f"1x3x{h}x{w}", f"1x3x{h}x{w}", f"4x3x{h}x{w}"))
    return TensorRTRunner(engine)


@pytest.fixture(params=RUNNERS, ids=lambda b: getattr(b, "value", str(b)))
def runner(request, tiny_checkpoint, tiny_onnx, tmp_path):
    opened = _open(request.param, tiny_checkpoint, tiny_onnx, tmp_path)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def batch(tiny_contract):
    h, w = tiny_contract.input_size
    return np.random.default_rng(0).normal(size=(3, 3, h, w)).astype(np.float32)


def reference_logits(checkpoint, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return checkpoint.model(torch.from_numpy(batch)).numpy()


def test_logits_have_the_contracts_shape_and_match_pytorch(runner, tiny_checkpoint, tiny_contract, batch):
    logits = runner.infer(batch)
    assert logits.dtype == np.float32 and logits.flags.c_contiguous
    assert logits.shape == (3, tiny_contract.num_classes, *tiny_contract.input_size)
    np.testing.assert_allclose(logits, reference_logits(tiny_checkpoint, batch), atol=1e-4)


def test_out_buffer_is_filled_and_returned(runner, tiny_contract, batch):
    out = np.full((3, tiny_contract.num_classes, *tiny_contract.input_size), np.nan, np.float32)
    got = runner.infer(batch, out=out)
    assert got is out
    np.testing.assert_array_equal(out, runner.infer(batch))


def test_wrong_out_buffer_and_wrong_input_are_refused(runner, tiny_contract, batch):
    with pytest.raises(InputError, match="output buffer"):
        runner.infer(batch, out=np.empty((3, tiny_contract.num_classes + 1, *tiny_contract.input_size), np.float32))
    with pytest.raises(InputError, match="float32"):
        runner.infer(batch.astype(np.float64))
    with pytest.raises(InputError, match=r"\(N, 3, 16, 16\)"):
        runner.infer(batch[:, :, :8])


def test_contract_round_trips_through_the_artifact(runner, tiny_contract):
    assert runner.contract.preprocess == tiny_contract.preprocess  # mean/std included
    assert runner.contract.classes == tiny_contract.classes
    assert runner.contract.palette == tiny_contract.palette and len(runner.contract.palette) == 4
    assert runner.contract.model == "tiny-conv"
    assert runner.backend in tuple(Backend)


def test_segment_gives_a_class_map_and_overlay_at_the_frame_size(runner, tiny_checkpoint):
    frame = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    class_map, overlay = runner.segment(frame)
    assert class_map.shape == (37, 53) and class_map.dtype == np.uint8
    assert overlay.shape == frame.shape and overlay.dtype == np.uint8
    # the class map is the model's argmax on the contract's preprocessing, upsampled
    expected = reference_logits(tiny_checkpoint, runner.preprocess(frame)).argmax(1)[0]
    import cv2

    np.testing.assert_array_equal(class_map, cv2.resize(expected.astype(np.uint8), (53, 37), interpolation=cv2.INTER_NEAREST))
    drawn = np.isin(class_map, [i for i, c in enumerate(runner.contract.palette) if c is not None])
    assert (overlay[~drawn] == frame[~drawn]).all()
    assert drawn.any() and (overlay[drawn] != frame[drawn]).any()


def test_close_is_idempotent_and_the_runner_is_a_context_manager(runner):
    with runner as same:
        assert same is runner
    runner.close()  # a second close must not fail


def test_max_batch_of_a_fixed_batch_artifact_is_enforced(tiny_checkpoint, tiny_onnx_writer, tmp_path, batch):
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "b2.onnx", batch=2))
    assert runner.max_batch == 2
    assert runner.infer(batch[:2]).shape[0] == 2
    with pytest.raises(InputError, match="exceeds this artifact's maximum batch 2"):
        runner.infer(batch)
