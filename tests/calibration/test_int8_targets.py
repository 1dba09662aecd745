"""INT8 per target: the CPU form that ONNX Runtime runs on integer kernels (checked in its
optimized graph), the TensorRT form on an FP16 base, the target taken from the FP32 model,
and a calibration cache keyed by target."""

import collections
import json

import onnx
import pytest
from typer.testing import CliRunner

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.quantize import conv_layers, default_reduce_range, quantize_int8
from segedge.pipeline.sensitivity import held_out_set, mixed_precision
from segedge.cli.main import app
from segedge.cpuinfo import CpuInfo
from segedge.errors import InputError
from segedge.contract import Contract

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration(embedded, pet_root):
    return load_calibration_set(pet_root, embedded.preprocess, num_images=8)


def optimized_ops(path, tmp_path) -> collections.Counter:
    """Op types of the graph ONNX Runtime's CPU provider runs after all its optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)


def test_cpu_form_runs_every_quantized_convolution_on_integer_kernels(tmp_path, native_onnx, calibration):
    result = quantize_int8(native_onnx, tmp_path / "cpu.onnx", calibration)
    assert result.target == "onnxruntime" and result.int8_convs == 40
    ops = optimized_ops(tmp_path / "cpu.onnx", tmp_path)
    assert ops["QLinearConv"] == 40 and ops["Conv"] == ops["FusedConv"] == 0, ops
    # the TensorRT layout of the same model: each convolution followed by a ReLU (Q after the
    # ReLU, for TensorRT) stays float after optimization, 20 of 40
    quantize_int8(native_onnx, tmp_path / "trt.onnx", calibration, target="tensorrt", fp16_base=False)
    trt_ops = optimized_ops(tmp_path / "trt.onnx", tmp_path)
    assert trt_ops["Conv"] + trt_ops["FusedConv"] == 20, trt_ops


def test_cpu_form_keeps_exactly_the_excluded_layer_in_float(tmp_path, native_onnx, calibration):
    layer = "uc1.seq.3"
    result = quantize_int8(native_onnx, tmp_path / "mixed.onnx", calibration, exclude=[layer])
    assert result.float_layers == [layer] and result.int8_convs == 38
    ops = optimized_ops(tmp_path / "mixed.onnx", tmp_path)
    assert ops["QLinearConv"] == 38 and ops["Conv"] + ops["FusedConv"] == len(conv_layers(onnx.load(str(native_onnx)))[layer])


def test_cpu_form_tracks_fp32(tmp_path, native_onnx, calibration, embedded, pet_root):
    from segedge.data.samples import load_split_arrays
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    images, _, _ = load_split_arrays(pet_root, "test", embedded.preprocess, limit=8)
    quantize_int8(native_onnx, tmp_path / "cpu.onnx", calibration)
    fp32 = OnnxRuntimeRunner(native_onnx).infer(images).argmax(1)
    runner = OnnxRuntimeRunner(tmp_path / "cpu.onnx")
    assert runner.precision == "int8"
    assert (runner.infer(images).argmax(1) == fp32).mean() > 0.9  # 96.6% measured


def test_target_follows_the_fp32_model_and_is_validated(tmp_path, exported_onnx, native_onnx, calibration):
    assert quantize_int8(exported_onnx, tmp_path / "a.onnx", calibration).target == "tensorrt"
    with pytest.raises(InputError, match="MaxUnpool export"):
        quantize_int8(exported_onnx, tmp_path / "b.onnx", calibration, target="onnxruntime")
    with pytest.raises(InputError, match="unknown INT8 target"):
        quantize_int8(native_onnx, tmp_path / "c.onnx", calibration, target="openvino")
    assert not (tmp_path / "b.onnx").exists() and not (tmp_path / "c.onnx").exists()


def test_tensorrt_form_is_int8_plus_fp16(tmp_path, exported_onnx, calibration):
    quantize_int8(exported_onnx, tmp_path / "int8.onnx", calibration)
    model = onnx.load(str(tmp_path / "int8.onnx"))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    model = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    types |= {i.name: i.data_type for i in model.graph.initializer}
    half = onnx.TensorProto.FLOAT16
    for node in model.graph.node:
        if node.op_type in ("Conv", "Relu", "MaxPool", "Max", "Where", "DepthToSpace"):
            assert types[node.output[0]] == half, (node.op_type, node.name)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert types[node.input[1]] == half, node.name  # FP16 scales (opset 19)
    floats = [t for t in types.values() if t == onnx.TensorProto.FLOAT]
    assert len(floats) == 2  # the graph input and output only


def test_cache_key_includes_the_target(tmp_path, native_onnx, calibration):
    cache = tmp_path / "calib.json"
    assert quantize_int8(native_onnx, tmp_path / "a.onnx", calibration, cache=cache, target="tensorrt").cache == "computed"
    result = quantize_int8(native_onnx, tmp_path / "b.onnx", calibration, cache=cache)
    assert result.cache.startswith("recomputed") and "target" in result.cache
    assert quantize_int8(native_onnx, tmp_path / "c.onnx", calibration, cache=cache).cache == "reused"


def test_mixed_precision_in_the_cpu_form(tmp_path, native_onnx, calibration, embedded, pet_root):
    held = held_out_set(pet_root, embedded.preprocess, limit=8, exclude=calibration)
    result = mixed_precision(native_onnx, tmp_path / "amp.onnx", calibration, held, max_drop=100.0)
    assert result.met and result.float_layers == []
    assert optimized_ops(tmp_path / "amp.onnx", tmp_path)["QLinearConv"] == 40


def test_reduce_range_only_on_x86_without_int8_dot_products():
    def cpu(arch, *flags):
        return CpuInfo("test", arch, 2, flags)

    assert default_reduce_range(cpu("x86_64", "avx2", "avx512f"))
    assert not default_reduce_range(cpu("x86_64", "avx2", "avx512f", "avx512_vnni"))
    assert not default_reduce_range(cpu("x86_64", "avx2", "avx_vnni"))
    assert not default_reduce_range(cpu("aarch64", "asimd", "asimddp"))


def test_calibrate_cli_refuses_a_target_the_model_cannot_take(tmp_path, exported_onnx, pet_root, one_line_error):
    result = CliRunner().invoke(app, ["calibrate", str(exported_onnx), "--calib-data", str(pet_root), "--target", "onnxruntime",
                                      "-o", str(tmp_path / "q.onnx")])
    line = one_line_error(result)
    assert result.exit_code == 2 and "MaxUnpool" in line and not (tmp_path / "q.onnx").exists()


def test_build_engine_target_option(tmp_path, exported_onnx, native_onnx, pet_root, one_line_error):
    runner = CliRunner()
    base = ["build-engine", "--precision", "int8", "--calib-data", str(pet_root), "--num-images", "4"]
    line = one_line_error(runner.invoke(app, [*base, str(exported_onnx), "--target", "onnxruntime", "-o", str(tmp_path / "a.onnx")]))
    assert "MaxUnpool export" in line and not (tmp_path / "a.onnx").exists()
    result = runner.invoke(app, [*base, str(native_onnx), "-o", str(tmp_path / "b.onnx")])
    assert result.exit_code == 0 and "onnxruntime form" in result.stdout, result.stdout
    assert json.loads(Contract.from_onnx(onnx.load(str(tmp_path / "b.onnx"))).extra["calibration"])["target"] == "onnxruntime"


def test_onnxruntime_on_a_cpu_warns_only_about_the_tensorrt_form(tmp_path, native_onnx, calibration, caplog):
    import logging

    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    cpu = quantize_int8(native_onnx, tmp_path / "cpu.onnx", calibration).path
    trt = quantize_int8(native_onnx, tmp_path / "trt.onnx", calibration, target="tensorrt").path
    with caplog.at_level(logging.WARNING, logger="segedge.runtime.onnxruntime_runner"):
        OnnxRuntimeRunner(cpu).close()
        assert not [r for r in caplog.records if "laid out for TensorRT" in r.message]
        OnnxRuntimeRunner(trt).close()
    warned = [r.getMessage() for r in caplog.records if "laid out for TensorRT" in r.getMessage()]
    assert len(warned) == 1 and "trt.onnx" in warned[0] and "segedge export --target onnxruntime" in warned[0]


def test_cpu_form_of_segnet_lite0_keeps_relu6_residuals_and_concats_in_integer_kernels(tmp_path, default_model, pet_root):
    """EfficientNet-Lite's ReLU6 (Clip), residual Add and the decoder's Concat quantized too:
    ONNX Runtime then runs the whole encoder on QLinear kernels, with no float Clip or Add
    left and no DequantizeLinear/QuantizeLinear pair between two integer kernels (what made
    the first CPU form of segnet-lite0 slower than its FP32)."""
    import dataclasses

    import numpy as np

    from segedge.onnx.export import export_onnx
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    small = dataclasses.replace(default_model.preprocess, height=128, width=128)
    native = export_onnx(default_model, tmp_path / "lite.onnx", target="onnxruntime").path
    calibration = load_calibration_set(pet_root, small, num_images=4)
    quantize_int8(native, tmp_path / "lite-int8.onnx", calibration)
    ops = optimized_ops(tmp_path / "lite-int8.onnx", tmp_path)
    assert ops["QLinearConv"] >= 60 and ops["QLinearAdd"] >= 9, ops  # Lite0: 9 residual blocks
    assert ops["Clip"] == ops["Add"] == 0, ops  # ReLU6 folded into the QLinearConv ranges
    assert ops["Conv"] + ops["FusedConv"] == 0, ops
    fp32 = OnnxRuntimeRunner(native).infer(calibration.images).argmax(1)
    int8 = OnnxRuntimeRunner(tmp_path / "lite-int8.onnx").infer(calibration.images).argmax(1)
    assert np.mean(int8 == fp32) > 0.9
