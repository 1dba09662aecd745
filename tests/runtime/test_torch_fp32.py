"""PyTorch's CUDA "FP32" must be IEEE FP32: cuDNN convolutions default to TF32 on Ampere and
newer (``torch.backends.cudnn.conv.fp32_precision == "tf32"``)."""

import pytest
import torch

from segedge.runtime.torch_runner import TorchRunner, use_ieee_fp32

new_api = hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


@pytest.fixture
def tf32_settings():
    """Start from PyTorch's CUDA defaults with TF32 convolutions and matmuls; restore after."""
    if not new_api:
        pytest.skip(f"torch {torch.__version__} has no fp32_precision API")
    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    yield
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before


def test_ieee_fp32_clears_tf32_for_convolutions_and_matmuls(tf32_settings):
    use_ieee_fp32()
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to PyTorch")
def test_cuda_runner_sets_ieee_fp32(tf32_settings, embedded):
    runner = TorchRunner(embedded, device="cuda")
    assert torch.backends.cudnn.conv.fp32_precision == "ieee" and runner.precision == "fp32"
