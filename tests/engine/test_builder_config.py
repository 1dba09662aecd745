"""Builder options reach the ``IBuilderConfig``: the translation is a pure function, checked
on a CPU; DLA requests TensorRT would silently move to the GPU are refused before anything
is written (defects 2 and 10 of issue 12)."""

import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.engine.build import builder_settings
from segedge.engine.options import BuildOptions, check_dla
from segedge.engine.profiles import Profile
from segedge.engine.tensorrt_api import dla_unavailable_message
from segedge.errors import InputError

cli = CliRunner()
STATIC = Profile((1, 3, 128, 128), (1, 3, 128, 128), (1, 3, 128, 128))
DYNAMIC = Profile((1, 3, 128, 128), (1, 3, 128, 128), (8, 3, 128, 128))


def test_every_option_reaches_the_builder_settings():
    options = BuildOptions.from_strings(
        workspace_mib=512, optimization_level=4, version_compatible=True, hardware_compatibility="ampere+",
    )
    settings = builder_settings(options, "fp16")
    assert settings.workspace_bytes == 512 * 2**20
    assert settings.optimization_level == 4 and settings.version_compatible and settings.ampere_plus
    assert settings.dla_core is None
    dla = builder_settings(BuildOptions(dla_core=1), "int8")
    assert dla.dla_core == 1 and not dla.ampere_plus and not dla.version_compatible
    defaults = builder_settings(BuildOptions(), "int8")
    assert defaults.workspace_bytes == 1024 * 2**20 and defaults.optimization_level is None


@pytest.mark.parametrize("precision, cleared", [("fp32", True), ("fp16", False), ("int8", False)])
def test_fp32_builds_clear_tf32(precision, cleared):
    """TensorRT sets BuilderFlag.TF32 by default: an fp32 engine must clear it to be FP32."""
    assert builder_settings(BuildOptions(), precision).clear_tf32 is cleared


def test_dla_refuses_fp32_and_dynamic_profiles():
    with pytest.raises(InputError, match="FP16 and INT8 only") as info:
        check_dla(BuildOptions(dla_core=0), "fp32", STATIC)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="static shape .* dynamic .*min 1x3x128x128.*max 8x3x128x128"):
        check_dla(BuildOptions(dla_core=0), "fp16", DYNAMIC)
    check_dla(BuildOptions(dla_core=0), "int8", STATIC)  # accepted
    check_dla(BuildOptions(), "fp32", DYNAMIC)  # no DLA: nothing to check


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dla-core", "0"], "FP16 and INT8 only"),
        (["--dla-core", "0", "--precision", "fp16"], "needs a static shape"),
    ],
)
def test_dla_cli_is_one_line_and_writes_nothing(tmp_path, tiny_onnx, one_line_error, args, message):
    """Refused before TensorRT is looked for, so this holds on any machine."""
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.engine"), *args])
    assert result.exit_code == 2 and message in one_line_error(result)
    assert not list(tmp_path.glob("m.*"))


def test_dla_library_call_refuses_before_tensorrt(tmp_path, tiny_onnx):
    from segedge.pipeline.build import build_artifact

    with pytest.raises(InputError, match="FP16 and INT8 only"):
        build_artifact(tiny_onnx, tmp_path / "m.engine", "fp32", engine_options=BuildOptions(dla_core=0))
    assert not list(tmp_path.glob("m.*"))


@pytest.mark.parametrize(
    "version, words",
    [
        ("10.3.0", "Jetson AGX Orin has 2"),
        ("11.2.1", "TensorRT 11.0-11.3 have no DLA support"),
        ("11.4.0.106", "11.4.0 supports DLA only on Windows on ARM"),
        ("11.4.1", "Jetson AGX Orin has 2"),
    ],
)
def test_zero_dla_cores_message_is_worded_by_release(version, words):
    message = dla_unavailable_message(0, 0, version)
    assert words in message and "reports 0 DLA cores" in message and "\n" not in message


def test_profiles_reach_the_sidecar_and_the_rebuild_command():
    """Issue 24, item 1: `build-engine --profiles N` builds N identical optimization profiles, one per
    execution context that may run at once; the sidecar's builder record and its rebuild command keep it."""
    from segedge.engine.options import rebuild_command

    options = BuildOptions.from_strings(max_shape="4x3x128x128", profiles=4)
    assert options.to_dict()["profiles"] == 4 and BuildOptions.from_dict(options.to_dict()) == options
    assert "--profiles 4" in rebuild_command("m.onnx", "m.engine", options)
    assert BuildOptions.from_dict({}).profiles == 1 and "--profiles" not in rebuild_command("m.onnx", "m.engine", BuildOptions())
    with pytest.raises(InputError, match="--profiles must be 1 or more"):
        BuildOptions(profiles=0)


def test_profiles_is_a_build_engine_option(tmp_path, tiny_onnx):
    result = cli.invoke(app, ["build-engine", str(tiny_onnx), "-o", str(tmp_path / "m.onnx"), "--profiles", "3"])
    assert result.exit_code == 0, result.output
    assert "--profiles 3" in result.output  # noted as an engine option an ONNX output ignores
