"""The deployment contract: one type, one reader and one writer per storage form, and the
vocabulary (enums) nobody else restates."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from segedge.contract import (
    PET_CLASSES, PET_PALETTE, PREFIX, Backend, Contract, Precision, PreprocessConfig, Target, default_palette,
)
from segedge.errors import InputError, ModelFormatError

PACKAGE = Path(__file__).resolve().parents[1] / "segedge"
IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def full_contract() -> Contract:
    return Contract(
        preprocess=PreprocessConfig(64, 96, "linear", "BGR", 1 / 255, **IMAGENET), classes=("bg", "road", "car"),
        palette=(None, (10, 20, 30), (40, 50, 60)), precision=Precision.FP16, target=Target.ONNXRUNTIME, model="net",
        training_data="cityscapes", checkpoint_sha256="ab" * 32, segedge_version="9.9", dynamic=("batch",),
        size_multiple=8, extra={"fp32_nodes": "conv1"},
    )


def tiny_onnx_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return helper.make_model(graph)


def test_every_storage_form_round_trips_every_field():
    contract = full_contract()
    assert Contract.from_metadata(contract.to_metadata()) == contract
    assert Contract.from_props(contract.to_props()) == contract
    assert all(key.startswith(PREFIX) for key in contract.to_props())
    model = tiny_onnx_model()
    model.metadata_props.add(key="producer.note", value="kept")  # another tool's entry survives
    contract.write_onnx(model)
    again = Contract.from_onnx(onnx.load_from_string(model.SerializeToString()))
    assert again == contract and again.extra == {"fp32_nodes": "conv1"}
    assert {p.key: p.value for p in model.metadata_props}["producer.note"] == "kept"
    stored = Contract.from_checkpoint({**contract.to_checkpoint(), "meta": {"data": "cityscapes"}})
    assert (stored.preprocess, stored.classes, stored.palette, stored.model, stored.training_data) == (
        contract.preprocess, contract.classes, contract.palette, "net", "cityscapes")


def test_metadata_written_before_mean_std_existed_still_loads():
    # exactly what segedge 0.1.0 wrote into every ONNX (segedge.preprocess without mean/std)
    old = {"preprocess": '{"channel_order": "RGB", "height": 128, "interpolation": "nearest", "scale": 0.00392156862745098, "width": 128}',
           "classes": '["pet", "background", "border"]', "palette": "[[0, 140, 255], null, [0, 255, 255]]", "precision": "int8",
           "target": "tensorrt", "size_multiple": "16", "calibration": '{"images": 8}'}
    contract = Contract.from_metadata(old)
    assert contract.preprocess == PreprocessConfig() and contract.preprocess.mean is None
    assert contract.precision is Precision.INT8 and contract.target is Target.TENSORRT and contract.size_multiple == 16
    assert contract.extra == {"calibration": '{"images": 8}'}
    # a contract without mean/std writes the same preprocessing JSON as before (hashes, caches stay valid)
    assert contract.to_metadata()["preprocess"] == old["preprocess"]


def test_foreign_models_get_defaults_at_their_own_size_or_a_clear_error():
    contract = Contract.from_metadata({}, "net.onnx", fallback_size=(32, 48), fallback_precision="fp16")
    assert not contract.declared and contract.input_size == (32, 48) and contract.precision is Precision.FP16
    assert contract.defaults_note("net.onnx").startswith("net.onnx declares no segedge contract")  # logged once, by the loader
    with pytest.raises(ModelFormatError, match="net.onnx has no segedge metadata and a dynamic input size"):
        Contract.from_metadata({}, "net.onnx", fallback_size=(None, 48))
    with pytest.raises(ModelFormatError, match="net.onnx: bad segedge metadata"):
        Contract.from_metadata({"classes": "[not json"}, "net.onnx")
    with pytest.raises(ModelFormatError, match="bad segedge metadata"):
        Contract.from_metadata({"precision": "int4"}, "net.onnx")


def test_palettes_follow_the_classes():
    assert Contract().palette == PET_PALETTE and Contract().classes == PET_CLASSES
    palette = default_palette([f"c{i}" for i in range(21)])
    assert len(palette) == 21 and palette[0] is None and len(set(palette[1:])) == 20
    with pytest.raises(InputError, match="palette has 2 colours for 3 classes"):
        Contract(classes=("a", "b", "c"), palette=(None, (1, 2, 3)))
    declared = Contract().override(classes=["bg", "person"], mean=IMAGENET["mean"], std=IMAGENET["std"])
    assert declared.palette == default_palette(["bg", "person"]) and declared.preprocess.std == IMAGENET["std"]


def test_preprocessing_validates_mean_and_std():
    with pytest.raises(InputError, match="mean must be three numbers"):
        PreprocessConfig(mean=(0.5, 0.5))
    with pytest.raises(InputError, match="std must be positive"):
        PreprocessConfig(mean=(0.5,) * 3, std=(0.2, 0.0, 0.2))
    assert PreprocessConfig.from_dict(PreprocessConfig(**IMAGENET).to_dict()) == PreprocessConfig(**IMAGENET)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_backend_or_precision_literal_and_no_metadata_key_outside_the_contract():
    # "torch" is also a module name; "auto" is also the word for other automatic choices (`run --reference auto`)
    vocabulary = {m.value for enum in (Precision, Target, Backend) for m in enum} - {"torch", "auto"}
    allowed = {PACKAGE / "contract.py"}
    distribution_names = {(PACKAGE / "pipeline" / "doctor.py", "tensorrt")}  # pip's name for the bindings, not the backend

    def metadata_key(text: str) -> bool:
        rest = text[len(PREFIX):]
        if not text.startswith(PREFIX) or not rest.isidentifier() and "." not in rest:
            return False
        is_module = (PACKAGE / rest).is_dir() or (PACKAGE / f"{rest.replace('.', '/')}.py").exists() or (PACKAGE / rest.replace(".", "/")).is_dir()
        return text.startswith(PREFIX) and bool(rest) and not is_module

    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        for line, text in _string_literals(path):
            if (text in vocabulary and (path, text) not in distribution_names) or metadata_key(text):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not offenders, "use segedge.contract instead:\n" + "\n".join(offenders)


def test_the_cli_defines_no_enum_of_its_own():
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        enums = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and any(getattr(b, "id", "") == "Enum" or getattr(b, "attr", "") == "Enum" for b in n.bases)]
        assert not enums, f"{path.name} defines {enums}; use the library's enums (segedge.contract)"


@pytest.mark.parametrize("frame, expected", [
    ((480, 854), (256, 448)),  # 16:9 (DAVIS)
    ((720, 1280), (256, 448)),
    ((480, 640), (256, 352)),  # 4:3
    ((854, 480), (448, 256)),  # portrait
    ((256, 256), (256, 256)),
    ((272, 640), (256, 608)),  # 2.35:1
    ((100, 2000), (256, 768)),  # 20:1 is capped at 3:1
])
def test_aspect_size_keeps_the_frames_aspect_in_multiples(frame, expected):
    from segedge.contract import aspect_size

    assert aspect_size(*frame, short_side=256, multiple=32) == expected


def test_only_a_model_of_any_size_with_resize_aspect_is_fed_at_the_frames_aspect():
    aspect = PreprocessConfig(256, 256, resize="aspect")
    dynamic = Contract(preprocess=aspect, dynamic=("batch", "height", "width"), size_multiple=32)
    assert dynamic.input_size_for(480, 854) == (256, 448)
    assert dynamic.accepts(256, 448) and dynamic.accepts(256, 256) and not dynamic.accepts(256, 440)
    static = dynamic.replace(dynamic=("batch",))  # exported without --dynamic-hw: the trained size only
    assert static.input_size_for(480, 854) == (256, 256) and not static.accepts(256, 448)
    stretch = dynamic.replace(preprocess=PreprocessConfig(256, 256))
    assert stretch.input_size_for(480, 854) == (256, 256)


def test_resize_is_stored_only_when_not_the_default():
    assert "resize" not in PreprocessConfig().to_dict()  # records and hashes of earlier artifacts unchanged
    config = PreprocessConfig(64, 64, resize="aspect")
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown resize"):
        PreprocessConfig(resize="crop")


def test_a_partial_record_is_not_a_declared_contract():
    """Issue 24, item 5: a foreign model stamped with one key (``precision`` after a conversion
    step) used to count as declared, and a caller without a fallback size calibrated it at the
    Pet default 128x128 and stamped the whole Pet contract into it."""
    from segedge.contract import read_props, write_props

    partial = {"precision": "fp16", "target": "tensorrt"}
    contract = Contract.from_metadata(partial, "net.onnx", fallback_size=(32, 48))
    assert not contract.declared and contract.input_size == (32, 48) and contract.precision is Precision.FP16
    assert not Contract.from_metadata({"classes": '["a", "b"]'}, "net.onnx", fallback_size=(8, 8)).declared
    assert Contract.from_metadata(full_contract().to_metadata()).declared
    model = tiny_onnx_model()  # a fixed 8x8 input
    write_props(model.metadata_props, partial)
    read = Contract.from_onnx(model, "net.onnx")  # no fallback size given: the graph's own input size
    assert not read.declared and read.input_size == (8, 8) and read.classes == PET_CLASSES
    read.write_onnx_step(model, "precision")  # a later step stamps only what it knows, never the Pet defaults
    assert set(read_props(model.metadata_props)) == {"precision", "target"}
    with pytest.raises(ModelFormatError, match="incomplete segedge record .*dynamic input size"):
        Contract.from_metadata(partial, "net.onnx", fallback_size=(None, 48))


def test_every_str_enum_is_a_word_and_prints_its_value():
    """Issue 24, item 13: ``Upsample`` was a bare ``(str, Enum)``: ``str()`` printed ``Upsample.linear``."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if "Enum" in bases and "str" in bases and node.name != "Word":
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}: {node.name}")
    assert not offenders, "derive str enums from segedge.contract.Word: " + ", ".join(offenders)
    from segedge.contract import Upsample

    assert str(Upsample.LINEAR) == "linear" and f"{Upsample.NEAREST}" == "nearest"
