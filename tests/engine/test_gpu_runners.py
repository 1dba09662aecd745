"""GPU backends. The CPU-side contracts run everywhere; the rest is marked `gpu` / `tensorrt`
and skips with a reason where there is no GPU or no TensorRT."""

import json

import numpy as np
import pytest
import torch

from segedge.engine.tensorrt_api import tensorrt_available
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to PyTorch")
needs_tensorrt = pytest.mark.skipif(not tensorrt_available(), reason="TensorRT is not installed (pip install 'segedge[tensorrt-cu12]' or '[tensorrt-cu13]' on a GPU machine)")


# ONNX Runtime provider options (TF32, precision flags, keyed cache, fallback): tests/runtime/test_onnxruntime_providers.py


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: the no-CUDA message cannot be checked")
def test_torch_on_cuda_without_a_gpu_is_one_clear_error(embedded):
    from segedge.runtime.torch_runner import TorchRunner

    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        TorchRunner(embedded, device="cuda")


def test_fp16_autocast_is_cuda_only(embedded):
    from segedge.runtime.torch_runner import TorchRunner

    with pytest.raises(InputError, match="CUDA only"):
        TorchRunner(embedded, device="cpu", fp16=True)


@pytest.mark.gpu
@needs_cuda
def test_torch_cuda_matches_the_cpu_reference(embedded):
    from segedge.runtime.torch_runner import TorchRunner

    batch = np.random.default_rng(0).random((4, 3, 128, 128), dtype=np.float32)
    cpu = TorchRunner(embedded).infer(batch)
    fp32 = TorchRunner(embedded, device="cuda").infer(batch)
    fp16 = TorchRunner(embedded, device="cuda", fp16=True)
    assert fp16.precision == "fp16"
    half = fp16.infer(batch)
    assert np.abs(fp32 - cpu).max() < 1e-3
    assert (half.argmax(1) == cpu.argmax(1)).mean() > 0.98


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(), reason="onnxruntime-gpu is not installed")
def test_onnxruntime_cuda_matches_cpu(exported_onnx):
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    batch = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    cpu = OnnxRuntimeRunner(exported_onnx).infer(batch)
    gpu = OnnxRuntimeRunner(exported_onnx, provider="cuda").infer(batch)
    assert np.abs(gpu - cpu).max() < 1e-3


@pytest.mark.tensorrt
@needs_tensorrt
def test_engine_build_profile_timing_cache_and_runner(tmp_path, exported_onnx):
    from segedge.engine.build import build_engine
    from segedge.engine.options import BuildOptions
    from segedge.runtime.factory import load_runner
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine, cache = tmp_path / "m.engine", tmp_path / "trt.cache"
    options = BuildOptions.from_strings(max_shape="4x3x128x128", timing_cache=cache, optimization_level=1)
    info = build_engine(exported_onnx, engine, options)
    assert info.profile["max"] == [4, 3, 128, 128] and cache.stat().st_size > 0
    assert json.loads((tmp_path / "m.engine.json").read_text())["builder"]["max_shape"] == [4, 3, 128, 128]
    batch = np.random.default_rng(0).random((4, 3, 128, 128), dtype=np.float32)
    reference = OnnxRuntimeRunner(exported_onnx).infer(batch)
    with load_runner(engine) as runner:
        assert np.abs(runner.infer(batch) - reference).max() < 1e-2
        with pytest.raises(InputError, match="maximum batch 4"):
            runner.infer(np.zeros((5, 3, 128, 128), np.float32))
    with TensorRTRunner(engine, cuda_graph=True) as runner:
        for _ in range(3):  # capture on the first batch-1 call, replay after
            assert np.abs(runner.infer(batch[:1]) - reference[:1]).max() < 1e-2
        assert np.abs(runner.infer(batch) - reference).max() < 1e-2  # other batches: plain enqueue


@pytest.mark.tensorrt
@needs_tensorrt
def test_engine_from_elsewhere_or_corrupt_is_one_line(tmp_path, exported_onnx):
    from segedge.engine.build import build_engine, load_engine_info
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine = tmp_path / "m.engine"
    info = build_engine(exported_onnx, engine)
    info.tensorrt_version = "9.0.0"
    info.save(engine)
    with pytest.raises(ModelFormatError, match=r"built with TensorRT 9\.0\.0 .* rebuild it here: segedge build-engine"):
        TensorRTRunner(engine)
    engine.write_bytes(engine.read_bytes()[:1000])
    load_engine_info(engine)  # the sidecar is fine ...
    info.tensorrt_version = __import__("tensorrt").__version__
    info.save(engine)
    with pytest.raises(ModelFormatError, match="cannot deserialise"):  # ... the engine is not
        TensorRTRunner(engine)
