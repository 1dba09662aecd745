"""One test per hostile-input case left open by the 2026-12-02 corpus rerun (issue 24, items 9,
10 and 11), each with its own fixture; the generated matrix (test_hostile_matrix.py) repeats
them as one-line refusals."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.errors import ModelFormatError

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "segedge" / "models" / "weights" / "segnet-dsc.pt"
cli = CliRunner()


def _invoke(args):
    return cli.invoke(app, [str(a) for a in args])


# ---- item 9: export --openvino-ir ------------------------------------------------------------
def test_the_ir_weights_never_replace_the_input_checkpoint(tmp_path, refusal, take_snapshot):
    """`export ckpt.bin -o m.onnx --openvino-ir ckpt.xml` exited 0 and wrote OpenVINO weights over
    the checkpoint it exported."""
    checkpoint = tmp_path / "ckpt.bin"
    shutil.copyfile(WEIGHTS, checkpoint)
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["export", checkpoint, "-o", tmp_path / "m.onnx", "--openvino-ir", tmp_path / "ckpt.xml"]), 2, tmp_path, before)
    assert "ckpt.bin" in line and "input" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]  # refused before the export: no m.onnx either
    force = _invoke(["export", checkpoint, "-o", tmp_path / "m.onnx", "--openvino-ir", tmp_path / "ckpt.xml", "--force"])
    assert force.exit_code == 2 and checkpoint.read_bytes() == WEIGHTS.read_bytes()  # an input, --force or not


@pytest.mark.parametrize("existing", ["old.xml", "old.bin"])
def test_an_existing_ir_file_is_refused_before_the_export(kit, tmp_path, existing, refusal, take_snapshot):
    """An existing .xml was refused only after the export (the ONNX already written); an existing
    .bin beside a new .xml was replaced silently."""
    (tmp_path / existing).write_bytes(b"an earlier IR file")
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["export", kit["onnx"], "-o", tmp_path / "m.onnx", "--openvino-ir", tmp_path / "old.xml"]), 2, tmp_path, before)
    assert existing in line and "--force" in line
    assert not (tmp_path / "m.onnx").exists()


def test_an_ir_is_one_pair_and_a_mixed_pair_is_refused(kit, make_onnx, tmp_path):
    """The .xml records its .bin's SHA-256 and is published last: a .bin from another export (what a
    crash between the two renames, or two exports at once, leaves) is refused, not run."""
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'segedge[openvino]')")
    from segedge.onnx.openvino_ir import save_ir
    from segedge.runtime.openvino_runner import OpenVINORunner

    xml = save_ir(kit["onnx"], tmp_path / "a.xml")
    other = save_ir(make_onnx(tmp_path / "other.onnx", weight=0.7), tmp_path / "b.xml")
    with OpenVINORunner(xml) as runner:
        assert runner.contract.declared and runner.contract.model == "tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.xml", "b.bin", "b.xml", "other.onnx"]
    shutil.copyfile(other.with_suffix(".bin"), xml.with_suffix(".bin"))
    with pytest.raises(ModelFormatError, match="a.bin is not the weights file a.xml was written with"):
        OpenVINORunner(xml)
    save_ir(kit["onnx"], xml, force=True)  # --force writes the pair again
    OpenVINORunner(xml).close()


# ---- item 10: every input counts ---------------------------------------------------------------
def test_run_never_writes_over_its_reference(kit, make_onnx, tmp_path, refusal, take_snapshot):
    """`run --reference ref --stats ref --force` replaced the reference with JSON lines."""
    reference = make_onnx(tmp_path / "ref.onnx")
    before = take_snapshot(tmp_path)
    for option in ("--stats", "-o"):
        target = reference if option == "--stats" else tmp_path / "ref.mp4"
        if option == "-o":  # a reference that is a video name is no model: only --stats can name it
            continue
        line = refusal(_invoke(["run", "-s", kit["frames"], "-e", kit["onnx"], "--reference", reference, option, target, "--force"]),
                       2, tmp_path, before)
        assert "is the input" in line and "ref.onnx" in line


# ---- item 11 -------------------------------------------------------------------------------------
def test_a_triton_address_shows_no_password_and_a_bad_port_is_one_line(kit, tmp_path, refusal, take_snapshot):
    from segedge.runtime.triton_runner import credentials, parse_url

    assert parse_url("triton://user:hunter2@10.0.0.5:8000/dsc") == ("http", "10.0.0.5:8000", "dsc")
    assert credentials("triton+grpc://user:hunter2@10.0.0.5:8001/dsc") == ("user", "hunter2")
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["run", "-s", kit["frames"], "-e", "triton://127.0.0.1:99999/m"]), 2, tmp_path, before)
    assert "port '99999'" in line  # was: the right line, then tritonclient's 8-line traceback
    line = refusal(_invoke(["run", "-s", kit["frames"], "-e", "triton://user:hunter2@127.0.0.1:99999/m"]), 2, tmp_path, before)
    assert "hunter2" not in line and "user" not in line


def test_deploy_deepstream_needs_force_to_replace_files(kit, tmp_path, refusal, take_snapshot):
    out = tmp_path / "ds"
    assert _invoke(["deploy", "deepstream", kit["onnx"], "-o", out]).exit_code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["config_infer_tiny.txt", "labels.txt", "tiny-deepstream.onnx"]
    (out / "labels.txt").write_text("my own labels\n")
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["deploy", "deepstream", kit["onnx"], "-o", out]), 2, tmp_path, before)
    assert "--force" in line
    assert _invoke(["deploy", "deepstream", kit["onnx"], "-o", out, "--force"]).exit_code == 0
    assert (out / "labels.txt").read_text() != "my own labels\n"
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["deploy", "deepstream", kit["onnx"], "-o", kit["onnx"]]), 2, tmp_path, before)
    assert "is a file" in line or "is the input" in line


def test_an_all_nan_onnx_is_refused_like_a_nan_checkpoint(make_onnx, tmp_path, refusal, take_snapshot):
    model = onnx.load(str(make_onnx(tmp_path / "nan.onnx")))
    weight = numpy_helper.to_array(model.graph.initializer[0])
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full_like(weight, np.nan), model.graph.initializer[0].name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    before = take_snapshot(tmp_path)
    line = refusal(_invoke(["export", tmp_path / "nan.onnx", "-o", tmp_path / "out.onnx"]), 2, tmp_path, before)
    assert "NaN or infinite" in line and not (tmp_path / "out.onnx").exists()


def test_calibrate_on_a_full_disk_exits_2_as_the_readme_says(kit, tmpfs, take_snapshot, find_leftovers):
    """A full output folder is bad input (exit 2, README's table), not a quantizer failure (3)."""
    folder = tmpfs("64k")
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)  # every block taken: an empty file (the write probe) still fits
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    before = take_snapshot(folder)
    result = _invoke(["calibrate", kit["onnx"], "-o", folder / "q.onnx", "--calib-data", kit["frames"], "--num-images", "2"])
    text = result.output
    lines = [line for line in text.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in text, text  # was: exit 3, "INT8 quantization failed"
    assert lines[-1].startswith("error: cannot write") and "q.onnx" in lines[-1] and "No space left" in lines[-1]
    assert len(lines) == 2 and lines[0].startswith("calibration: ")  # the set it had loaded, then the one error line
    assert take_snapshot(folder) == before and not find_leftovers(folder)


def test_a_killed_export_leaves_a_temporary_that_the_next_export_removes(kit, tmp_path):
    """Temporaries a SIGKILL left were never cleaned up: they are named ``.NAME.PID.XXXXXXXX.tmp``
    beside the output (README, "Exit codes and hostile input"), and the next run writing that
    output removes those whose process is gone."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "m.onnx"
    code = (
        "import os, signal\n"
        "from segedge._io import atomic_path\n"
        f"with atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half an export')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL and len(list(tmp_path.iterdir())) == 1
    assert _invoke(["export", kit["onnx"], "-o", out]).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_train_never_writes_over_its_init_checkpoint(pet_root, tmp_path, refusal, take_snapshot):
    """Every input of every command counts (item 10): `train -o RUN --init RUN/model.pt` replaced the
    checkpoint it fine-tuned from with the new weights at the end."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(WEIGHTS, run / "model.pt")
    before = take_snapshot(tmp_path)
    args = ["train", pet_root, "-o", run, "--init", run / "model.pt", "--model", "segnet-dsc", "--epochs", "1", "--limit", "2", "--batch-size", "2"]
    line = refusal(_invoke(args), 2, tmp_path, before)
    assert "model.pt" in line and "input" in line
    line = refusal(_invoke(["train", pet_root, "-o", pet_root, "--epochs", "1", "--limit", "2"]), 2, tmp_path, before)
    assert "is the data folder" in line
