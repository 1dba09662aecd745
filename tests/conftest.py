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
def embedded():
    from segedge.models.checkpoint import load_checkpoint

    return load_checkpoint()


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory, embedded) -> Path:
    """The embedded model exported once per test session (FP32, dynamic batch)."""
    from segedge.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("export") / "segnet-dsc.onnx"
    export_onnx(embedded, path)
    return path


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
