"""Builder options: validation, sidecar form and the command line that repeats a build."""

import shlex
from pathlib import Path

import pytest

from segedge.engine.options import BuildOptions, rebuild_command
from segedge.errors import InputError


def test_defaults_and_round_trip():
    assert BuildOptions().cli_args() == []
    options = BuildOptions.from_strings(
        "1x3x128x128", "2x3x128x128", "16x3x128x128", workspace_mib=2048, optimization_level=5,
        timing_cache=Path("cache/trt.timing"), version_compatible=True, hardware_compatibility="ampere+",
    )
    assert options.max_shape == (16, 3, 128, 128)
    assert BuildOptions.from_dict(options.to_dict()) == options
    assert BuildOptions.from_dict({"workspace_mib": 512, "unknown_future_key": 1}) == BuildOptions(workspace_mib=512)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workspace_mib": 0}, "--workspace must be a positive"),
        ({"optimization_level": 6}, "--builder-optimization-level must be 0..5"),
        ({"hardware_compatibility": "turing+"}, "--hardware-compatibility must be one of none, ampere\\+"),
        ({"dla_core": -1}, "--dla-core must be 0 or more"),
        ({"dla_core": 0, "hardware_compatibility": "ampere+"}, "not to DLA engines"),
    ],
)
def test_invalid_options_are_one_line_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        BuildOptions(**kwargs)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_bad_shape_string_names_the_option():
    with pytest.raises(InputError, match="--opt-shape '1x3x128'"):
        BuildOptions.from_strings(opt_shape="1x3x128")


def test_rebuild_command_repeats_every_option():
    options = BuildOptions.from_strings(
        max_shape="4x3x128x128", workspace_mib=512, optimization_level=2, timing_cache=Path("my dir/t.cache"),
        version_compatible=True, dla_core=1,
    )
    command = rebuild_command("out/model.onnx", "out/model.engine", options)
    argv = shlex.split(command)
    assert argv[:5] == ["segedge", "build-engine", "out/model.onnx", "-o", "out/model.engine"]
    assert argv[5:] == [
        "--max-shape", "4x3x128x128", "--workspace", "512", "--builder-optimization-level", "2",
        "--timing-cache", "my dir/t.cache", "--version-compatible", "--dla-core", "1",
    ]
