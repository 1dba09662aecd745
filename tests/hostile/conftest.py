"""Tiny fixtures for hostile-input tests, built once per session in a few milliseconds each:
segmentation-shaped ONNX models made with onnx.helper (16x16, one 1x1 convolution), foreign
ONNX models, small images and hostile files. No export, no real training."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segedge.data.oxford_pet import CLASS_NAMES
from segedge.data.transforms import PreprocessConfig

SIZE = 16  # model input height and width of the tiny models, pixels


def tiny_onnx(
    path: Path,
    channels: int = 3,
    classes: int = 3,
    input_type: int = TensorProto.FLOAT,
    classifier: bool = False,
    metadata: bool = True,
    quantized: bool = False,
    external: bool = False,
    weight: float = 0.1,
) -> Path:
    """A segmentation-shaped ONNX: ``input (N, channels, 16, 16)`` -> 1x1 Conv ->
    ``logits (N, classes, 16, 16)`` (or ``(N, classes)`` with ``classifier``), with segedge
    metadata unless ``metadata`` is False."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((classes, channels, 1, 1)) * weight).astype(np.float32), "w")
    x = helper.make_tensor_value_info("input", input_type, ["batch", channels, SIZE, SIZE])
    nodes, inits = [], [w]
    source = "input"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["input"], ["input_f"], to=TensorProto.FLOAT))
        source = "input_f"
    if quantized:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", [source, "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
        source = "dq"
    nodes.append(helper.make_node("Conv", [source, "w"], ["conv"]))
    if classifier:
        nodes.append(helper.make_node("ReduceMean", ["conv"], ["logits"], axes=[2, 3], keepdims=0))
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
    else:
        nodes.append(helper.make_node("Identity", ["conv"], ["logits"]))
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes, SIZE, SIZE])
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        names = list(CLASS_NAMES) if classes == len(CLASS_NAMES) else [f"c{i}" for i in range(classes)]
        meta = {
            "segedge.preprocess": PreprocessConfig(height=SIZE, width=SIZE).to_json(),
            "segedge.classes": json.dumps(names),
            "segedge.palette": json.dumps([[0, 0, 255], [0, 0, 0], [0, 255, 0]][:classes]),
            "segedge.precision": "int8" if quantized else "fp32",
            "segedge.target": "tensorrt",
            "segedge.model": "tiny",
        }
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` pixels (the data is one
    compressed row: enough for the header, tiny on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * (width * 3 + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """Read-only inputs shared by the hostile tests (never written to by any test)."""
    root = tmp_path_factory.mktemp("kit")
    k = {"root": root}
    k["onnx"] = tiny_onnx(root / "tiny.onnx")
    k["int8"] = tiny_onnx(root / "tiny-int8.onnx", quantized=True)
    ext = root / "ext"
    ext.mkdir()
    k["external"] = tiny_onnx(ext / "tiny-ext.onnx", external=True)
    k["one_channel"] = tiny_onnx(root / "gray.onnx", channels=1)
    k["int64_input"] = tiny_onnx(root / "int64.onnx", input_type=TensorProto.INT64)
    k["21_classes"] = tiny_onnx(root / "voc.onnx", classes=21, metadata=False)
    k["classifier"] = tiny_onnx(root / "classifier.onnx", classes=10, classifier=True, metadata=False)
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    k["frames"] = frames
    k["bomb"] = bomb_png(root / "bomb.png")
    bombs = root / "bombs"
    bombs.mkdir()
    bomb_png(bombs / "000.png")
    k["bomb_folder"] = bombs
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (corrupt / "b.png").write_bytes(b"")
    k["corrupt_folder"] = corrupt
    k["empty"] = root / "empty.onnx"
    k["empty"].write_bytes(b"")
    k["garbage"] = root / "garbage.onnx"
    k["garbage"].write_bytes(os.urandom(3000))
    k["truncated"] = root / "truncated.onnx"
    k["truncated"].write_bytes(k["onnx"].read_bytes()[: len(k["onnx"].read_bytes()) // 2])
    k["text"] = root / "notes.onnx"
    k["text"].write_text("this is a text file, not a model\n")
    k["folder"] = root / "a-folder.onnx"
    k["folder"].mkdir()
    k["loop"] = root / "loop.onnx"
    os.symlink(k["loop"], k["loop"])  # a symlink to itself
    k["garbage_pt"] = root / "garbage.pt"
    k["garbage_pt"].write_bytes(b"\x80\x04 garbage that is not a pickle")
    # issue 24 (second review): a checkpoint named like an IR's weights, a second model, all-NaN weights
    k["ckpt_bin"] = root / "ckpt.bin"
    k["ckpt_bin"].write_bytes((Path(__file__).resolve().parents[2] / "segedge" / "models" / "weights" / "segnet-dsc.pt").read_bytes())
    k["ref_onnx"] = tiny_onnx(root / "ref.onnx", weight=0.3)
    k["nan_onnx"] = tiny_onnx(root / "nan.onnx", weight=float("nan"))
    for name in ("frames", "bomb_folder", "corrupt_folder"):
        os.chmod(k[name], 0o555)
    return k


@pytest.fixture(scope="session")
def make_onnx():
    """The :func:`tiny_onnx` builder, for tests that need their own variant."""
    return tiny_onnx


@pytest.fixture(scope="session")
def make_bomb():
    """The :func:`bomb_png` builder."""
    return bomb_png


def leftovers(folder: Path) -> list[Path]:
    """Temporary files and folders segedge may create while writing (``.NAME.*.tmp``,
    ``.NAME.new.*``, ``.NAME.old.*``, write probes), anywhere under ``folder``."""
    found = []
    for path in folder.rglob("*"):
        name = path.name
        if name.startswith(".") and (name.endswith(".tmp") or ".new." in name or ".old." in name or "segedge-probe" in name or name.endswith(".mp4")):
            found.append(path)
    return found


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (symlinks not followed) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def check_refusal(result, code: int, workspace: Path, before: dict[str, bytes]) -> str:
    """What every hostile case must satisfy: the documented exit code, one line, no
    traceback, no temporary file left in ``workspace``, and every file that was there
    before byte-identical. Returns the line."""
    text = (result.stderr or "") + (result.stdout or "")
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}: {text}"
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    assert not leftovers(workspace), leftovers(workspace)
    after = snapshot(workspace)
    for name, data in before.items():
        assert after.get(name) == data, f"{name} changed or vanished"
    return lines[0]


@pytest.fixture
def refusal():
    return check_refusal


@pytest.fixture
def take_snapshot():
    return snapshot


@pytest.fixture
def find_leftovers():
    """The :func:`leftovers` finder."""
    return leftovers


def _mount_tmpfs(folder: Path, size: str, *options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a full or read-only disk) needs root")
    folder.mkdir(exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """Mounts a small tmpfs (size, options) under tmp_path; unmounted after the test."""
    mounted = []

    def mount(size: str = "64k", *options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        _mount_tmpfs(folder, size, *options)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
