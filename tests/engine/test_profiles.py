"""Optimization profiles: parsing, defaults from the ONNX, one-line errors (no TensorRT)."""

import onnx
import pytest

from segedge.engine.profiles import InputSpec, Profile, onnx_input_spec, parse_shape, resolve_profile
from segedge.errors import InputError, ModelFormatError


def test_parse_shape():
    assert parse_shape("1x3x128x128") == (1, 3, 128, 128)
    assert parse_shape(" 8X3x256x320 ") == (8, 3, 256, 320)


@pytest.mark.parametrize("text", ["1x3x128", "1x3x128x128x1", "0x3x128x128", "1x3x-128x128", "ax3x128x128", "", "1,3,128,128"])
def test_malformed_shapes_are_one_line_errors(text):
    with pytest.raises(InputError, match=r"--max-shape .* NxCxHxW") as info:
        parse_shape(text, "--max-shape")
    assert "\n" not in str(info.value)


def test_spec_and_default_profile_come_from_the_onnx(tiny_onnx):
    spec = onnx_input_spec(onnx.load(str(tiny_onnx)))
    assert spec == InputSpec("input", None, 3, 128, 128, (128, 128), 16)
    profile = resolve_profile(spec)
    assert profile == Profile((1, 3, 128, 128), (1, 3, 128, 128), (8, 3, 128, 128))
    assert profile.to_dict() == {"min": [1, 3, 128, 128], "opt": [1, 3, 128, 128], "max": [8, 3, 128, 128]}
    assert Profile.from_dict(profile.to_dict()) == profile
    assert profile.contains((8, 3, 128, 128)) and not profile.contains((9, 3, 128, 128))


def test_dynamic_hw_defaults_to_the_trained_size(tiny_onnx_dynamic_hw):
    spec = onnx_input_spec(onnx.load(str(tiny_onnx_dynamic_hw)))
    assert spec.dynamic_hw and spec.default_size == (128, 128)
    profile = resolve_profile(spec, (1, 3, 64, 64), None, (4, 3, 256, 256))
    assert profile.opt == (1, 3, 128, 128)


def test_fixed_batch_onnx(onnx_factory):
    spec = onnx_input_spec(onnx.load(str(onnx_factory("b4.onnx", [4, 3, 128, 128]))))
    assert resolve_profile(spec).max == (4, 3, 128, 128)
    with pytest.raises(InputError, match="fixed batch of 4"):
        resolve_profile(spec, max_shape=(8, 3, 128, 128))


@pytest.mark.parametrize(
    "shapes, message",
    [
        ({"min_shape": (4, 3, 128, 128)}, r"min <= opt <= max.*--min-shape 4x3x128x128, --opt-shape 1x3x128x128 \(default\)"),
        ({"opt_shape": (16, 3, 128, 128)}, r"min <= opt <= max"),
        ({"max_shape": (8, 1, 128, 128)}, r"--max-shape 8x1x128x128: the model takes 3 channels"),
        ({"max_shape": (8, 3, 256, 256)}, r"fixed 128x128 input; .*--dynamic-hw"),
    ],
)
def test_invalid_profiles_on_a_fixed_size_onnx(tiny_onnx, shapes, message):
    spec = onnx_input_spec(onnx.load(str(tiny_onnx)))
    with pytest.raises(InputError, match=message) as info:
        resolve_profile(spec, **shapes)
    assert "\n" not in str(info.value)


def test_dynamic_hw_needs_multiples_of_16(tiny_onnx_dynamic_hw):
    spec = onnx_input_spec(onnx.load(str(tiny_onnx_dynamic_hw)))
    with pytest.raises(InputError, match="multiples of 16"):
        resolve_profile(spec, max_shape=(8, 3, 200, 256))
    with pytest.raises(InputError, match="min <= opt <= max"):
        resolve_profile(spec, min_shape=(1, 3, 256, 256), max_shape=(8, 3, 128, 128))


def test_onnx_without_a_single_image_input(onnx_factory):
    bad = onnx_factory("rank3.onnx", ["batch", 3, 128])
    with pytest.raises(ModelFormatError, match=r"one \(N, 3, H, W\) input"):
        onnx_input_spec(onnx.load(str(bad)))


def test_a_model_fed_at_each_frames_aspect_gets_a_profile_covering_every_aspect():
    """An aspect contract feeds a 16:9 frame at 256x448 and a 3:1 portrait one at 768x256: the
    default profile must contain every size aspect_size can give, with 16:9 as the tuned-for one."""
    from segedge.contract import aspect_size

    spec = InputSpec("input", None, 3, None, None, (256, 256), 32, aspect=True)
    profile = resolve_profile(spec)
    assert profile.min == (1, 3, 256, 256) and profile.opt == (1, 3, 256, 448) and profile.max == (8, 3, 768, 768)
    for frame in ((480, 854), (720, 1280), (480, 640), (854, 480), (272, 640), (100, 3000), (3000, 100)):
        assert profile.contains((1, 3, *aspect_size(*frame, 256, 32))), frame
    stretch = resolve_profile(InputSpec("input", None, 3, None, None, (256, 256), 32))
    assert stretch.opt == (1, 3, 256, 256)
    assert not stretch.contains((1, 3, 256, 448))  # without the aspect contract: the trained size only
