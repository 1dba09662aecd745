"""One small real report (4 Pet test images, 5 video frames with masks; candidates FP32 and
INT8 ONNX) shared by the rendering, schema, video and browser tests."""

import pytest


@pytest.fixture(scope="session")
def int8_onnx(embedded, exported_onnx, pet_root, tmp_path_factory):
    """The embedded model quantized to Q/DQ INT8 on 8 trainval images (min-max): a real
    candidate that disagrees with the reference on some pixels."""
    from segedge.calibration.dataset import load_calibration_set
    from segedge.calibration.quantize import quantize_int8

    calibration = load_calibration_set(pet_root, embedded.preprocess, num_images=8)
    return quantize_int8(exported_onnx, tmp_path_factory.mktemp("int8") / "segnet-dsc-int8.onnx", calibration, method="minmax").path


@pytest.fixture(scope="session")
def small_report(embedded, exported_onnx, int8_onnx, pet_root, libby_video, libby_dir):
    from segedge.report.drift import compare, load_eval_data
    from segedge.report.video import video_drift
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from segedge.runtime.torch_runner import TorchRunner

    reference = TorchRunner(embedded)
    candidates = [OnnxRuntimeRunner(exported_onnx), OnnxRuntimeRunner(int8_onnx)]
    video = video_drift(reference, candidates, libby_video, libby_dir, every=12)
    data = load_eval_data(pet_root, "test", limit=4)
    return compare(reference, candidates, data, latency_runs=3, warmup=1, worst=2, video=video)
