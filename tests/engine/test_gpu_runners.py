"""GPU backends. The CPU-side contracts run everywhere; the rest is marked `gpu` / `tensorrt`
and skips with a reason where there is no GPU or no TensorRT."""

import numpy as np
import pytest
import torch

from segedge.errors import BackendUnavailableError, InputError
from segedge.runtime.onnxruntime_runner import provider_chain

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to PyTorch")


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


# TensorRT engines on a GPU: tests/engine/test_tensorrt_gpu.py
