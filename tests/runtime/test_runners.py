"""Every backend behind one Runner interface."""

import numpy as np
import pytest

from segedge.engine.tensorrt_api import engine_build_available, tensorrt_available
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.factory import load_runner
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.torch_runner import TorchRunner


def test_torch_runner_validates_its_input(embedded):
    runner = TorchRunner(embedded)
    with pytest.raises(InputError, match=r"\(N, 3, 128, 128\)"):
        runner.infer(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(InputError, match="float32"):
        runner.infer(np.zeros((1, 3, 128, 128), np.float64))


@pytest.mark.slow
def test_runners_agree_and_share_the_artifacts_preprocessing(exported_onnx, embedded, pet_root):
    from segedge.data.oxford_pet import OxfordPet

    dataset = OxfordPet(pet_root, "test")
    images = [dataset.read(i)[0] for i in range(4)]
    torch_runner = load_runner(embedded.path)
    onnx_runner = load_runner(exported_onnx)
    assert isinstance(onnx_runner, OnnxRuntimeRunner)
    assert onnx_runner.preprocess_config == torch_runner.preprocess_config  # read back from ONNX metadata
    assert onnx_runner.classes == torch_runner.classes
    a, b = torch_runner.predict(images), onnx_runner.predict(images)
    assert a.shape == (4, 128, 128) and a.dtype == np.uint8
    assert (a == b).mean() >= 0.999


def test_unknown_artifact_suffix_lists_the_valid_ones(tmp_path):
    with pytest.raises(InputError, match=r"\.engine.*\.onnx.*\.pt"):
        load_runner(tmp_path / "model.tflite")


def test_missing_onnx_is_a_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_runner(tmp_path / "absent.onnx")


def test_gpu_providers_are_refused_with_the_extra_to_install(tiny_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(BackendUnavailableError, match=r"segedge\[gpu\]"):
        OnnxRuntimeRunner(tiny_onnx, provider="cuda")


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed: the absent-TensorRT message cannot be checked")
def test_engine_without_tensorrt_says_which_extra_to_install(tmp_path):
    from segedge.engine.build import EngineInfo

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    EngineInfo("m.engine", "10.3.0", "Orin", "8.7", "int8", "input", {"max": [8, 3, 128, 128]}, "0" * 64).save(engine)
    with pytest.raises(BackendUnavailableError, match=r"segedge\[tensorrt-cu12\]"):
        load_runner(engine)


@pytest.mark.tensorrt
@pytest.mark.skipif(not engine_build_available(), reason="needs TensorRT, cuda-python and a CUDA GPU (pip install 'segedge[tensorrt-cu12]' or '[tensorrt-cu13]' on a GPU machine)")
def test_tensorrt_engine_matches_onnx_runtime(tmp_path, exported_onnx):
    from segedge.engine.build import build_engine

    engine = tmp_path / "m.engine"
    build_engine(exported_onnx, engine)
    batch = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    with load_runner(engine) as trt_runner:
        got = trt_runner.infer(batch)
    expected = OnnxRuntimeRunner(exported_onnx).infer(batch)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999
