"""Quantization-aware training: the fake quantization is the artifact's arithmetic (tensor for
tensor on the CPU form, the same rounding places and integers on the tensorrt form), QAT writes
an artifact that its own fake quantization reproduces, and the CLI refuses bad input in one line.

Everything runs on the embedded segnet-dsc and real Pet images; nothing stands in for ONNX
Runtime or the quantizer."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.fakequant import plan_from_artifact, weight_scales
from segedge.calibration.qat import QatConfig, QatData, quantization_aware_training, stored_ranges
from segedge.calibration.quantize import quantize_int8
from segedge.calibration.torch_graph import OnnxGraphModule
from segedge.cli.main import app
from segedge.data.samples import DataSpec, load_arrays
from segedge.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration(embedded, pet_root):
    return load_calibration_set(pet_root, embedded.preprocess, num_images=8)


@pytest.fixture(scope="module")
def test_images(embedded, pet_root):
    images, _, _ = load_arrays(DataSpec(pet_root, "test", limit=8), embedded.preprocess)
    return images


@pytest.fixture(scope="module")
def cpu_ptq(tmp_path_factory, native_onnx, calibration):
    """The CPU-form post-training artifact of the embedded model and its ranges."""
    work = tmp_path_factory.mktemp("qat-cpu")
    quantize_int8(native_onnx, work / "ptq.onnx", calibration, cache=work / "ranges.json")
    return work / "ptq.onnx", stored_ranges(work / "ranges.json")


def ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["WeightBiasQuantization"])


def fake_quant(fp32_path, int8_path):
    fp32 = onnx.load(str(fp32_path))
    plan = plan_from_artifact(onnx.load(str(int8_path)), OnnxGraphModule(fp32).tensor_names())
    return OnnxGraphModule(fp32, plan).eval(), plan


def test_cpu_form_fake_quantization_is_the_artifact_tensor_for_tensor(native_onnx, cpu_ptq, test_images):
    """Every uint8 tensor ONNX Runtime computes (QLinearConv, MaxPool, QuantizeLinear outputs)
    equals round(fake-quant value / scale) + zero point, and so does the class map."""
    ptq, _ = cpu_ptq
    graph, plan = fake_quant(native_onnx, ptq)
    model = onnx.load(str(ptq))
    names = {o for n in model.graph.node for o in n.output}
    checked = [t for t in plan.activations if t + "_quantized" in names]
    for t in checked:
        model.graph.output.append(onnx.helper.make_tensor_value_info(t + "_quantized", onnx.TensorProto.UINT8, None))
    outputs = ort_session_bytes(model).run(None, {"input": test_images})
    record: dict = {}
    with torch.no_grad():
        logits = graph(torch.from_numpy(test_images), record=record).numpy()
    assert len(checked) == 45
    for t, theirs in zip(checked, outputs[1:]):
        q = plan.activations[t]
        mine = np.round(record[t].numpy() / q.scale) + q.zero_point
        assert np.array_equal(mine, theirs.astype(np.float64)), f"{t}: {np.mean(mine != theirs):.5f} of the values differ"
    assert np.mean(logits.argmax(1) == outputs[0].argmax(1)) >= 0.999


def ort_session_bytes(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("form", ["onnxruntime", "tensorrt"])
def test_fake_quantized_weights_are_the_stored_int8_weights(form, native_onnx, exported_onnx, cpu_ptq, calibration, tmp_path):
    """Per-channel symmetric int8 weights recomputed from the FP32 weights as re-quantizing
    would: the same scales and the same integers as the artifact stores (both forms); the
    tensorrt form rounds exactly at the inputs of its Conv nodes, int8 with zero point 0."""
    fp32 = native_onnx if form == "onnxruntime" else exported_onnx
    ptq = cpu_ptq[0] if form == "onnxruntime" else quantize_int8(exported_onnx, tmp_path / "trt.onnx", calibration).path
    graph, plan = fake_quant(fp32, ptq)
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(ptq)).graph.initializer}
    assert len(plan.weights) == 40
    for name, qmax in plan.weights.items():
        w = graph.weights[graph._param_keys[name]].detach()
        scale = weight_scales(w, qmax)
        q = torch.clamp(torch.round(w / scale.view(-1, 1, 1, 1)), -qmax, qmax).numpy()
        assert np.array_equal(q, stored[name + "_quantized"]), name
        expected = stored[name + "_scale"]
        assert np.array_equal(scale.numpy().astype(expected.dtype), expected), name
    if form == "tensorrt":
        model = onnx.load(str(ptq))
        assert set(plan.activations) == {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
        assert {(q.qmin, q.qmax, q.zero_point) for q in plan.activations.values()} == {(-128, 127, 0)}
        assert plan.fp16 and not plan.biases and len(plan.integer) == 40


def test_tensorrt_form_fake_quantization_tracks_onnx_runtime(exported_onnx, calibration, test_images, tmp_path):
    """The tensorrt form's convolutions are float in ONNX Runtime (its own summation order, then
    the next Q rounds): the fake quantization (exact int32 accumulation, as TensorRT and OpenVINO
    run INT8) agrees on most pixels, not all; docs/qat.md gives the measured figures."""
    ptq = quantize_int8(exported_onnx, tmp_path / "trt32.onnx", calibration, fp16_base=False).path
    graph, _ = fake_quant(exported_onnx, ptq)
    with torch.no_grad():
        mine = graph(torch.from_numpy(test_images)).numpy().argmax(1)
    theirs = ort_session(ptq).run(None, {"input": test_images})[0].argmax(1)
    assert np.mean(mine == theirs) >= 0.97


@pytest.fixture(scope="module")
def cpu_qat(tmp_path_factory, native_onnx, cpu_ptq, calibration):
    """One short QAT run from the CPU-form post-training artifact: (artifact, result)."""
    ptq, ranges = cpu_ptq
    out = tmp_path_factory.mktemp("qat-run") / "qat.onnx"
    result = quantization_aware_training(native_onnx, ptq, ranges, out, calibration, QatData.from_calibration(calibration),
                                         QatConfig(epochs=1, lr=1e-4, batch_size=4))
    return out, result


def test_qat_writes_an_artifact_its_fake_quantization_reproduces(native_onnx, cpu_ptq, cpu_qat, test_images):
    """One short QAT run: the artifact keeps the post-training activation scales, its weights
    moved, its record says QAT, and the fake quantization rebuilt from the written file alone
    (its dequantized weights in the FP32 graph) matches ONNX Runtime on held-out images."""
    ptq, _ = cpu_ptq
    qat, result = cpu_qat
    assert result.fake_quant_agreement >= 0.999 and len(result.loss) == 1 and np.isfinite(result.loss[0])
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(ptq)).graph.initializer}
    after_model = onnx.load(str(qat))
    after = {i.name: numpy_helper.to_array(i) for i in after_model.graph.initializer}
    scales = [n for n in before if n.endswith("_scale") and ".weight" not in n]
    assert scales and all(np.array_equal(before[n], after[n]) for n in scales)  # activation scales: the calibration's
    assert any(not np.array_equal(before[n], after[n]) for n in before if n.endswith("weight_quantized"))
    record = json.loads(next(p.value for p in after_model.metadata_props if p.key == "segedge.calibration"))
    assert record["qat"]["epochs"] == 1 and record["target"] == "onnxruntime"

    fp32 = onnx.load(str(native_onnx))  # the FP32 graph with the artifact's own (dequantized) weights and biases
    plan = plan_from_artifact(after_model, OnnxGraphModule(fp32).tensor_names())
    for init in fp32.graph.initializer:
        if init.name in plan.weights:
            q, s = after[init.name + "_quantized"], after[init.name + "_scale"]
            init.CopyFrom(numpy_helper.from_array((q * s.reshape(-1, 1, 1, 1)).astype(np.float32), init.name))
        elif init.name in plan.biases:
            x, w = plan.biases[init.name]
            step = np.float32(plan.activations[x].scale) * after[w + "_scale"]
            init.CopyFrom(numpy_helper.from_array((after[init.name + "_quantized"] * step).astype(np.float32), init.name))
    graph = OnnxGraphModule(fp32, plan).eval()
    with torch.no_grad():
        mine = graph(torch.from_numpy(test_images)).numpy().argmax(1)
    theirs = ort_session(qat).run(None, {"input": test_images})[0].argmax(1)
    assert np.mean(mine == theirs) >= 0.999


def test_qat_config_refuses_nonsense():
    with pytest.raises(InputError, match="labels"):
        QatConfig(distill=False)
    with pytest.raises(InputError, match="epoch"):
        QatConfig(epochs=0)
    with pytest.raises(InputError, match="crop"):
        QatConfig(crop=16)
    with pytest.raises(InputError, match="loss weights"):
        QatConfig(hard_weight=-1.0)


def test_calibrate_qat_cli_with_max_drop(native_onnx, embedded, pet_root, tmp_path):
    """`calibrate --qat 1 --max-drop D`: the post-training mixed-precision search runs first,
    QAT trains from its artifact, and the held-out drop printed after QAT is the one the
    written file scores against its FP32 model (recomputed here with ONNX Runtime)."""
    out = tmp_path / "qat.onnx"
    result = CliRunner().invoke(app, ["calibrate", str(native_onnx), "--calib-data", str(pet_root), "--num-images", "8",
                                      "--qat", "1", "--qat-images", "8", "--max-drop", "100", "--eval-split", "test",
                                      "--eval-limit", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "fake quantization vs the written artifact" in result.output and "QAT: 1 epoch" in result.output
    from segedge.pipeline.sensitivity import held_out_set, score_onnx
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    held = held_out_set(pet_root, embedded.preprocess, "test", 4)
    drop = 100 * (score_onnx(native_onnx, held).pixel_accuracy - score_onnx(out, held).pixel_accuracy)
    assert f"held-out after QAT: pixel-accuracy drop {drop:.2f} points, agreement with FP32 " in result.output, result.output
    with OnnxRuntimeRunner(out) as runner:
        assert runner.contract.calibration["qat"]["images"] == 8
        assert runner.contract.calibration["float_layers"] == []  # a 100-point bound keeps every layer INT8
        assert runner.name == "qat.onnx (onnxruntime int8 QAT)"


def test_report_and_bench_show_ptq_and_qat_side_by_side(native_onnx, cpu_ptq, cpu_qat, pet_root, tmp_path):
    """`segedge report` with the FP32 export, its post-training INT8 and its QAT INT8: both INT8
    rows name the FP32 export as the model they were made from, and their agreement with it is
    the argmax agreement of the two ONNX Runtime sessions on the same images; `bench` times
    both, each row named for what it is."""
    import shutil

    from segedge.report.drift import load_eval_data
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    fp32, ptq, qat = tmp_path / "fp32.onnx", tmp_path / "ptq.onnx", tmp_path / "qat.onnx"
    for source, copy in ((native_onnx, fp32), (cpu_ptq[0], ptq), (cpu_qat[0], qat)):
        shutil.copy(source, copy)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "--candidates", str(fp32), str(ptq), str(qat), "--data", str(pet_root),
                                      "--limit", "6", "--latency-runs", "3", "--warmup", "1", "--worst", "0",
                                      "--reference", "segnet-dsc", "-o", str(out)])
    assert result.exit_code == 0, result.output
    models = json.loads((out / "report.json").read_text())["models"]
    names = [m["name"] for m in models[1:]]
    assert names == ["fp32.onnx (onnxruntime fp32)", "ptq.onnx (onnxruntime int8)", "qat.onnx (onnxruntime int8 QAT)"]
    assert models[1]["fp32_model"] is None and models[1]["fp32_agreement"] is None
    images = [image for _, image, _ in load_eval_data(pet_root, limit=6)]
    with OnnxRuntimeRunner(fp32) as runner:
        fp32_pred = runner.infer(runner.preprocess(images)).argmax(1)
    for model, path in zip(models[2:], (ptq, qat)):
        with OnnxRuntimeRunner(path) as runner:
            pred = runner.infer(runner.preprocess(images)).argmax(1)
        assert model["fp32_model"] == names[0]
        assert model["fp32_agreement"] == pytest.approx(float(np.mean(pred == fp32_pred)), abs=1e-12)
    markdown = (out / "report.md").read_text()
    assert "agreement vs FP32" in markdown and "qat.onnx (onnxruntime int8 QAT) against fp32.onnx" in markdown

    bench = CliRunner().invoke(app, ["bench", str(ptq), str(qat), "--runs", "3", "--warmup", "1"])
    assert bench.exit_code == 0, bench.output
    cells = [line.split("│")[1].strip() for line in bench.output.splitlines() if line.startswith("│")]  # a long name wraps
    assert " ".join(cells) == "ptq.onnx (onnxruntime int8) qat.onnx (onnxruntime int8 QAT)", bench.output


@pytest.mark.parametrize("extra, words", [
    (["--qat", "1", "--no-distill"], "labels"),
    (["--qat", "-1"], "--qat"),
    (["--qat", "1", "--qat-lr", "0"], "learning rate"),
    (["--qat", "1", "--label-weight", "1", "--calib-data", "VIDEO"], "Pet root"),
    (["--qat", "1", "--qat-crop", "40"], "--qat-crop"),  # not a multiple of the size multiple (or a fixed-size export)
    (["--qat", "1", "--min-agreement", "101"], "--min-agreement"),
])
def test_calibrate_qat_wrong_input_is_one_line_exit_2(extra, words, native_onnx, pet_root, libby_video, tmp_path, one_line_error):
    extra = [str(libby_video) if e == "VIDEO" else e for e in extra]
    calib = [] if "--calib-data" in extra else ["--calib-data", str(pet_root)]
    result = CliRunner().invoke(app, ["calibrate", str(native_onnx), *calib, "-o", str(tmp_path / "x.onnx"), *extra])
    line = one_line_error(result)
    assert result.exit_code == 2 and words in line, line
    assert not (tmp_path / "x.onnx").exists()


def test_calibrate_qat_refuses_a_graph_it_cannot_run(tmp_path, one_line_error, pet_root):
    import segedge

    contract = segedge.Contract(preprocess=segedge.PreprocessConfig(32, 32), classes=("a", "b"), model="sigmoid-net")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Sigmoid(), torch.nn.Conv2d(4, 2, 1))
    fp32 = segedge.export(net, tmp_path / "sigmoid.onnx", contract).path
    result = CliRunner().invoke(app, ["calibrate", str(fp32), "--calib-data", str(pet_root), "--qat", "1", "-o", str(tmp_path / "x.onnx")])
    line = one_line_error(result)
    assert result.exit_code == 2 and "Sigmoid" in line, line


def test_fp32_source_is_the_same_checkpoints_fp32_of_the_same_form(exported_onnx, native_onnx, cpu_ptq):
    """The report pairs an INT8 candidate with the FP32 export of its own form (both FP32
    forms present), never with the PyTorch reference, and leaves FP32 candidates unpaired."""
    from segedge.report.drift import fp32_sources
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from segedge.runtime.torch_runner import TorchRunner

    with TorchRunner("segnet-dsc") as ref, OnnxRuntimeRunner(exported_onnx) as trt, OnnxRuntimeRunner(native_onnx) as ort, \
            OnnxRuntimeRunner(cpu_ptq[0]) as int8:
        assert fp32_sources([ref, trt, ort, int8]) == {3: 2}
        assert fp32_sources([ref, int8, trt]) == {1: 2}  # only the other form there: still its FP32
        assert fp32_sources([ref, int8]) == {}


def test_tensorrt_form_plan_reaches_through_the_fp16_input_cast(tmp_path, pet_root):
    """A model whose first Conv reads the graph input (segnet-lite0): the FP16 base quantizes
    the input's FP16 cast, and the plan names the FP32 graph's input in its place."""
    import segedge

    contract = segedge.Contract(preprocess=segedge.PreprocessConfig(32, 32), classes=("a", "b"), model="direct-net")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    fp32 = segedge.export(net, tmp_path / "direct.onnx", contract).path
    calibration = load_calibration_set(pet_root, contract.preprocess, num_images=4)
    int8 = onnx.load(str(quantize_int8(fp32, tmp_path / "direct-int8.onnx", calibration, target="tensorrt").path))
    quantized = {n.input[0] for n in int8.graph.node if n.op_type == "QuantizeLinear"}
    assert any(name not in {i.name for i in int8.graph.input} and "cast" in name.lower() for name in quantized)  # the FP16 cast
    graph = onnx.load(str(fp32))
    plan = plan_from_artifact(int8, OnnxGraphModule(graph).tensor_names())
    assert graph.graph.input[0].name in plan.activations and plan.fp16 and len(plan.integer) == 2
