"""The package layering (pyproject ``[tool.importlinter]``): stages import only downward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
        capture_output=True, text=True, timeout=300,
    )


def test_no_module_imports_a_later_stage():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    # the same package with one upward import added: a stage (runtime) importing the CLI
    shutil.copytree(ROOT / "segedge", tmp_path / "segedge", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    stage = tmp_path / "segedge" / "runtime" / "base.py"
    stage.write_text(stage.read_text() + "\nfrom segedge.cli import common  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "segedge.runtime.base -> segedge.cli.common" in result.stdout
