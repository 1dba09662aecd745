"""Generated hostile-input cases across every command, in process (typer's CliRunner).

Each case asserts what the README promises: the documented exit code, one line of output,
no traceback, no temporary file left behind, and every earlier file byte-identical. Inputs
are tiny fixtures built once per session (conftest.py); every case fails before any long
work (no export, calibration or training runs).
"""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from segedge.cli.main import app

cli = CliRunner()

BAD_FILES = ["missing", "empty", "garbage", "truncated", "text", "folder", "loop"]  # unusable as any model
FOREIGN = ["one_channel", "int64_input", "21_classes", "classifier"]  # valid ONNX, not a segmentation model


def _model(kit, ws, kind):
    return str(ws / "absent.onnx") if kind == "missing" else str(kit[kind])


CASES: list[tuple[str, object, int]] = []  # (id, args(kit, ws) -> argv, exit code)

for kind in BAD_FILES + FOREIGN:
    CASES += [
        (f"run-engine-{kind}", lambda k, w, kind=kind: ["run", "-s", str(k["frames"]), "-e", _model(k, w, kind)], 2),
        (f"calibrate-{kind}", lambda k, w, kind=kind: ["calibrate", _model(k, w, kind), "-o", str(w / "q.onnx"), "--calib-data", str(k["frames"])], 2),
        (f"report-{kind}", lambda k, w, kind=kind: ["report", "-c", _model(k, w, kind), "-d", str(k["frames"]), "-o", str(w / "rep")], 2),
        (f"bench-{kind}", lambda k, w, kind=kind: ["bench", _model(k, w, kind)], 2),
    ]
for kind in BAD_FILES:
    CASES += [
        (f"build-engine-{kind}", lambda k, w, kind=kind: ["build-engine", _model(k, w, kind), "-o", str(w / "b.onnx")], 2),
        (f"build-engine-fp16-{kind}", lambda k, w, kind=kind: ["build-engine", _model(k, w, kind), "--precision", "fp16", "-o", str(w / "b.onnx")], 2),
        (f"inspect-{kind}", lambda k, w, kind=kind: ["inspect", _model(k, w, kind)], 2),
        (f"export-rewrite-{kind}", lambda k, w, kind=kind: ["export", _model(k, w, kind), "-o", str(w / "r.onnx")], 2),
    ]
for name, make in {
    "missing": lambda k, w: str(w / "absent.pt"),
    "garbage": lambda k, w: str(k["garbage_pt"]),
    "folder": lambda k, w: str(k["folder"]),
}.items():
    CASES.append((f"export-checkpoint-{name}", lambda k, w, make=make: ["export", make(k, w), "-o", str(w / "e.onnx")], 2))

# outputs: an existing folder, a missing parent, the input itself, an existing file without --force, a symlink to the input
OUTPUT_COMMANDS = {
    "export": lambda k, o: ["export", "-o", o],
    "calibrate": lambda k, o: ["calibrate", str(k["onnx"]), "-o", o, "--calib-data", str(k["frames"])],
    "build-engine": lambda k, o: ["build-engine", str(k["onnx"]), "-o", o],
    "run-output": lambda k, o: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "-o", o],
    "run-stats": lambda k, o: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--stats", o],
}
SUFFIX = {"export": ".onnx", "calibrate": ".onnx", "build-engine": ".onnx", "run-output": ".mp4", "run-stats": ".jsonl"}
for command, argv in OUTPUT_COMMANDS.items():
    suffix = SUFFIX[command]
    CASES += [
        (f"{command}-output-is-a-folder", lambda k, w, argv=argv, s=suffix: argv(k, str(w / f"dir{s}")), 2),
        (f"{command}-output-parent-missing", lambda k, w, argv=argv, s=suffix: argv(k, str(w / "no" / f"x{s}")), 2),
        (f"{command}-output-exists", lambda k, w, argv=argv, s=suffix: argv(k, str(w / f"earlier{s}")), 2),
        (f"{command}-output-is-the-model", lambda k, w, argv=argv: argv(k, str(k["onnx"])) + ["--force"], 2),
        (f"{command}-output-symlink-to-the-model", lambda k, w, argv=argv: argv(k, str(w / "link.onnx")) + ["--force"], 2),
    ]
CASES = [c for c in CASES if c[0] != "export-output-is-the-model" and c[0] != "export-output-symlink-to-the-model"]  # export reads a .pt
CASES += [
    ("report-output-is-a-file", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "-o", str(w / "earlier.onnx")], 2),
    ("report-output-holds-other-files", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "-o", str(w)], 2),
    ("report-output-is-the-data", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "-o", str(k["frames"]), "--force"], 2),
    ("report-output-parent-missing", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "-o", str(w / "no" / "r")], 2),
    ("report-earlier-report-without-force", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "-o", str(w / "old-report")], 2),
    ("run-save-masks-is-a-file", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--save-masks", str(w / "earlier.mp4")], 2),
    ("run-save-masks-is-the-source", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--save-masks", str(k["frames"])], 2),
    ("run-output-not-a-video-name", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "-o", str(w / "x.txt")], 2),
    ("run-output-equals-stats", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "-o", str(w / "a.mp4"), "--stats", str(w / "a.mp4")], 2),
    ("calibrate-cache-is-a-folder", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["frames"]), "--cache", str(w / "dir.onnx")], 2),
    ("calibrate-cache-is-the-model", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["frames"]), "--cache", str(k["onnx"])], 2),
    ("calibrate-int8-model", lambda k, w: ["calibrate", str(k["int8"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["frames"])], 2),
    ("demo-output-parent-missing", lambda k, w: ["demo", "-o", str(w / "no" / "demo")], 2),
    ("demo-data-missing", lambda k, w: ["demo", "-o", str(w / "demo"), "--data", str(w / "absent")], 2),
    ("demo-output-is-a-file", lambda k, w: ["demo", "-o", str(w / "earlier.onnx")], 2),
    # sources
    ("run-source-missing", lambda k, w: ["run", "-s", str(w / "absent.mp4"), "-e", str(k["onnx"])], 5),
    ("run-source-empty-glob", lambda k, w: ["run", "-s", str(w / "*.png"), "-e", str(k["onnx"])], 5),
    ("run-source-only-bombs", lambda k, w: ["run", "-s", str(k["bomb_folder"]), "-e", str(k["onnx"])], 5),
    ("run-source-only-corrupt", lambda k, w: ["run", "-s", str(k["corrupt_folder"]), "-e", str(k["onnx"])], 5),
    ("run-source-bomb-image", lambda k, w: ["run", "-s", str(k["bomb"]), "-e", str(k["onnx"])], 5),
    ("run-source-model-as-video", lambda k, w: ["run", "-s", str(k["onnx"]), "-e", str(k["onnx"])], 5),
    ("run-source-url-with-password", lambda k, w: ["run", "-s", "http://user:hunter2@127.0.0.1:9/x.mjpg", "-e", str(k["onnx"])], 5),
    ("run-gt-masks-missing", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--gt-masks", str(w / "absent")], 2),
    ("run-unknown-class", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--classes", "cat"], 2),
    ("calibrate-data-only-bombs", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["bomb_folder"])], 2),
    ("calibrate-data-only-corrupt", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["corrupt_folder"])], 2),
    ("calibrate-data-missing", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(w / "absent")], 2),
    ("build-engine-int8-without-data", lambda k, w: ["build-engine", str(k["onnx"]), "--precision", "int8", "-o", str(w / "q.onnx")], 2),
    ("build-engine-bad-suffix", lambda k, w: ["build-engine", str(k["onnx"]), "-o", str(w / "q.txt")], 2),
    ("report-no-candidates", lambda k, w: ["report", "-d", str(k["frames"]), "-o", str(w / "r")], 2),
    ("report-no-data", lambda k, w: ["report", "-c", str(k["onnx"]), "-o", str(w / "r")], 2),
    ("report-gt-without-video", lambda k, w: ["report", "-c", str(k["onnx"]), "-d", str(k["frames"]), "--gt-masks", str(k["frames"]), "-o", str(w / "r")], 2),
    ("train-data-missing", lambda k, w: ["train", str(w / "absent"), "-o", str(w / "t.pt")], 2),
    ("train-data-not-pet", lambda k, w: ["train", str(k["frames"]), "-o", str(w / "t.pt")], 2),
    ("download-data-onto-a-file", lambda k, w: ["download-data", str(w / "earlier.onnx")], 2),
]
# issue 24 (second review), items 9-11: IR files over inputs, the reference as an output, Triton
# addresses, deploy outputs, NaN weights, a timing cache over an input
IR = lambda k, w, xml, *extra: ["export", str(k["onnx"]), "-o", str(w / "m.onnx"), "--openvino-ir", str(xml), *extra]  # noqa: E731
CASES += [
    ("export-openvino-bin-is-the-checkpoint", lambda k, w: ["export", str(k["ckpt_bin"]), "-o", str(w / "m.onnx"), "--openvino-ir", str(k["ckpt_bin"].with_suffix(".xml"))], 2),
    ("export-openvino-bin-is-the-checkpoint-force", lambda k, w: ["export", str(k["ckpt_bin"]), "-o", str(w / "m.onnx"), "--openvino-ir", str(k["ckpt_bin"].with_suffix(".xml")), "--force"], 2),
    ("export-openvino-xml-exists", lambda k, w: IR(k, w, w / "old.xml"), 2),
    ("export-openvino-bin-exists", lambda k, w: IR(k, w, w / "earlier.xml"), 2),
    ("export-openvino-bin-is-the-onnx-output", lambda k, w: ["export", str(k["onnx"]), "-o", str(w / "m.bin"), "--openvino-ir", str(w / "m.xml")], 2),
    ("export-all-nan-onnx", lambda k, w: ["export", str(k["nan_onnx"]), "-o", str(w / "n.onnx")], 2),
    ("run-stats-is-the-reference", lambda k, w: ["run", "-s", str(k["frames"]), "-e", str(k["onnx"]), "--reference", str(k["ref_onnx"]), "--stats", str(k["ref_onnx"]), "--force"], 2),
    ("run-triton-port-out-of-range", lambda k, w: ["run", "-s", str(k["frames"]), "-e", "triton://127.0.0.1:99999/m"], 2),
    ("run-triton-password-bad-port", lambda k, w: ["run", "-s", str(k["frames"]), "-e", "triton://user:hunter2@127.0.0.1:99999/m"], 2),
    ("run-triton-password-unreachable", lambda k, w: ["run", "-s", str(k["frames"]), "-e", "triton://user:hunter2@127.0.0.1:9/m"], 4),
    ("deploy-deepstream-output-exists", lambda k, w: ["deploy", "deepstream", str(k["onnx"]), "-o", str(w / "ds")], 2),
    ("deploy-deepstream-output-is-the-model", lambda k, w: ["deploy", "deepstream", str(k["onnx"]), "-o", str(k["onnx"]), "--force"], 2),
    ("deploy-triton-output-is-the-model", lambda k, w: ["deploy", "triton", str(k["onnx"]), "-o", str(k["onnx"])], 2),
    ("deploy-triton-model-exists", lambda k, w: ["deploy", "triton", str(k["onnx"]), "-o", str(w / "repo")], 2),
    ("build-engine-timing-cache-is-the-model", lambda k, w: ["build-engine", str(k["onnx"]), "-o", str(w / "m.engine"), "--timing-cache", str(k["onnx"])], 2),
    ("build-engine-timing-cache-is-the-sidecar", lambda k, w: ["build-engine", str(k["onnx"]), "-o", str(w / "m.engine"), "--timing-cache", str(w / "m.engine.json")], 2),
    ("build-engine-timing-cache-is-the-calib-cache", lambda k, w: ["build-engine", str(k["onnx"]), "-o", str(w / "m.engine"), "--precision", "int8", "--calib-data", str(k["frames"]), "--timing-cache", str(w / "c.json"), "--calib-cache", str(w / "c.json")], 2),
]
# usage errors: one line, exit 2, for every command
for command in ("demo", "train", "export", "calibrate", "build-engine", "inspect", "run", "report", "download-data", "doctor", "bench",
                "serve", "deploy triton", "deploy deepstream"):
    CASES.append((f"usage-unknown-option-{command.replace(' ', '-')}", lambda k, w, c=command: [*c.split(), "--no-such-option"], 2))
CASES += [
    ("usage-unknown-command", lambda k, w: ["no-such-command"], 2),
    ("usage-bad-precision", lambda k, w: ["build-engine", str(k["onnx"]), "-o", str(w / "x.onnx"), "--precision", "int4"], 2),
    ("usage-bad-alpha", lambda k, w: ["run", "-s", str(k["frames"]), "--alpha", "7"], 2),
    ("usage-bad-port", lambda k, w: ["run", "-s", str(k["frames"]), "--serve", "70000"], 2),
    ("usage-bad-integer", lambda k, w: ["calibrate", str(k["onnx"]), "-o", str(w / "q.onnx"), "--calib-data", str(k["frames"]), "--num-images", "many"], 2),
    ("usage-missing-source", lambda k, w: ["run"], 2),
    ("usage-bad-target", lambda k, w: ["export", "--target", "tflite"], 2),
]


@pytest.fixture
def workspace(tmp_path):
    """A folder holding earlier artifacts every case must leave byte-identical."""
    (tmp_path / "earlier.onnx").write_bytes(b"earlier model")
    (tmp_path / "earlier.mp4").write_bytes(b"earlier recording")
    (tmp_path / "earlier.jsonl").write_bytes(b'{"frame": 0}\n')
    for suffix in (".onnx", ".mp4", ".jsonl"):
        (tmp_path / f"dir{suffix}").mkdir()
    report = tmp_path / "old-report"
    report.mkdir()
    (report / "report.json").write_text("{}")
    (tmp_path / "earlier.bin").write_bytes(b"earlier IR weights")
    (tmp_path / "old.xml").write_bytes(b"<net>an earlier IR</net>")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "labels.txt").write_text("an earlier deployment\n")
    (tmp_path / "repo" / "tiny").mkdir(parents=True)
    (tmp_path / "repo" / "tiny" / "config.pbtxt").write_text("an earlier model")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(case, kit, workspace, refusal, take_snapshot, monkeypatch):
    name, argv, code = case
    os.symlink(kit["onnx"], workspace / "link.onnx")
    monkeypatch.chdir(workspace)
    before = take_snapshot(workspace)
    kit_before = take_snapshot(kit["root"])
    args = argv(kit, workspace)
    for out in ("earlier.onnx", "earlier.mp4", "earlier.jsonl"):  # name the earlier files as outputs
        args = [a.replace(str(workspace / f"earlier{os.path.splitext(out)[1]}"), str(workspace / out)) for a in args]
    line = refusal(cli.invoke(app, args), code, workspace, before)
    assert "hunter2" not in line
    assert take_snapshot(kit["root"]) == kit_before  # the inputs too


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)
    assert sum(name.startswith(("export-openvino", "run-stats-is-the-reference", "run-triton", "deploy-", "export-all-nan",
                                "build-engine-timing")) for name, _, _ in CASES) == 17  # issue 24's cases
