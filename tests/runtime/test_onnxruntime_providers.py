"""ONNX Runtime's GPU providers, checked on the CPU: the options segedge passes (TF32 off,
precision flags from the graph, a TensorRT cache keyed by the model's bytes) and the refusal
of a session that silently fell back to another provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segedge.errors import BackendUnavailableError, InputError
from segedge.runtime.onnxruntime_providers import (
    GraphPrecision,
    check_active_provider,
    fp32_math,
    gpu_install_hint,
    graph_precision,
    installed_onnxruntime_builds,
    provider_chain,
    tensorrt_cache_dir,
)
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner


def conv_model(weight: float = 1.0, kind: str = "fp32") -> onnx.ModelProto:
    """``x (N, 3, 8, 8) -> [Q/DQ] -> Conv 3->3 -> y``: FP32, FP16 (FP16 weights, Casts around
    the conv) or a Q/DQ INT8 model, written out node by node."""
    w = numpy_helper.from_array(np.full((3, 3, 1, 1), weight, np.float16 if kind == "fp16" else np.float32), "w")
    nodes, inits, src = [], [w], "x"
    if kind == "fp16":
        nodes.append(helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16))
        src = "x16"
    if kind == "int8":
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]), helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        src = "xd"
    nodes.append(helper.make_node("Conv", [src, "w"], ["c"]))
    nodes.append(helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT) if kind == "fp16" else helper.make_node("Identity", ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def saved(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_cuda_provider_runs_fp32_as_ieee_fp32(tmp_path):
    """The CUDA provider's ``use_tf32`` defaults to on (ONNX Runtime docs): FP32 would be TF32."""
    model = saved(conv_model(), tmp_path / "m.onnx")
    for provider in ("cuda", "tensorrt"):
        options = dict(provider_chain(provider, model))["CUDAExecutionProvider"]
        assert options["use_tf32"] == 0 and options["device_id"] == 0


def test_provider_order_and_device(tmp_path):
    model = saved(conv_model(), tmp_path / "m.onnx")
    assert provider_chain("cpu", model) == [("CPUExecutionProvider", {})]
    assert [n for n, _ in provider_chain("tensorrt", model, device_id=1)] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert all(o["device_id"] == 1 for n, o in provider_chain("tensorrt", model, device_id=1) if n != "CPUExecutionProvider")
    with pytest.raises(InputError, match="cpu, cuda, tensorrt"):
        provider_chain("rocm", model)


@pytest.mark.parametrize("kind, int8, fp16", [("fp32", False, False), ("fp16", False, True), ("int8", True, False)])
def test_tensorrt_precision_flags_come_from_the_graph(tmp_path, kind, int8, fp16):
    """A Q/DQ model needs ``trt_int8_enable`` on the TensorRT provider and an FP16 one
    ``trt_fp16_enable``; both are read from the graph, not from a file name or metadata."""
    model = conv_model(kind=kind)
    precision = graph_precision(model)
    assert (precision.int8, precision.fp16) == (int8, fp16)
    assert precision.label == kind
    options = provider_chain("tensorrt", saved(model, tmp_path / "m.onnx"), precision=precision)[0][1]
    assert options["trt_int8_enable"] is int8 and options["trt_fp16_enable"] is fp16


def test_int8_on_an_fp16_base_enables_both():
    model = conv_model(kind="int8")
    model.graph.node.append(helper.make_node("Cast", ["y"], ["y16"], to=TensorProto.FLOAT16))
    assert graph_precision(model) == GraphPrecision(int8=True, fp16=True)


def test_tensorrt_cache_is_keyed_by_the_model_bytes(tmp_path):
    """A model re-exported or recalibrated at the same path must not reuse the old engine."""
    path = saved(conv_model(1.0), tmp_path / "m.onnx")
    first = tensorrt_cache_dir(path)
    assert first.parent == tmp_path / "m.trt-cache"
    saved(conv_model(2.0), path)  # same path, new weights
    second = tensorrt_cache_dir(path)
    assert second != first
    copy = saved(conv_model(2.0), tmp_path / "elsewhere.onnx")
    assert tensorrt_cache_dir(copy, tmp_path / "shared").name == second.name  # same bytes, same key
    options = provider_chain("tensorrt", path, cache_dir=tmp_path / "shared")[0][1]
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path / "shared" / second.name)


@pytest.mark.parametrize(
    "provider, active",
    [
        ("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"]),  # TensorRT failed to load, CUDA took over
        ("tensorrt", ["CPUExecutionProvider"]),
        ("cuda", ["CPUExecutionProvider"]),
        ("cuda", []),
    ],
)
def test_a_session_that_fell_back_is_refused_in_one_line(provider, active):
    with pytest.raises(BackendUnavailableError) as info:
        check_active_provider(provider, active, Path("m.onnx"))
    message = str(info.value)
    assert "\n" not in message and "fell back" in message and ("CPUExecutionProvider" in message or "none" in message)


@pytest.mark.parametrize("provider, active", [("cpu", ["CPUExecutionProvider"]), ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])])
def test_the_asked_provider_first_is_accepted(provider, active):
    check_active_provider(provider, active, Path("m.onnx"))


def test_cpu_runner_checks_its_session(tmp_path):
    """The check runs on every session: a CPU session passes it and runs."""
    path = saved(conv_model(), tmp_path / "m.onnx")
    with OnnxRuntimeRunner(path.with_name("m.onnx")) as runner:
        assert runner.session.get_providers()[0] == "CPUExecutionProvider"
        assert runner.precision == "fp32"


def test_fp32_on_the_tensorrt_provider_is_labelled_tf32(monkeypatch, tmp_path):
    """TensorRT's TF32 flag is on by default and the provider cannot clear it: the report row
    must say tf32, not fp32, unless NVIDIA_TF32_OVERRIDE=0 turns it off."""
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    assert fp32_math("tensorrt", "fp32") == "tf32"
    assert fp32_math("tensorrt", "fp16") == fp32_math("tensorrt", "int8") == "ieee"
    assert fp32_math("cuda", "fp32") == fp32_math("cpu", "fp32") == "ieee"  # use_tf32: 0 on CUDA
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert fp32_math("tensorrt", "fp32") == "ieee"
    with OnnxRuntimeRunner(saved(conv_model(), tmp_path / "m.onnx")) as runner:
        assert runner.fp32_math == "ieee" and runner.name == "m.onnx (onnxruntime fp32)"
        runner.fp32_math = "tf32"  # what a TensorRT-provider session of this FP32 model gets
        assert runner.name == "m.onnx (onnxruntime tf32)"


def test_the_gpu_hint_names_the_fix_for_what_is_installed():
    both = gpu_install_hint(["onnxruntime", "onnxruntime-gpu"])
    assert "both installed" in both and "pip uninstall -y onnxruntime onnxruntime-gpu" in both and "segedge[gpu]" in both
    assert "pip uninstall -y onnxruntime &&" in gpu_install_hint(["onnxruntime"])
    assert "CUDA major" in gpu_install_hint(["onnxruntime-gpu"])
    import onnxruntime  # noqa: F401 (some build is installed where these tests run)

    assert len(installed_onnxruntime_builds()) >= 1
