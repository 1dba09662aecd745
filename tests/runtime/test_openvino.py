"""OpenVINO runner: agreement with PyTorch on real images, I/O shapes, the MaxUnpool refusal,
the IR with its contract, ``--backend`` selection. Skipped with a reason where openvino is
absent (``pip install 'segedge[openvino]'``; the ``test`` extra installs it)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.contract import Backend, Target
from segedge.runtime.factory import load_runner, resolve_backend

openvino = pytest.importorskip("openvino", reason="openvino is not installed (pip install 'segedge[openvino]')")

from segedge.runtime.openvino_runner import OpenVINORunner  # noqa: E402  (after the skip)


def tiny_onnx(path, ops: str) -> None:
    """A (N, 3, 4, 4) -> (N, 3, 4, 4) graph: ``unpool`` (MaxPool with indices + MaxUnpool),
    ``qdq`` (QuantizeLinear + DequantizeLinear) or ``identity``."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 4, 4])
    inits = []
    if ops == "unpool":
        nodes = [
            helper.make_node("MaxPool", ["input"], ["pooled", "indices"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("MaxUnpool", ["pooled", "indices"], ["logits"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
    elif ops == "qdq":
        inits = [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("zero", TensorProto.INT8, [], [0])]
        nodes = [
            helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["logits"]),
        ]
    else:
        nodes = [helper.make_node("Identity", ["input"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def pet_batch(pet_root, embedded):
    """16 real test-split images, preprocessed as the embedded model expects: (16, 3, 128, 128)."""
    from segedge.data.oxford_pet import OxfordPet
    from segedge.data.transforms import preprocess

    dataset = OxfordPet(pet_root, "test")
    return preprocess([dataset.read(i)[0] for i in range(16)], embedded.preprocess)


@pytest.fixture(scope="module")
def torch_labels(embedded, pet_batch):
    from segedge.runtime.torch_runner import TorchRunner

    return TorchRunner(embedded).infer(pet_batch).argmax(1)


@pytest.mark.slow
def test_fp32_agrees_with_pytorch_on_real_images(exported_onnx, pet_batch, torch_labels, embedded):
    with OpenVINORunner(exported_onnx, threads=1) as runner:
        assert runner.preprocess_config == embedded.preprocess  # read from the ONNX contract
        assert runner.classes == embedded.classes
        assert runner.precision == "fp32"
        labels = np.concatenate([runner.infer(pet_batch[i : i + 8]).argmax(1) for i in range(0, 16, 8)])
    assert (labels == torch_labels).mean() >= 0.999


@pytest.mark.slow
def test_fp16_onnx_runs_and_agrees(exported_onnx, tmp_path, pet_batch, torch_labels):
    from segedge.onnx.fp16 import convert_fp16

    fp16 = convert_fp16(exported_onnx, tmp_path / "fp16.onnx")
    with OpenVINORunner(fp16) as runner:
        labels = runner.infer(pet_batch).argmax(1)
    assert (labels == torch_labels).mean() >= 0.99  # export's FP16 parity bar


@pytest.mark.slow
def test_int8_qdq_onnx_goes_to_openvino_on_auto_and_matches_onnx_runtime(exported_onnx, tmp_path, pet_root, embedded, pet_batch, torch_labels):
    from segedge.calibration.dataset import load_calibration_set
    from segedge.calibration.quantize import quantize_int8

    calibration = load_calibration_set(pet_root, embedded.preprocess, num_images=16, seed=0)
    int8 = quantize_int8(exported_onnx, tmp_path / "int8.onnx", calibration).path
    assert resolve_backend(int8) is Backend.OPENVINO
    with load_runner(int8) as runner, load_runner(int8, backend="onnxruntime") as ort_runner:
        assert isinstance(runner, OpenVINORunner) and runner.precision == "int8"
        ours, theirs = runner.infer(pet_batch).argmax(1), ort_runner.infer(pet_batch).argmax(1)
    # the same Q/DQ graph: OpenVINO's integer kernels round differently from ONNX Runtime's float
    # emulation (they agree on ~95% of pixels here), but drift no further from PyTorch
    assert (ours == torch_labels).mean() >= (theirs == torch_labels).mean() - 0.01


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 3])
def test_io_shapes_and_output_buffer(exported_onnx, n):
    rng = np.random.default_rng(n)
    batch = rng.random((n, 3, 128, 128), dtype=np.float32)
    with OpenVINORunner(exported_onnx) as runner:
        logits = runner.infer(batch)
        assert logits.shape == (n, 3, 128, 128) and logits.dtype == np.float32
        again = runner.infer(rng.random((n, 3, 128, 128), dtype=np.float32))
        assert not np.array_equal(logits, again)  # the first result is a copy, not the request's reused buffer
        out = np.empty((n, 3, 128, 128), np.float32)
        assert runner.infer(batch, out=out) is out
        np.testing.assert_array_equal(out, logits)
        with pytest.raises(InputError, match="shape"):
            runner.infer(rng.random((n, 3, 64, 64), dtype=np.float32))


@pytest.mark.slow
def test_threads_infer_at_once_with_their_own_requests(exported_onnx):
    rng = np.random.default_rng(0)
    batches = [rng.random((1, 3, 128, 128), dtype=np.float32) for _ in range(2)]
    with OpenVINORunner(exported_onnx, threads=1, streams=2) as runner:
        expected = [runner.infer(b) for b in batches]
        results: dict[int, list[np.ndarray]] = {0: [], 1: []}

        def work(i: int) -> None:
            for _ in range(5):
                results[i].append(runner.infer(batches[i]))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(2):
        for logits in results[i]:
            np.testing.assert_array_equal(logits, expected[i])


def test_max_unpool_graph_is_refused_in_one_line_naming_the_tensorrt_form(tmp_path):
    path = tmp_path / "unpool.onnx"
    tiny_onnx(path, "unpool")
    with pytest.raises(ModelFormatError, match="--target tensorrt") as info:
        OpenVINORunner(path)
    assert "\n" not in str(info.value)
    assert resolve_backend(path) is Backend.ONNXRUNTIME  # auto keeps MaxUnpool graphs in ONNX Runtime


def test_auto_sends_qdq_to_openvino_and_float_graphs_to_onnx_runtime(tmp_path):
    tiny_onnx(tmp_path / "qdq.onnx", "qdq")
    tiny_onnx(tmp_path / "float.onnx", "identity")
    assert resolve_backend(tmp_path / "qdq.onnx") is Backend.OPENVINO
    assert resolve_backend(tmp_path / "qdq.onnx", provider="cuda") is Backend.ONNXRUNTIME
    assert resolve_backend(tmp_path / "float.onnx") is Backend.ONNXRUNTIME
    assert resolve_backend(tmp_path / "float.onnx", "openvino") is Backend.OPENVINO
    assert resolve_backend(None) is Backend.TORCH
    with pytest.raises(InputError, match=r"loads \.onnx, \.xml"):
        resolve_backend(tmp_path / "model.pt", Backend.OPENVINO)


def test_a_graph_without_metadata_gets_the_default_preprocessing_at_its_size(tmp_path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 6])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 6])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "relu.onnx"))
    with OpenVINORunner(tmp_path / "relu.onnx") as runner:
        assert runner.preprocess_config.size == (8, 6) and runner.max_batch == 1
        batch = np.linspace(-1, 1, 144, dtype=np.float32).reshape(1, 3, 8, 6)
        np.testing.assert_array_equal(runner.infer(batch), np.maximum(batch, 0))


def test_missing_openvino_names_the_extra(monkeypatch, tmp_path):
    from segedge.onnx.openvino_ir import import_openvino

    monkeypatch.setitem(sys.modules, "openvino", None)  # what an environment without the package gives
    with pytest.raises(BackendUnavailableError, match=r"segedge\[openvino\]"):
        import_openvino()


@pytest.mark.slow
def test_ir_keeps_the_contract_and_the_results(exported_onnx, tmp_path, embedded):
    from segedge.onnx.openvino_ir import save_ir

    xml = save_ir(exported_onnx, tmp_path / "model.xml")
    assert xml.with_suffix(".bin").is_file()
    batch = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    with load_runner(xml) as from_ir, OpenVINORunner(exported_onnx) as from_onnx:
        assert isinstance(from_ir, OpenVINORunner)
        assert from_ir.preprocess_config == embedded.preprocess and from_ir.classes == embedded.classes
        assert from_ir.contract.target == Target.TENSORRT and from_ir.contract.declared
        np.testing.assert_allclose(from_ir.infer(batch), from_onnx.infer(batch), atol=1e-4)
    with pytest.raises(InputError, match="--force"):
        save_ir(exported_onnx, xml)


@pytest.mark.slow
def test_bench_takes_the_backend_option(exported_onnx):
    result = CliRunner().invoke(app, ["bench", str(exported_onnx), "--backend", "openvino", "--runs", "3", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert "openvino fp32" in result.output


def test_backend_that_cannot_load_the_file_is_one_line_exit_2(tmp_path, one_line_error):
    tiny_onnx(tmp_path / "m.onnx", "identity")
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "m.onnx"), "--backend", "tensorrt"])
    assert result.exit_code == 2
    assert "--backend tensorrt loads .engine, .plan" in one_line_error(result)


@pytest.mark.slow
def test_export_openvino_ir_writes_an_ir_the_runner_loads(exported_onnx, tmp_path, one_line_error, embedded):
    cli = CliRunner()
    result = cli.invoke(app, ["export", str(exported_onnx), "-o", str(tmp_path / "m.onnx"), "--openvino-ir", str(tmp_path / "m.xml")])
    assert result.exit_code == 0, result.output
    with load_runner(tmp_path / "m.xml") as runner:
        assert runner.backend == "openvino" and runner.preprocess_config == embedded.preprocess
    line = one_line_error(cli.invoke(app, ["export", str(exported_onnx), "-o", str(tmp_path / "n.onnx"), "--openvino-ir", str(tmp_path / "n.bin")]))
    assert "NAME.xml" in line


def test_a_model_of_any_input_size_runs_each_aspect_as_onnx_runtime_does(tmp_path, tiny_checkpoint):
    """A symbolic height/width ONNX (a model fed at each frame's aspect) is compiled by OpenVINO
    for each input shape it meets, and agrees with ONNX Runtime at every one."""
    import dataclasses

    import onnx
    import torch

    from segedge.models.checkpoint import Checkpoint
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    preprocess = dataclasses.replace(tiny_checkpoint.preprocess, resize="aspect")
    ckpt = Checkpoint(tiny_checkpoint.model, "tiny", preprocess, tiny_checkpoint.classes)
    path = tmp_path / "any-size.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(ckpt.model, (torch.zeros(1, 3, *preprocess.size),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": axes, "logits": axes})
    model = onnx.load(str(path))
    ckpt.contract.replace(dynamic=("batch", "height", "width"), target="tensorrt").write_onnx(model)
    onnx.save(model, str(path))
    openvino, onnxruntime = OpenVINORunner(path), OnnxRuntimeRunner(path)
    rng = np.random.default_rng(0)
    for frame in ((90, 160), (120, 160), (160, 90)):
        image = rng.integers(0, 256, (*frame, 3), np.uint8)
        batch = openvino.preprocess(image)
        assert batch.shape[2:] == openvino.input_size(*frame) != preprocess.size
        np.testing.assert_allclose(openvino.infer(batch), onnxruntime.infer(batch), atol=1e-4)
