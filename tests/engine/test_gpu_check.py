"""``scripts/gpu-check.sh``'s CPU-side logic: the merge of pytest's JUnit XML, the doctor's
JSON and each step's exit code into one JSON that names what was skipped and what failed."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _report_module():
    spec = importlib.util.spec_from_file_location("gpu_check_report", ROOT / "scripts" / "gpu_check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _junit(tmp_path: Path) -> Path:
    """A real JUnit XML from pytest: one pass, one skip with a reason, one failure."""
    tests = tmp_path / "t" / "test_sample.py"
    tests.parent.mkdir()
    tests.write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "@pytest.mark.skipif(True, reason='no CUDA device visible to PyTorch')\n"
        "def test_needs_gpu():\n    pass\n"
        "def test_broken():\n    assert 1 == 2, 'argmax agreement 0.91 < 0.999'\n"
    )
    xml = tmp_path / "out" / "pytest.xml"
    xml.parent.mkdir()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", str(tests)],
                   capture_output=True, timeout=120, cwd=tmp_path)
    return xml


def test_merge_names_skips_failures_and_timeouts(tmp_path):
    report = _report_module()
    out = _junit(tmp_path).parent
    (out / "pytest.rc").write_text("1\n")
    (out / "doctor.rc").write_text("124\n")  # killed by `timeout`
    (out / "doctor.log").write_text("building the fp16 engine\n")
    (out / "doctor.json").write_text(json.dumps({"rows": [{"backend": "torch-cpu fp32"}], "skipped": ["TensorRT engines: not installed"], "failed": []}))
    (out / "env.json").write_text(json.dumps({"python": "3.12.3"}))
    assert report.main(["gpu_check_report.py", str(out)]) == 1
    merged = json.loads((out / "gpu-check.json").read_text())
    assert merged["tests"]["counts"] == {"passed": 1, "skipped": 1, "failed": 1}
    assert any("test_needs_gpu" in s and "no CUDA device visible" in s for s in merged["skipped"])
    assert "doctor: TensorRT engines: not installed" in merged["skipped"]
    assert any("test_broken" in f for f in merged["failed"])
    assert "doctor: killed by its time limit" in merged["failed"]
    assert merged["steps"]["doctor"]["timed_out"] and merged["steps"]["doctor"]["log_tail"] == ["building the fp16 engine"]
    assert merged["environment"] == {"python": "3.12.3"}


def test_missing_parts_are_recorded_not_fatal(tmp_path):
    report = _report_module()
    merged = report.merge(tmp_path)
    assert "error" in merged["tests"] and "error" in merged["doctor"]
    assert "pytest: did not run" in merged["skipped"] and "doctor: did not run" in merged["skipped"]
    assert report.main(["gpu_check_report.py", str(tmp_path)]) == 0 and (tmp_path / "gpu-check.json").is_file()


def test_script_is_valid_bash_with_nounset_and_time_limits():
    text = SCRIPT.read_text()
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert "set -u" in text and text.count("timeout ") >= 3
    assert '-m "gpu or tensorrt"' in text and "--json" in text
