"""Calibration cache (reuse, rejection, and that the cached ranges are what is used), layer
grouping, keeping layers in float, held-out data, mixed precision and the CLI."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from segedge.calibration.cache import read_cache
from segedge.calibration.dataset import load_calibration_set, load_calibration_sets
from segedge.calibration.quantize import conv_layers, quantize_int8
from segedge.pipeline.sensitivity import held_out_set, mixed_precision, score_onnx
from segedge.cli.main import app
from segedge.errors import DataError, InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration(embedded, pet_root):
    return load_calibration_set(pet_root, embedded.preprocess, num_images=8)


def activation_scales(path):
    """Scale of every activation QuantizeLinear, keyed by the tensor it quantizes."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_cache_is_reused_on_identical_rebuild_and_gives_the_same_model(tmp_path, exported_onnx, calibration):
    cache = tmp_path / "calib.json"
    first = quantize_int8(exported_onnx, tmp_path / "a.onnx", calibration, cache=cache)
    second = quantize_int8(exported_onnx, tmp_path / "b.onnx", calibration, cache=cache)
    assert (first.cache, second.cache) == ("computed", "reused")
    assert activation_scales(tmp_path / "a.onnx") == activation_scales(tmp_path / "b.onnx")
    stored = json.loads(cache.read_text())
    assert stored["key"]["method"] == "percentile" and stored["images"] == len(calibration)


def test_reused_ranges_are_the_cached_ones(tmp_path, exported_onnx, calibration):
    """Edit a range in the cache (key untouched): the rebuilt model's scale follows it, so the
    rebuild really took its ranges from the cache rather than recalibrating."""
    cache = tmp_path / "calib.json"
    quantize_int8(exported_onnx, tmp_path / "a.onnx", calibration, method="minmax", cache=cache)
    before = activation_scales(tmp_path / "a.onnx")
    payload = json.loads(cache.read_text())
    tensor = next(iter(before))
    entry = payload["ranges"]["data"][tensor]

    def times4(value):  # a number, or onnxruntime's encoding of a numpy value
        return {**value, "data": (np.asarray(value["data"]) * 4).tolist()} if isinstance(value, dict) else value * 4

    for field in ("lowest", "highest"):
        entry[field] = times4(entry[field])
    cache.write_text(json.dumps(payload))
    result = quantize_int8(exported_onnx, tmp_path / "b.onnx", calibration, method="minmax", cache=cache)
    after = activation_scales(tmp_path / "b.onnx")
    assert result.cache == "reused"
    assert after[tensor] == pytest.approx(4 * before[tensor], rel=1e-5)
    others = [t for t in before if t != tensor]
    assert all(after[t] == before[t] for t in others)


def test_cache_is_rejected_when_model_data_or_method_change(tmp_path, exported_onnx, calibration, embedded, pet_root):
    cache = tmp_path / "calib.json"
    quantize_int8(exported_onnx, tmp_path / "a.onnx", calibration, cache=cache)

    other_data = load_calibration_set(pet_root, embedded.preprocess, num_images=8, seed=1)
    result = quantize_int8(exported_onnx, tmp_path / "b.onnx", other_data, cache=cache)
    assert result.cache.startswith("recomputed") and "calibration data" in result.cache

    model = onnx.load(str(exported_onnx))
    weight = next(i for i in model.graph.initializer if i.name.endswith("weight"))
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    result = quantize_int8(changed, tmp_path / "c.onnx", other_data, cache=cache)
    assert result.cache.startswith("recomputed") and "the model" in result.cache and "data" not in result.cache

    result = quantize_int8(changed, tmp_path / "d.onnx", other_data, method="minmax", cache=cache)
    assert result.cache.startswith("recomputed") and "the method" in result.cache
    assert quantize_int8(changed, tmp_path / "e.onnx", other_data, method="minmax", cache=cache).cache == "reused"


def test_corrupt_cache_is_a_data_error_and_is_left_alone(tmp_path, exported_onnx, calibration):
    cache = tmp_path / "calib.json"
    cache.write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        quantize_int8(exported_onnx, tmp_path / "a.onnx", calibration, cache=cache)
    assert cache.read_text() == "{not json"
    assert not (tmp_path / "a.onnx").exists()


def test_layers_are_the_models_conv_modules_with_dsc_pairs_grouped(exported_onnx, embedded):
    layers = conv_layers(onnx.load(str(exported_onnx)))
    modules = {name for name, module in embedded.model.named_modules() if hasattr(module, "depthwise_conv")}
    assert set(layers) == modules and len(layers) == 20
    assert all(len(convs) == 2 for convs in layers.values())


def test_excluded_layer_keeps_float_inputs_and_others_stay_int8(tmp_path, exported_onnx, calibration):
    layers = conv_layers(onnx.load(str(exported_onnx)))
    result = quantize_int8(exported_onnx, tmp_path / "mixed.onnx", calibration, exclude=["uc1.seq.3"])
    model = onnx.load(str(tmp_path / "mixed.onnx"))
    produced_by = {out: n.op_type for n in model.graph.node for out in n.output}
    for node in model.graph.node:
        if node.op_type == "Conv":
            dq = produced_by.get(node.input[0]) == "DequantizeLinear"
            assert dq is (node.name not in layers["uc1.seq.3"]), node.name
    assert result.float_layers == ["uc1.seq.3"]
    assert json.loads(dict((p.key, p.value) for p in model.metadata_props)["segedge.calibration"])["float_layers"] == ["uc1.seq.3"]
    with pytest.raises(InputError, match="no quantizable layer"):
        quantize_int8(exported_onnx, tmp_path / "x.onnx", calibration, exclude=["nope"])


def test_held_out_set_leaves_out_the_calibration_images(embedded, pet_root, calibration):
    held = held_out_set(pet_root, embedded.preprocess, "trainval", limit=300, exclude=calibration)
    assert len(held) == 300 - len(calibration)
    used = {np.asarray(image).tobytes() for image in calibration.images}
    assert not any(image.tobytes() in used for image in held.images)
    assert held.labels.shape == (len(held), *embedded.preprocess.size) and held.labels.max() <= 2


def test_sources_combine_and_are_capped(embedded, pet_root, libby_video):
    both = load_calibration_sets([pet_root, libby_video], embedded.preprocess, num_images=12, every=10)
    assert len(both) == 12
    assert any(n.startswith("frame") for n in both.names) and any(n.endswith(".jpg") for n in both.names)


def test_mixed_precision_writes_the_model_it_scored(tmp_path, exported_onnx, calibration, embedded, pet_root):
    held = held_out_set(pet_root, embedded.preprocess, limit=12, exclude=calibration)
    loose = mixed_precision(exported_onnx, tmp_path / "loose.onnx", calibration, held, max_drop=100.0)
    assert loose.met and loose.float_layers == [] and loose.steps == [(0, loose.drop)]
    reference = fp32_classes(exported_onnx, held)
    assert score_onnx(tmp_path / "loose.onnx", held, reference=reference) == loose.score
    fp32 = score_onnx(exported_onnx, held, reference=reference)
    assert loose.float_score == fp32 and fp32.agreement == 1.0
    assert loose.drop == pytest.approx(100 * (fp32.pixel_accuracy - loose.score.pixel_accuracy))
    with pytest.raises(InputError):
        mixed_precision(exported_onnx, tmp_path / "x.onnx", calibration, held, max_drop=-1)


def fp32_classes(path, held):
    from segedge.report.evaluate import predict_classes
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path) as runner:
        return predict_classes(runner, held.images, 16)


def test_mixed_precision_for_agreement_keeps_the_layers_that_move_pixels(tmp_path, exported_onnx, calibration, embedded, pet_root):
    """--min-agreement: a bound the all-INT8 model meets keeps every layer INT8; an unreachable
    one (100%) tries the scanned layers in the order of the agreement they win back and writes
    the best model tried, whose agreement is the file's own and no lower than all-INT8's."""
    from segedge.pipeline.sensitivity import sensitivity_scan

    held = held_out_set(pet_root, embedded.preprocess, limit=12, exclude=calibration)
    reference = fp32_classes(exported_onnx, held)
    easy = mixed_precision(exported_onnx, tmp_path / "easy.onnx", calibration, held, max_drop=None, min_agreement=0.0)
    assert easy.met and easy.float_layers == [] and 0.5 < easy.score.agreement < 1.0
    layers = list(conv_layers(onnx.load(str(exported_onnx))))[:3]
    ranking = sensitivity_scan(exported_onnx, calibration, held, layers=layers)
    assert [r.agreement_recovered for r in ranking.layers] == [
        pytest.approx(100 * (r.score.agreement - ranking.int8_score.agreement)) for r in ranking.layers]
    hard = mixed_precision(exported_onnx, tmp_path / "hard.onnx", calibration, held, None, ranking=ranking, min_agreement=100.0)
    gained = sorted((r for r in ranking.layers if r.agreement_recovered > 0), key=lambda r: -r.agreement_recovered)
    assert not hard.met and hard.float_layers == [r.layer for r in gained][: len(hard.float_layers)]
    assert len(hard.steps) == 1 + len(gained)
    assert hard.score.agreement >= easy.score.agreement
    assert score_onnx(tmp_path / "hard.onnx", held, reference=reference).agreement == hard.score.agreement
    for bad in ({"max_drop": None}, {"max_drop": None, "min_agreement": 101.0}):
        with pytest.raises(InputError):
            mixed_precision(exported_onnx, tmp_path / "x.onnx", calibration, held, **bad)


def test_tensorrt_form_is_scored_in_openvino(tmp_path, exported_onnx, calibration, embedded, pet_root):
    """Held-out scores of a tensorrt-form INT8 model come from OpenVINO's integer kernels (as
    --backend auto runs it on a CPU), not from ONNX Runtime's float convolutions."""
    pytest.importorskip("openvino")
    from segedge.report.evaluate import predict_classes
    from segedge.runtime.openvino_runner import OpenVINORunner

    held = held_out_set(pet_root, embedded.preprocess, limit=8, exclude=calibration)
    quantize_int8(exported_onnx, tmp_path / "q.onnx", calibration)
    reference = fp32_classes(exported_onnx, held)
    with OpenVINORunner(tmp_path / "q.onnx") as runner:
        openvino = predict_classes(runner, held.images, 16)
    onnxruntime = fp32_classes(tmp_path / "q.onnx", held)
    assert not np.array_equal(openvino, onnxruntime)  # the two runtimes differ on this file, so the test can tell them apart
    score = score_onnx(tmp_path / "q.onnx", held, reference=reference)
    assert score.agreement == pytest.approx(np.mean(openvino == reference))
    assert score.pixel_accuracy == pytest.approx(np.mean(openvino == held.labels))


def test_calibrate_cli_reports_cache_status(tmp_path, exported_onnx, pet_root, one_line_error):
    runner = CliRunner()
    args = ["calibrate", str(exported_onnx), "--calib-data", str(pet_root), "--num-images", "4", "--cache", str(tmp_path / "c.json"),
            "-o", str(tmp_path / "q.onnx")]
    first = runner.invoke(app, args)
    second = runner.invoke(app, [*args, "--force"])  # the same output again: --force replaces it
    assert first.exit_code == 0 and "cache" in first.stdout and "computed" in first.stdout, first.stdout
    assert second.exit_code == 0 and "reused" in second.stdout, second.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(runner.invoke(app, ["calibrate", str(exported_onnx), "--calib-data", str(empty), "-o", str(tmp_path / "z.onnx")]))
    assert "no image" in line and not (tmp_path / "z.onnx").exists()


def test_calibrate_cli_min_agreement(tmp_path, exported_onnx, pet_root):
    """`calibrate --min-agreement`: a bound all-INT8 meets keeps every layer INT8 and exits 0;
    an unreachable one keeps layers in float, writes the best model tried, says NOT within and
    exits 1 (the "goal missed" code)."""
    runner = CliRunner()
    base = ["calibrate", str(exported_onnx), "--calib-data", str(pet_root), "--num-images", "4", "--eval-limit", "4",
            "--cache", str(tmp_path / "c.json")]
    easy = runner.invoke(app, [*base, "-o", str(tmp_path / "easy.onnx"), "--min-agreement", "0"])
    assert easy.exit_code == 0, easy.output
    assert "mixed precision: 0 layer(s) kept in float (none)" in easy.output and "within --min-agreement 0.0" in easy.output
    hard = runner.invoke(app, [*base, "-o", str(tmp_path / "hard.onnx"), "--min-agreement", "100"])
    assert hard.exit_code == 1, hard.output
    assert "NOT within --min-agreement 100.0" in hard.output and "mixed precision: 0 layer(s)" not in hard.output
    assert (tmp_path / "hard.onnx").exists() and "latency p50" in hard.output
