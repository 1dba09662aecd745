"""Shared fixtures: real data from ../shared/data (skipped with a reason when absent), the
embedded checkpoint, and ONNX exports built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGEDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
PET = SHARED / "oxford-iiit-pet-sample"
VIDEO_DIR = SHARED / "video"
LIBBY = SHARED / "davis-libby"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SEGEDGE_SHARED_DATA or check out ../shared next to the repo)")
    return path


@pytest.fixture(scope="session")
def pet_root() -> Path:
    return _require(PET)


@pytest.fixture(scope="session")
def libby_video() -> Path:
    return _require(VIDEO_DIR / "davis_libby_854x480.mp4")


@pytest.fixture(scope="session")
def libby_dir() -> Path:
    return _require(LIBBY)


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model, segnet-lite0 (ImageNet encoder, each frame at its own aspect)."""
    from segedge.models.checkpoint import load_checkpoint

    return load_checkpoint()


@pytest.fixture(scope="session")
def embedded():
    from segedge.models.checkpoint import load_checkpoint

    return load_checkpoint("segnet-dsc")  # the small article model: the fast fixture of most tests


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory, embedded) -> Path:
    """The embedded model exported once per test session (FP32, dynamic batch)."""
    from segedge.onnx.export import export_onnx

    path = tmp_path_factory.mktemp("export") / "segnet-dsc.onnx"
    export_onnx(embedded, path)
    return path


@pytest.fixture(scope="session")
def native_onnx(tmp_path_factory, embedded) -> Path:
    """The embedded model exported once per test session in the ``onnxruntime`` form (MaxUnpool)."""
    from segedge.onnx.export import export_onnx

    path = tmp_path_factory.mktemp("native") / "segnet-dsc-ort.onnx"
    export_onnx(embedded, path, target="onnxruntime")
    return path


TINY_SIZE = 16  # input height and width of the tiny model


@pytest.fixture(scope="session")
def tiny_contract():
    """The contract of :func:`tiny_checkpoint`: 4 classes at 16x16, BGR, ImageNet-like mean/std."""
    from segedge.contract import Contract, PreprocessConfig

    preprocess = PreprocessConfig(TINY_SIZE, TINY_SIZE, "linear", "BGR", mean=(0.4, 0.45, 0.5), std=(0.25, 0.2, 0.22))
    return Contract(preprocess=preprocess, classes=("background", "road", "bike", "person"), model="tiny-conv")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_contract):
    """A two-convolution segmentation model (seeded weights) wrapped with its contract: the
    smallest artifact every runner can load (no export of a real model needed)."""
    import torch

    from segedge.models.checkpoint import Checkpoint

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, tiny_contract.num_classes, 1)
    )
    return Checkpoint.from_module(model, tiny_contract)


def write_tiny_onnx(checkpoint, path: Path, batch: int | None = None) -> Path:
    """Export ``checkpoint``'s model with the TorchScript exporter (fast for two convolutions)
    and embed its contract; ``batch`` fixes the batch dimension (default symbolic)."""
    import onnx
    import torch

    size = checkpoint.preprocess.size
    example = torch.zeros(batch or 1, 3, *size)
    axes = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(checkpoint.model, (example,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes=axes)
    model = onnx.load(str(path))
    checkpoint.contract.write_onnx(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx_writer():
    """:func:`write_tiny_onnx`, for tests that need another variant (fixed batch, ...)."""
    return write_tiny_onnx


@pytest.fixture(scope="session")
def shared_video():
    """``shared_video("bikes_640x272.mp4")``: a video of ../shared/data/video (skips when absent)."""
    return lambda name: _require(VIDEO_DIR / name)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_checkpoint) -> Path:
    """:func:`tiny_checkpoint` as an ONNX with its contract (dynamic batch)."""
    return write_tiny_onnx(tiny_checkpoint, tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture
def one_line_error():
    """Checker for CLI results: see :func:`assert_one_line_error`."""
    return assert_one_line_error


def assert_one_line_error(result) -> str:
    """Assert a CliRunner result is a failure reported in exactly one line, no traceback;
    return that line."""
    text = (result.stderr or "") + (result.stdout or "")
    lines = [line for line in text.splitlines() if line.strip()]
    assert result.exit_code != 0, text
    assert "Traceback" not in text, text
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]
