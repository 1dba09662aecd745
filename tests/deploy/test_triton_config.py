"""segedge deploy triton: every config.pbtxt parses into Triton's ModelConfig and matches its model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (test extra) is needed to parse Triton configs")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from segedge.cli.main import app  # noqa: E402
from segedge.deploy.triton import Device, TritonOptions, check_config, write_repository  # noqa: E402
from segedge.errors import ExportError  # noqa: E402

cli = CliRunner()


def parse(path):
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def graph_io(path):
    model = onnx.load(str(path))
    dims = lambda v: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {v.name: (v.type.tensor_type.elem_type, dims(v)) for v in list(model.graph.input) + list(model.graph.output)}


@pytest.mark.parametrize("classes,precision,mode", [(3, "fp32", "FP32"), (21, "fp16", "FP16"), (3, "int8", "INT8")])
def test_config_matches_model(tmp_path, make_segmenter, classes, precision, mode):
    src = make_segmenter(tmp_path / "m.onnx", classes, precision=precision)
    (model_dir,) = write_repository([src], tmp_path / "repo")
    config = parse(model_dir / "config.pbtxt")
    io = graph_io(model_dir / "1" / "model.onnx")
    assert config.name == "m" and config.backend == "onnxruntime" and config.max_batch_size == 8
    assert [i.name for i in config.input] == ["input"] and list(config.input[0].dims) == [3, 32, 48]
    assert io["input"] == (onnx.TensorProto.FLOAT, [-1, 3, 32, 48])
    outputs = {o.name: o for o in config.output}
    assert list(outputs["logits"].dims) == [classes, 32, 48] and outputs["logits"].data_type == pb.TYPE_FP32
    assert list(outputs["classmap"].dims) == [32, 48] and outputs["classmap"].data_type == pb.TYPE_UINT8
    assert io["classmap"] == (onnx.TensorProto.UINT8, [-1, 32, 48])
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU and config.instance_group[0].count == 1
    (accel,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == mode
    assert accel.parameters["trt_profile_min_shapes"] == "input:1x3x32x48"
    assert accel.parameters["trt_profile_max_shapes"] == "input:8x3x32x48"
    labels = (model_dir / outputs["logits"].label_filename).read_text().splitlines()
    assert labels == [f"c{i}" for i in range(classes)]
    assert json.loads(config.parameters["segedge.classes"].string_value) == labels
    pre = json.loads(config.parameters["segedge.preprocess"].string_value)
    assert (pre["height"], pre["width"]) == (32, 48)
    assert config.parameters["segedge.precision"].string_value == precision


def test_class_map_output_is_the_argmax(tmp_path, make_segmenter):
    src = make_segmenter(tmp_path / "m.onnx", 21)
    (model_dir,) = write_repository([src], tmp_path / "repo")
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, 3, 32, 48), dtype=np.float32)
    logits, classmap = session.run(["logits", "classmap"], {"input": x})
    assert classmap.dtype == np.uint8 and classmap.shape == (2, 32, 48)
    np.testing.assert_array_equal(classmap, logits.argmax(1))


def test_fixed_batch_cpu_without_class_map(tmp_path, make_segmenter):
    src = make_segmenter(tmp_path / "fixed.onnx", 3, batch=1)
    options = TritonOptions(device=Device.CPU, class_map=False, instances=2)
    (model_dir,) = write_repository([src], tmp_path / "repo", options)
    config = parse(model_dir / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, 32, 48]
    assert not config.HasField("dynamic_batching") and [o.name for o in config.output] == ["logits"]
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU and config.instance_group[0].count == 2
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator


def test_check_catches_a_config_that_does_not_match(tmp_path, make_segmenter):
    from segedge.deploy.artifact import read_artifact

    src = make_segmenter(tmp_path / "m.onnx", 3)
    (model_dir,) = write_repository([src], tmp_path / "repo")
    path = model_dir / "config.pbtxt"
    path.write_text(path.read_text().replace("dims: [ 3, 32, 48 ]", "dims: [ 3, 32, 64 ]", 1))
    with pytest.raises(ExportError, match="dims"):
        check_config(parse(path), read_artifact(model_dir / "1" / "model.onnx"), model_dir)


def test_engine_becomes_a_tensorrt_plan_capped_at_its_profile(tmp_path, make_segmenter):
    from segedge.engine.sidecar import EngineInfo, write_engine

    engine = tmp_path / "m-fp16.engine"
    meta = {"classes": json.dumps(["a", "b", "c", "d"]), "preprocess": json.dumps({"height": 64, "width": 96}), "precision": "fp16"}
    sidecar = EngineInfo(engine.name, "10.3.0", "Orin", "8.7", "fp16", "input",
                         {"min": [1, 3, 64, 96], "opt": [2, 3, 64, 96], "max": [4, 3, 64, 96]}, "0" * 64, metadata=meta)
    write_engine(engine, b"not a real engine: the config only needs its sidecar", sidecar)
    (model_dir,) = write_repository([engine], tmp_path / "repo")
    config = parse(model_dir / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and (model_dir / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert config.max_batch_size == 4 and list(config.output[0].dims) == [4, 64, 96]
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator


def test_cli_writes_a_repository_and_refuses_to_overwrite(tmp_path, make_segmenter, one_line_error):
    a = make_segmenter(tmp_path / "a.onnx", 3)
    b = make_segmenter(tmp_path / "b.onnx", 21)
    result = cli.invoke(app, ["deploy", "triton", str(a), str(b), "-o", str(tmp_path / "repo"), "--max-batch", "16"])
    assert result.exit_code == 0, result.output
    assert parse(tmp_path / "repo" / "b" / "config.pbtxt").max_batch_size == 16
    line = one_line_error(cli.invoke(app, ["deploy", "triton", str(a), "-o", str(tmp_path / "repo")]))
    assert "already exists" in line
    line = one_line_error(cli.invoke(app, ["deploy", "triton", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "r2")]))
    assert "nope.onnx" in line


def test_the_tensorrt_cache_is_keyed_by_model_and_hash_inside_the_repository(tmp_path, make_segmenter):
    """Issue 24, item 2: every model's TensorRT accelerator cache was the one fixed, world-writable
    /tmp/segedge-trt-cache: engines of one model served for another, and a folder any local user
    could plant an engine in. It lives in the model's own directory, named by the served model's hash."""
    import hashlib

    a = make_segmenter(tmp_path / "a.onnx", 3)
    b = make_segmenter(tmp_path / "b.onnx", 3, seed=1)
    dirs = write_repository([a, b], tmp_path / "repo")
    paths = {}
    for model_dir in dirs:
        (accel,) = parse(model_dir / "config.pbtxt").optimization.execution_accelerators.gpu_execution_accelerator
        cache = accel.parameters["trt_engine_cache_path"]
        digest = hashlib.sha256((model_dir / "1" / "model.onnx").read_bytes()).hexdigest()[:16]
        assert cache == str((model_dir / f"trt-cache-{digest}").resolve())  # absolute: Triton resolves it, not the client
        assert not cache.startswith("/tmp/segedge-trt-cache")
        paths[model_dir.name] = cache
    assert len(set(paths.values())) == 2
    again = write_repository([a], tmp_path / "repo2")[0]
    (accel,) = parse(again / "config.pbtxt").optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.parameters["trt_engine_cache_path"].endswith(paths["a"].rsplit("/", 1)[1])  # same model, same key
    cpu = write_repository([a], tmp_path / "repo3", TritonOptions(device=Device.CPU))[0]
    assert "trt_engine_cache_path" not in (cpu / "config.pbtxt").read_text()


def test_a_failed_check_leaves_nothing_and_the_next_run_succeeds(tmp_path, make_segmenter, monkeypatch):
    """Issue 24, item 4: deploy triton wrote everything, then checked the config; a failed check
    (here: tritonclient, which the check parses with, missing) left a model folder that the next
    run refused as existing. Every model is checked before the repository shows any of them."""
    import sys

    from segedge.errors import BackendUnavailableError, InputError

    first = make_segmenter(tmp_path / "first.onnx", 3)
    second = make_segmenter(tmp_path / "second.onnx", 3)
    repo = tmp_path / "repo"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "tritonclient.grpc", None)  # what an environment without the extra gives
        with pytest.raises(BackendUnavailableError, match="tritonclient"):
            write_repository([first, second], repo)
    assert not repo.exists() or list(repo.iterdir()) == []
    (repo / "second").mkdir(parents=True)  # a model of that name is already served
    (repo / "second" / "config.pbtxt").write_text("earlier")
    with pytest.raises(InputError, match="already exists"):
        write_repository([first, second], repo)
    assert sorted(p.name for p in repo.iterdir()) == ["second"]  # `first` was not published either
    dirs = write_repository([first], repo)  # the next run is not refused by a half-written folder
    assert [d.name for d in dirs] == ["first"] and (repo / "second" / "config.pbtxt").read_text() == "earlier"
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]  # no staged folder left


def test_deploy_triton_refuses_an_output_that_is_an_input(tmp_path, make_segmenter, one_line_error):
    src = make_segmenter(tmp_path / "m.onnx", 3)
    before = src.read_bytes()
    result = cli.invoke(app, ["deploy", "triton", str(src), "-o", str(src)])
    assert result.exit_code == 2 and "is a file" in one_line_error(result) or "is the input" in one_line_error(result)
    assert src.read_bytes() == before
