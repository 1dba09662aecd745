"""A TensorRT-form INT8 on its FP16 base runs right in ONNX Runtime even where the product of
its FP16 scales underflows: ONNX Runtime's WeightBiasQuantization pass would turn the float
bias into int32 with that product as scale (an 8-epoch SegNet fell to 47% argmax agreement with
PyTorch in ONNX Runtime through it, 97.5% without it)."""

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from segedge.calibration.dataset import CalibrationSet
from segedge.calibration.quantize import quantize_int8
from segedge.models.checkpoint import Checkpoint
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner


@pytest.fixture(scope="module")
def small_scale_model(tiny_contract):
    """Two convolutions; the first's bias is large against input scale x weight scale (about
    2 / 1.2e-5 = 1.7e5 quantization steps, more than FP16's largest number, 65504), as in the
    trained SegNet's encoder (up to 1.8e5)."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, tiny_contract.num_classes, 1)
    ).eval()
    with torch.no_grad():
        model[0].bias.copy_(torch.linspace(-2.0, 2.0, 8))
    contract = dataclasses.replace(tiny_contract, preprocess=dataclasses.replace(tiny_contract.preprocess, mean=None, std=None))
    return Checkpoint.from_module(model, contract)


def test_tensorrt_form_on_fp16_base_matches_pytorch_in_onnxruntime(tmp_path, small_scale_model, tiny_onnx_writer):
    fp32 = tiny_onnx_writer(small_scale_model, tmp_path / "small.onnx")
    images = np.random.default_rng(0).random((16, 3, 16, 16), dtype=np.float32)
    calibration = CalibrationSet(images[:8], "random", [str(i) for i in range(8)])
    int8 = quantize_int8(fp32, tmp_path / "small-int8.onnx", calibration, target="tensorrt", method="minmax").path
    with torch.no_grad():
        reference = small_scale_model.model(torch.from_numpy(images)).numpy()
    runner = OnnxRuntimeRunner(int8)
    try:
        logits = runner.infer(images)
    finally:
        runner.close()
    assert np.abs(logits - reference).max() < 0.02, np.abs(logits - reference).max()

    # the same file with all of ONNX Runtime's optimizations: the bias is broken (what the runner avoids)
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    broken = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert np.abs(broken - reference).max() > 0.1
