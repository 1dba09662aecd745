"""TensorRT engines on a GPU: FP32 (true FP32: TF32 cleared), FP16 and INT8 engines against
ONNX Runtime on the CPU, the CUDA graph across batch 1 -> N -> 1, several worker threads on
one runner, engines from elsewhere, and a class-count mismatch.

Every test here needs TensorRT, cuda-python and a CUDA GPU (``engine_build_available()``:
TensorRT without a GPU skips, it does not error). ``scripts/gpu-check.sh`` runs them.
"""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from segedge.engine.tensorrt_api import engine_build_available
from segedge.errors import InputError, ModelFormatError

pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.gpu,
    pytest.mark.skipif(not engine_build_available(), reason="needs TensorRT, cuda-python and a CUDA GPU (pip install 'segedge[tensorrt-cu12]' or '[tensorrt-cu13]' on a GPU machine)"),
]

# FP32 engine vs ONNX Runtime FP32 on the CPU: true FP32 differs by kernel summation order
# only (~1e-4 on these logits); TF32 (10-bit mantissa) moves them by up to ~0.4 on this model
# (max-unpool turns near-ties into moved values), so the tolerance follows the sidecar's tf32.
FP32_TOLERANCE = {False: 1e-2, True: 0.5}
PET = Path(os.environ.get("SEGEDGE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "oxford-iiit-pet-sample"


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 128, 128), dtype=np.float32)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


@pytest.fixture(scope="module")
def calibration(pet_images_or_photos):
    from segedge.calibration.dataset import CalibrationSet

    return CalibrationSet(pet_images_or_photos, "test images", [f"image {i}" for i in range(len(pet_images_or_photos))])


@pytest.fixture(scope="module")
def pet_images_or_photos(embedded):
    """Real images: the Pet sample where present, else scikit-image's bundled photos (offline)."""
    from segedge.runtime.torch_runner import TorchRunner

    config = TorchRunner(embedded).preprocess_config
    if PET.exists():  # the same folder tests/conftest.py reads
        from segedge.calibration.dataset import load_calibration_set

        return load_calibration_set(PET, config, num_images=32, seed=0).images
    import skimage.data
    from segedge.data.transforms import preprocess

    photos = [np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1]) for name in ("chelsea", "astronaut", "coffee", "rocket")]
    photos += [np.ascontiguousarray(p[:, ::-1]) for p in photos]
    return preprocess(photos, config)


@pytest.fixture(scope="module")
def engines(tmp_path_factory, exported_onnx, calibration):
    """FP32, FP16 and INT8 engines of the embedded model (batch 1..4), built once."""
    from segedge.pipeline.build import build_artifact
    from segedge.engine.options import BuildOptions

    folder = tmp_path_factory.mktemp("engines")
    options = BuildOptions.from_strings(max_shape="4x3x128x128", timing_cache=folder / "trt.cache", optimization_level=1)
    built = {}
    for precision in ("fp32", "fp16", "int8"):
        result = build_artifact(exported_onnx, folder / f"m-{precision}.engine", precision, calibration if precision == "int8" else None, engine_options=options)
        built[precision] = result.engine
    return built


def test_fp32_engine_is_true_fp32_and_matches_onnx_runtime(engines, exported_onnx):
    from segedge.engine.sidecar import load_engine_info
    from segedge.runtime.factory import load_runner
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    info = load_engine_info(engines["fp32"])
    assert info.profile["max"] == [4, 3, 128, 128] and info.builder["max_shape"] == [4, 3, 128, 128]
    assert json.loads(engines["fp32"].with_name(engines["fp32"].name + ".json").read_text())["tf32"] is info.tf32
    batch = _batch(4)
    reference = OnnxRuntimeRunner(exported_onnx).infer(batch)
    with load_runner(engines["fp32"]) as runner:
        got = runner.infer(batch)
        assert _agreement(got, reference) >= 0.999
        assert np.abs(got - reference).max() < FP32_TOLERANCE[bool(info.tf32)], f"tf32={info.tf32}"
        with pytest.raises(InputError, match="maximum batch 4"):
            runner.infer(np.zeros((5, 3, 128, 128), np.float32))


@pytest.mark.parametrize("precision, agreement", [("fp16", 0.99), ("int8", 0.95)])
def test_fp16_and_int8_engines_agree_with_onnx_runtime(engines, exported_onnx, pet_images_or_photos, precision, agreement):
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    images = pet_images_or_photos[:4]
    reference = OnnxRuntimeRunner(exported_onnx).infer(images)
    with TensorRTRunner(engines[precision]) as runner:
        assert runner.precision == precision
        assert _agreement(runner.infer(images), reference) >= agreement


def test_cuda_graph_survives_batch_1_n_1(engines):
    """A graph captured at batch 1 must not be replayed after the context ran batch 4."""
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    batch = _batch(4, seed=1)
    with TensorRTRunner(engines["fp32"]) as plain:
        expected_1, expected_4 = plain.infer(batch[:1]), plain.infer(batch)
        expected_1b = plain.infer(batch[1:2])
    with TensorRTRunner(engines["fp32"], cuda_graph=True) as runner:
        for _ in range(3):  # plain enqueue, then capture, then replays
            np.testing.assert_allclose(runner.infer(batch[:1]), expected_1, atol=1e-4)
        np.testing.assert_allclose(runner.infer(batch), expected_4, atol=1e-4)
        np.testing.assert_allclose(runner.infer(batch), expected_4, atol=1e-4)  # batch 4 from its own graph
        for _ in range(2):  # back to batch 1, other data: the batch-1 graph reads the same buffers
            np.testing.assert_allclose(runner.infer(batch[1:2]), expected_1b, atol=1e-4)


@pytest.mark.parametrize("profiles", [1, 4])
def test_worker_threads_each_get_their_own_context(engines, exported_onnx, tmp_path, profiles):
    """`run X.engine --workers 4`: concurrent calls must not share a context, stream or buffers,
    and on this dynamic-batch engine no two contexts may run on one optimization profile at once
    (issue 24, item 1): built with --profiles 4 they get profiles 0-3, with 1 they take turns."""
    from segedge.engine.build import build_engine
    from segedge.engine.options import BuildOptions
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine = engines["fp32"]
    if profiles > 1:
        onnx = tmp_path / "m.onnx"
        onnx.write_bytes(Path(exported_onnx).read_bytes())
        engine = tmp_path / "m.engine"
        build_engine(onnx, engine, BuildOptions.from_strings(max_shape="4x3x128x128", optimization_level=1, profiles=profiles))
    inputs = [_batch(1, seed=s) for s in range(8)]
    with TensorRTRunner(engine) as runner:
        assert len(runner.profiles) == profiles and runner._pool.capacity == profiles
        expected = [runner.infer(x) for x in inputs]
        results: dict[int, list[np.ndarray]] = {}
        barrier = threading.Barrier(4)

        def work(worker: int) -> None:
            barrier.wait()
            results[worker] = [runner.infer(x) for x in inputs for _ in range(3)]

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == 4
        for got in results.values():
            for i, logits in enumerate(got):
                np.testing.assert_allclose(logits, expected[i // 3], atol=1e-4)
        assert sorted(slot.profile_index for slot in runner._pool.all) == list(range(len(runner._pool.all)))
        assert len(runner._pool.all) <= profiles


def test_engine_from_elsewhere_corrupt_or_of_other_classes_is_one_line(tmp_path, engines):
    import tensorrt

    from segedge.engine.sidecar import load_engine_info
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine = tmp_path / "m.engine"
    engine.write_bytes(engines["fp32"].read_bytes())
    info = load_engine_info(engines["fp32"])
    info.tensorrt_version = "9.0.0"
    info.save(engine)
    with pytest.raises(ModelFormatError, match=r"built with TensorRT 9\.0\.0 .* rebuild it here: segedge build-engine"):
        TensorRTRunner(engine)
    info.tensorrt_version = tensorrt.__version__
    info.metadata = {**info.metadata, "classes": json.dumps([f"class {i}" for i in range(21)])}
    info.save(engine)
    with pytest.raises(ModelFormatError, match="outputs 3 classes but its contract names 21"):
        TensorRTRunner(engine)
    engine.write_bytes(engine.read_bytes()[:1000])
    with pytest.raises(ModelFormatError, match="is not the engine its sidecar"):  # the sidecar's hash catches it first
        TensorRTRunner(engine)
    info.engine_sha256 = ""  # a sidecar without the hash (older segedge): TensorRT itself refuses it
    info.save(engine)
    with pytest.raises(ModelFormatError, match="cannot deserialise"):
        TensorRTRunner(engine)


def test_a_failed_init_frees_what_it_allocated(tmp_path, engines):
    """Ten refused loads (class-count mismatch, found after the sizing context was made) leave
    the GPU's free memory where it was (within 64 MB of allocator noise)."""
    import gc

    from segedge.engine.sidecar import load_engine_info
    from segedge.engine.tensorrt_api import cuda_check, import_cudart
    from segedge.runtime.tensorrt_runner import TensorRTRunner

    engine = tmp_path / "m.engine"
    engine.write_bytes(engines["fp32"].read_bytes())
    info = load_engine_info(engines["fp32"])
    info.metadata = {**info.metadata, "classes": json.dumps(["a", "b"])}
    info.save(engine)
    cudart = import_cudart()
    with pytest.raises(ModelFormatError):  # warm-up: TensorRT's one-time allocations
        TensorRTRunner(engine)
    gc.collect()
    free_before, _ = cuda_check(cudart.cudaMemGetInfo())
    for _ in range(10):
        with pytest.raises(ModelFormatError, match="outputs 3 classes but its contract names 2"):
            TensorRTRunner(engine)
    gc.collect()
    free_after, _ = cuda_check(cudart.cudaMemGetInfo())
    assert free_before - free_after < 64 << 20, (free_before, free_after)
