"""TensorRT is found by importing it, and one logger serves the process (defect 13 of issue 12)."""

import json
import subprocess
import sys
from pathlib import Path

from conformance import collect_usage

ROOT = Path(__file__).resolve().parents[2]


def test_doctor_finds_a_tensorrt_without_package_metadata(tmp_path):
    """JetPack's apt TensorRT (and a tensorrt-cu12-only install) puts an importable ``tensorrt``
    on the path with no ``tensorrt`` distribution metadata; the doctor must still see it."""
    site = tmp_path / "dist-packages"
    (site / "tensorrt").mkdir(parents=True)
    (site / "tensorrt" / "__init__.py").write_text('__version__ = "10.3.0"\n')  # what JetPack 6 ships, metadata-free
    code = (
        "import importlib.metadata, json\n"
        "from segedge.pipeline.doctor import installed_versions\n"
        "try:\n    meta = importlib.metadata.version('tensorrt')\nexcept importlib.metadata.PackageNotFoundError:\n    meta = None\n"
        "print(json.dumps({'metadata': meta, 'doctor': installed_versions()['tensorrt']}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"metadata": None, "doctor": "10.3.0"}


def test_one_logger_per_process():
    """Only ``tensorrt_api.trt_logger`` (cached) constructs a ``trt.Logger``; builders and runtimes reuse it."""
    sources = sorted((ROOT / "segedge" / "engine").glob("*.py")) + [ROOT / "segedge" / "runtime" / "tensorrt_runner.py"]
    constructions = [u.where for u in collect_usage(sources) if u.member == "tensorrt.Logger" and u.call is not None]
    assert constructions and all(w.startswith("tensorrt_api.py:") for w in constructions), constructions
    source = (ROOT / "segedge" / "engine" / "tensorrt_api.py").read_text()
    assert "@functools.lru_cache(maxsize=None)\ndef trt_logger()" in source
