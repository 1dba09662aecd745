"""Engine sidecars: round trip, and the one-line refusal of an engine built elsewhere."""

import json
import shlex

import pytest

from segedge.engine.options import BuildOptions
from segedge.engine.sidecar import EngineInfo, check_engine_compatibility, load_engine_info, sidecar_path
from segedge.errors import InputError

PROFILE = {"min": [1, 3, 128, 128], "opt": [1, 3, 128, 128], "max": [8, 3, 128, 128]}


def make_info(**builder) -> EngineInfo:
    return EngineInfo(
        engine="m.engine", tensorrt_version="10.3.0", gpu="NVIDIA GeForce RTX 3060", compute_capability="8.6",
        precision="int8", input_name="input", profile=PROFILE, onnx_sha256="ab" * 32,
        metadata={"classes": json.dumps(["pet", "background", "border"]), "preprocess": "{}"},
        built_at="2025-01-01T00:00:00+00:00", segedge_version="0.1.0", onnx="out/m.onnx",
        builder=BuildOptions(**builder).to_dict(),
    )


def test_sidecar_contract_is_read_by_the_contract_type():
    from segedge.contract import Contract, Precision, PreprocessConfig

    contract = Contract(preprocess=PreprocessConfig(64, 96, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)), classes=("a", "b"), precision=Precision.INT8)
    info = make_info()
    info.metadata = contract.to_metadata()
    assert info.contract == contract and info.classes == ("a", "b")
    assert info.contract.preprocess.mean == (0.5, 0.5, 0.5)
    bare = make_info()
    bare.metadata = {}
    assert bare.classes is None and bare.contract.precision is Precision.INT8  # from the sidecar's own field


def test_round_trip(tmp_path):
    info = make_info(max_shape=(4, 3, 128, 128), version_compatible=True)
    path = info.save(tmp_path / "m.engine")
    assert path == sidecar_path(tmp_path / "m.engine") == tmp_path / "m.engine.json"
    loaded = load_engine_info(tmp_path / "m.engine")
    assert loaded == info
    assert loaded.options == BuildOptions(max_shape=(4, 3, 128, 128), version_compatible=True)
    assert loaded.classes == ("pet", "background", "border")
    assert not list(tmp_path.glob("*.tmp"))


def test_old_sidecars_without_builder_options_still_load(tmp_path):
    EngineInfo("m.engine", "10.3.0", "Orin", "8.7", "int8", "input", PROFILE, "0" * 64).save(tmp_path / "m.engine")
    data = json.loads((tmp_path / "m.engine.json").read_text())
    del data["builder"], data["onnx"]
    (tmp_path / "m.engine.json").write_text(json.dumps(data))
    assert load_engine_info(tmp_path / "m.engine").options == BuildOptions()


@pytest.mark.parametrize("content, message", [(None, "has no sidecar"), ("{not json", "not a segedge engine sidecar"), ("[1, 2]", "not a segedge engine sidecar")])
def test_missing_or_malformed_sidecar(tmp_path, content, message):
    if content is not None:
        (tmp_path / "m.engine.json").write_text(content)
    with pytest.raises(InputError, match=message):
        load_engine_info(tmp_path / "m.engine")


def test_same_release_and_gpu_runs():
    assert check_engine_compatibility(make_info(), "10.3.0", "NVIDIA GeForce RTX 3060", "8.6") is None
    assert check_engine_compatibility(make_info(), "10.3", "NVIDIA GeForce RTX 3060", "8.6") is None


def test_another_gpu_model_of_the_same_compute_capability_runs():
    assert check_engine_compatibility(make_info(), "10.3.0", "NVIDIA RTX A4000", "8.6") is None


def test_tensorrt_version_mismatch_is_one_line_with_the_rebuild_command():
    message = check_engine_compatibility(make_info(max_shape=(4, 3, 128, 128)), "10.7.0", "NVIDIA GeForce RTX 3060", "8.6", engine_path="out/m.engine")
    assert message is not None and "\n" not in message
    assert "built with TensorRT 10.3.0 on NVIDIA GeForce RTX 3060 (sm 8.6)" in message
    assert "this machine has TensorRT 10.7.0" in message
    assert "only with the TensorRT release that built it" in message
    command = message.split("rebuild it here: ", 1)[1]
    assert shlex.split(command) == ["segedge", "build-engine", "out/m.onnx", "-o", "out/m.engine", "--max-shape", "4x3x128x128"]


def test_gpu_of_another_compute_capability_is_refused():
    message = check_engine_compatibility(make_info(), "10.3.0", "NVIDIA GeForce RTX 4090", "8.9")
    assert message is not None and "on NVIDIA GeForce RTX 4090 (sm 8.9)" in message and "compute capability it was built on" in message
    assert "TensorRT release" not in message  # the version matches: only the GPU is named as the reason


def test_both_mismatches_are_named():
    message = check_engine_compatibility(make_info(), "10.7.0", "Orin", "8.7")
    assert "TensorRT release" in message and "compute capability" in message


def test_version_compatible_engine_accepts_newer_tensorrt_of_the_same_major():
    info = make_info(version_compatible=True)
    assert check_engine_compatibility(info, "10.7.0", "NVIDIA GeForce RTX 3060", "8.6") is None
    older = check_engine_compatibility(info, "10.2.0", "NVIDIA GeForce RTX 3060", "8.6")
    assert older is not None and "TensorRT 10.x from 10.3.0 on" in older
    assert "--version-compatible" in older


@pytest.mark.parametrize(
    "built, here, allowed",
    [
        ("10.3.0", "11.4.0.106", True),  # NVIDIA's support matrix 11.4: TensorRT 10 version-compatible engines on 11
        ("10.16.1", "11.0.0", True),
        ("8.6.1", "10.3.0", True),  # and TensorRT 8 (8.6+) ones on 10
        ("8.6.1", "11.4.0", False),  # "a TensorRT 8 engine cannot run with a TensorRT 11 runtime"
        ("11.4.0", "10.16.1", False),  # never on an older runtime
        ("11.1.0", "11.0.0", False),
        ("8.5.3", "8.6.1", False),  # version compatibility starts at 8.6
        ("10.3.0", "12.0.0", False),  # no other combination across majors
    ],
)
def test_version_compatible_engines_follow_nvidias_support_matrix(built, here, allowed):
    info = make_info(version_compatible=True)
    info.tensorrt_version = built
    message = check_engine_compatibility(info, here, "NVIDIA H200", "8.6")
    assert (message is None) is allowed, message
    if not allowed:
        assert "\n" not in message and "rebuild it here: segedge build-engine" in message
        assert f"built with TensorRT {built}" in message and f"this machine has TensorRT {here}" in message  # both releases named
        assert "compute capability" not in message  # the GPU matches: only the version is the reason


def test_a_plain_tensorrt_10_engine_is_refused_on_11_with_the_rebuild_command():
    message = check_engine_compatibility(make_info(), "11.4.0.106", "NVIDIA GeForce RTX 3060", "8.6", engine_path="out/m.engine")
    assert message is not None and "--version-compatible" in message and "rebuild it here: segedge build-engine out/m.onnx" in message


def test_sidecar_records_tf32(tmp_path):
    info = make_info()
    info.tf32 = False
    info.save(tmp_path / "m.engine")
    assert json.loads((tmp_path / "m.engine.json").read_text())["tf32"] is False
    assert load_engine_info(tmp_path / "m.engine").tf32 is False


def test_version_compatible_can_be_given_explicitly():
    assert check_engine_compatibility(make_info(), "10.7.0", "NVIDIA GeForce RTX 3060", "8.6", version_compatible=True) is None


def test_hardware_compatible_engine_accepts_other_ampere_plus_gpus():
    info = make_info(hardware_compatibility="ampere+")
    assert check_engine_compatibility(info, "10.3.0", "NVIDIA H100", "9.0") is None
    assert check_engine_compatibility(info, "10.3.0", "NVIDIA A100", "8.0") is None
    turing = check_engine_compatibility(info, "10.3.0", "Tesla T4", "7.5")
    assert turing is not None and "compute capability 8.0 or newer" in turing and "--hardware-compatibility ampere+" in turing


def test_an_engine_and_its_sidecar_are_one_pair(tmp_path):
    """Issue 24, item 3: engine and sidecar were two separate renames, and a crash between them
    paired a new engine with the old sidecar (its profile, classes, TensorRT version). The pair is
    published engine first and sidecar last, the sidecar records the engine's SHA-256, and the
    reader refuses an engine its sidecar was not written with."""
    from segedge.engine.sidecar import read_engine, write_engine
    from segedge.errors import ModelFormatError

    engine = tmp_path / "m.engine"
    write_engine(engine, b"plan of build 1", make_info())
    data, info = read_engine(engine)
    assert data == b"plan of build 1" and info.engine_sha256 and info.classes == ("pet", "background", "border")
    # the state a crash between the two renames of build 2 leaves: its engine, build 1's sidecar
    engine.write_bytes(b"plan of build 2")
    with pytest.raises(ModelFormatError, match="m.engine is not the engine its sidecar m.engine.json describes .* rebuild it") as refused:
        read_engine(engine)
    assert "\n" not in str(refused.value) and "segedge build-engine out/m.onnx" in str(refused.value)
    make_info().save(engine)  # a sidecar of an older segedge records no hash: taken as it is
    assert read_engine(engine)[0] == b"plan of build 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def test_a_timing_cache_that_is_an_input_or_an_output_is_refused_before_tensorrt(tmp_path, tiny_onnx, one_line_error):
    """Issue 24, item 3: `--timing-cache model.onnx` was never checked, and the build saved the
    cache over the model. It is refused, before TensorRT is looked for, in the CLI and the library."""
    from typer.testing import CliRunner

    from segedge.cli.main import app
    from segedge.engine.build import build_engine

    before = tiny_onnx.read_bytes()
    engine = tmp_path / "m.engine"
    for cache in (tiny_onnx, engine, tmp_path / "m.engine.json"):
        if cache != tiny_onnx:
            cache.write_bytes(b"earlier")
        result = CliRunner().invoke(app, ["build-engine", str(tiny_onnx), "-o", str(engine), "--timing-cache", str(cache), "--force"])
        assert result.exit_code == 2 and "--timing-cache" in one_line_error(result), result.output
        with pytest.raises(InputError, match="--timing-cache"):
            build_engine(tiny_onnx, engine, BuildOptions(timing_cache=cache))
    assert tiny_onnx.read_bytes() == before
    calib = tmp_path / "calib.json"
    result = CliRunner().invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "n.engine"), "--timing-cache", str(calib),
                                      "--calib-cache", str(calib), "--precision", "int8", "--calib-data", str(tmp_path)])
    assert result.exit_code == 2 and "--calib-cache" in one_line_error(result)
