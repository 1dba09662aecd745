"""Merge the parts of ``scripts/gpu-check.sh`` into one JSON: the environment probe, pytest's
JUnit XML (every GPU / TensorRT test: passed, failed, skipped and why) and ``segedge doctor
--gpu --json``'s table. Standard library only (it must run where half of segedge's
dependencies are missing), and every part may be absent: that is recorded, not fatal.

Usage: python scripts/gpu_check_report.py OUT_DIR  (reads OUT_DIR/{env.json,pytest.xml,
doctor.json,*.rc,*.log}, writes OUT_DIR/gpu-check.json and prints what was skipped).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_junit(path: Path) -> dict:
    """Per-test outcomes from a pytest ``--junitxml`` file.

    Returns:
        ``{"tests": [{"name", "outcome", "seconds", "message"}], "counts": {outcome: n}}``,
        or ``{"error": ...}`` when the file is missing or unreadable.
    """
    if not path.is_file():
        return {"error": f"no {path.name} (pytest did not run or was killed)"}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return {"error": f"{path.name} is not JUnit XML: {exc}"}
    tests = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (child.get("message") or child.text or "").strip().splitlines()[0][:400] if (child.get("message") or child.text) else ""
                break
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        tests.append({"name": name, "outcome": outcome, "seconds": float(case.get("time", 0) or 0), "message": message})
    counts: dict[str, int] = {}
    for test in tests:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    return {"tests": tests, "counts": counts}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {"error": f"no {path.name}"}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"error": f"{path.name} is not JSON: {exc}"}


def _tail(path: Path, lines: int = 15) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else []


def _rc(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def merge(out: Path) -> dict:
    """The one JSON of a GPU check, from the parts in ``out`` (any may be missing)."""
    pytest_part = read_junit(out / "pytest.xml")
    doctor = _read_json(out / "doctor.json")
    skipped = [f"test {t['name']}: {t['message']}" for t in pytest_part.get("tests", []) if t["outcome"] == "skipped"]
    skipped += [f"doctor: {line}" for line in doctor.get("skipped", [])]
    failed = [f"test {t['name']}: {t['message']}" for t in pytest_part.get("tests", []) if t["outcome"] in ("failed", "error")]
    failed += [f"doctor: {line}" for line in doctor.get("failed", [])]
    steps = {}
    for step in ("pytest", "doctor"):
        rc = _rc(out / f"{step}.rc")
        steps[step] = {"exit_code": rc, "timed_out": rc in (124, 137), "log_tail": _tail(out / f"{step}.log") if rc not in (0, 5) else []}
        if rc in (124, 137):
            failed.append(f"{step}: killed by its time limit")
        elif rc is None:
            skipped.append(f"{step}: did not run")
    return {
        "environment": _read_json(out / "env.json"),
        "tests": pytest_part,
        "doctor": doctor,
        "steps": steps,
        "skipped": skipped,
        "failed": failed,
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ".")
    report = merge(out)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2))
    counts = report["tests"].get("counts", {})
    print(f"gpu-check: tests {counts or report['tests'].get('error')}; doctor rows {len(report['doctor'].get('rows', []))}")
    for line in report["skipped"]:
        print(f"skipped: {line}")
    for line in report["failed"]:
        print(f"FAILED: {line}")
    print(f"wrote {out / 'gpu-check.json'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
