"""The package layering (pyproject ``[tool.importlinter]``): stages import only downward, every
module sits in a layer, and no two modules import each other.

import-linter is part of the ``test`` extra (``make test`` installs it): where it is missing
these tests fail, naming the install command, instead of skipping (issue 24, item 17: a CI
without it passed with the layering unchecked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
MISSING = "import-linter is not installed in this environment: pip install -e '.[test]' (make test does)"


def _lint(root: Path) -> subprocess.CompletedProcess:
    assert LINT.exists(), MISSING
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


def _layers() -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10: import-linter depends on tomli there
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in config if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def test_every_module_of_the_package_is_in_a_layer():
    """Issue 24, item 17: ``segedge.cpuinfo`` was in no layer, so any stage could import it and
    it could import any stage unchecked."""
    children = {p.stem for p in (ROOT / "segedge").glob("*.py") if p.stem != "__init__"}
    children |= {p.name for p in (ROOT / "segedge").iterdir() if (p / "__init__.py").is_file()}
    unlayered = sorted(children - set(_layers()))
    assert not unlayered, f"add {unlayered} to a layer of [tool.importlinter] in pyproject.toml"


def test_no_two_modules_import_each_other():
    """Issue 24, item 14: ``data.oxford_pet`` and ``data.samples`` imported each other (one of the
    imports inside a function), the one cycle left; grimp (import-linter's graph) sees both kinds."""
    try:
        import grimp  # import-linter's import graph, installed with it
    except ImportError:
        pytest.fail(MISSING)
    graph = grimp.build_graph("segedge")
    cycles = sorted({
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    })
    assert not cycles, f"import cycles: {cycles}"


def test_the_export_function_shares_its_name_with_no_package():
    """Issue 24, item 15: ``segedge.export`` was both a subpackage and the API's function, made
    callable by swapping the package module's ``__class__``. The ONNX code lives in
    ``segedge.onnx`` (as ``torch.onnx.export`` lives in ``torch.onnx``); nothing swaps a class."""
    import ast
    import importlib
    import types

    import segedge

    assert isinstance(segedge.export, types.FunctionType) and segedge.export.__module__ == "segedge.pipeline.api"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("segedge.export")
    assert type(importlib.import_module("segedge.onnx")) is types.ModuleType
    for path in sorted((ROOT / "segedge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            assert not any(isinstance(t, ast.Attribute) and t.attr == "__class__" for t in targets), f"{path}: assigns __class__"
