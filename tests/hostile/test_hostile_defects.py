"""One test per defect of issue 15 (hostile input, full disks and signals), each building
its own fixture: symlinks, decompression bombs, NaN weights, external-data ONNX, outputs
that are inputs, no display, truncated video, full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from segedge._io import atomic_path, atomic_write_bytes, check_output, staged_directory
from segedge.cli.main import app
from segedge.data.images import read_image, read_label_map
from segedge.data.oxford_pet import OxfordPet
from segedge.data.sources import ImageFilesSource, open_source, redact_url
from segedge.errors import CheckpointError, DataError, ExportError, InputError, SourceError
from segedge.onnx.metadata import self_contained
from segedge.onnx.export import compare_logits
from segedge.runtime.sinks import MaskSink, StatsSink, VideoSink

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()
FRAME = {"frame": 0, "infer_ms": 1.0}


# ---- symlink-following writes ------------------------------------------------------------------
def test_masks_replace_planted_symlinks_instead_of_writing_through_them(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("000000.png", ".000000.png.tmp.png"):  # the final and the old predictable temporary name
        os.symlink(victim, masks / name)
    MaskSink(masks).write(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.uint8), FRAME)
    assert victim.read_bytes() == b"precious"
    written = masks / "000000.png"
    assert not written.is_symlink() and read_label_map(written).max() == 1


def test_stats_file_symlink_is_replaced_and_an_earlier_file_survives_a_failed_run(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = tmp_path / "stats.jsonl"
    os.symlink(victim, link)
    sink = StatsSink(link)
    sink.write(None, None, FRAME)
    sink.close()
    assert victim.read_bytes() == b"precious" and not link.is_symlink()
    assert json.loads(link.read_text())["frame"] == 0
    earlier = link.read_bytes()
    sink = StatsSink(link)  # a second run that fails: the earlier file stays, the new lines go aside
    sink.write(None, None, {"frame": 7})
    sink.close(failed=True)
    assert link.read_bytes() == earlier
    assert json.loads(sink.partial.read_text())["frame"] == 7


def test_atomic_write_goes_through_the_descriptor_not_the_name(tmp_path):
    target = tmp_path / "a.bin"
    os.symlink(tmp_path / "elsewhere", target)
    atomic_write_bytes(target, b"data")
    assert target.read_bytes() == b"data" and not target.is_symlink() and not (tmp_path / "elsewhere").exists()


# ---- decompression bombs and unbounded reads ---------------------------------------------------
def test_a_png_declaring_20000x20000_is_refused_before_decoding(tmp_path, make_bomb):
    bomb = make_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(DataError, match="Mpixel"):
        read_image(bomb)
    with pytest.raises(DataError, match="Mpixel"):
        read_label_map(bomb)


def test_a_bomb_in_a_stream_is_a_skipped_counted_frame(tmp_path, make_bomb, kit):
    files = [make_bomb(tmp_path / "0.png"), *sorted(kit["frames"].iterdir())[:1]]
    source = ImageFilesSource(files, "test")
    frames = list(source)
    assert len(frames) == 1 and source.skipped == 1


def test_an_oversized_file_is_refused_by_size(tmp_path, monkeypatch):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as handle:  # sparse: 300 MiB on paper, nothing on disk
        handle.truncate(300 * 2**20)
    with pytest.raises(DataError, match="MiB"):
        read_image(big)


# ---- URL credentials ---------------------------------------------------------------------------
def test_redact_url_strips_credentials_everywhere():
    text = "cannot open stream rtsp://admin:p@ss:w0rd@10.0.0.5:554/live and http://bob@cam.local/x; mail a@b"
    assert redact_url(text) == "cannot open stream rtsp://10.0.0.5:554/live and http://cam.local/x; mail a@b"


def test_a_stream_password_never_reaches_the_output():
    result = cli.invoke(app, ["run", "--source", "rtsp://admin:hunter2@127.0.0.1:9/live", "--engine", "/no/such.onnx"])
    result2 = cli.invoke(app, ["run", "--source", "http://admin:hunter2@127.0.0.1:9/x.mjpg"])
    for r in (result, result2):
        assert "hunter2" not in r.output and r.exit_code != 0
    assert result2.exit_code == 5 and "127.0.0.1:9" in result2.output


# ---- Pet split files ---------------------------------------------------------------------------
def _pet_root(tmp_path: Path, split_text: bytes) -> Path:
    root = tmp_path / "pet"
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "annotations" / "trainval.txt").write_bytes(split_text)
    return root


@pytest.mark.parametrize("name", ["../../outside", "/etc/passwd", "..\\x", ".hidden"])
def test_split_names_that_are_paths_are_refused(tmp_path, name):
    outside = tmp_path / "outside.jpg"
    cv2.imwrite(str(outside), np.zeros((8, 8, 3), np.uint8))
    root = _pet_root(tmp_path, f"{name} 1 1 1\n".encode())
    with pytest.raises(DataError, match="may not hold a path"):
        OxfordPet(root, "trainval")


def test_non_utf8_split_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="UTF-8"):
        OxfordPet(_pet_root(tmp_path, b"Abyssinian_1 1 1 1\n\xff\xfe\xfa\n"), "trainval")


# ---- full disk ---------------------------------------------------------------------------------
def test_run_on_a_full_disk_keeps_the_earlier_video_and_fails(tmpfs, kit, tmp_path, refusal, take_snapshot):
    disk = tmpfs("96k")
    out = disk / "out.mp4"
    out.write_bytes(b"earlier recording")
    frames = tmp_path / "big"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # noise does not compress: 4 frames of 320x240 overflow 96 KiB
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    before = take_snapshot(disk)
    result = cli.invoke(app, ["run", "-s", str(frames), "-e", str(kit["onnx"]), "-o", str(out), "--force"])
    line = refusal(result, 5, disk, before)
    assert "incomplete" in line and "kept" in line


def test_a_report_folder_on_a_full_disk_stays_whole(tmpfs):
    disk = tmpfs("64k")
    report = disk / "report"
    report.mkdir()
    for name in ("report.json", "report.md", "report.html"):
        (report / name).write_text("old " + name)
    with pytest.raises(OSError):
        with staged_directory(report) as staged:
            (staged / "report.json").write_text("new")
            (staged / "report.html").write_bytes(b"x" * 200_000)  # does not fit
    assert sorted(p.name for p in disk.iterdir()) == ["report"]
    assert all((report / n).read_text() == "old " + n for n in ("report.json", "report.md", "report.html"))


def test_a_read_only_folder_is_refused_before_any_work(tmpfs, kit):
    disk = tmpfs("64k", "ro")
    with pytest.raises(InputError, match="Read-only"):
        check_output(disk / "out.onnx")
    result = cli.invoke(app, ["calibrate", str(kit["onnx"]), "-o", str(disk / "q.onnx"), "--calib-data", str(kit["frames"])])
    assert result.exit_code == 2 and "Read-only" in result.output


# ---- outputs that are inputs -------------------------------------------------------------------
def test_outputs_equal_to_inputs_are_refused_and_the_input_survives(tmp_path, kit, refusal, take_snapshot):
    model = tmp_path / "m.onnx"
    shutil.copy(kit["onnx"], model)
    clip = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for _ in range(3):
        writer.write(np.full((24, 32, 3), 90, np.uint8))
    writer.release()
    before = take_snapshot(tmp_path)
    for args in (
        ["calibrate", str(model), "-o", str(model), "--calib-data", str(kit["frames"]), "--force"],
        ["build-engine", str(model), "--precision", "fp16", "-o", str(model), "--force"],
        ["run", "--source", str(clip), "-e", str(model), "-o", str(clip), "--force"],
        ["run", "--source", str(clip), "-e", str(model), "--stats", str(clip), "--force"],
        ["report", "-c", str(model), "--data", str(kit["frames"]), "-o", str(tmp_path), "--force"],
    ):
        refusal(cli.invoke(app, args), 2, tmp_path, before)


def test_existing_outputs_need_force(tmp_path, kit, refusal, take_snapshot):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"earlier")
    before = take_snapshot(tmp_path)
    for args in (
        ["calibrate", str(kit["onnx"]), "-o", str(out), "--calib-data", str(kit["frames"])],
        ["build-engine", str(kit["onnx"]), "-o", str(out)],
        ["export", "-o", str(out)],
    ):
        assert "--force" in refusal(cli.invoke(app, args), 2, tmp_path, before)


def test_a_concurrent_writer_cannot_be_silently_overwritten(tmp_path):
    out = tmp_path / "model.onnx"
    with pytest.raises(InputError, match="exists"):
        with atomic_path(out, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"the other process")  # appeared while we were writing
    assert out.read_bytes() == b"the other process" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_failed_run_does_not_replace_an_earlier_recording(tmp_path):
    out = tmp_path / "rec.mp4"
    out.write_bytes(b"earlier recording")
    sink = VideoSink(out, 10)
    for _ in range(3):
        sink.write(np.full((24, 32, 3), 50, np.uint8), None, FRAME)
    sink.close(failed=True)
    assert out.read_bytes() == b"earlier recording"
    capture = cv2.VideoCapture(str(sink.partial))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3


# ---- no display --------------------------------------------------------------------------------
def test_show_without_a_display_is_the_backend_unavailable_line(kit, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "segedge.cli.main", "run", "-s", str(kit["frames"]), "-e", str(kit["onnx"]), "--show"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 4 and len(lines) == 1 and "display" in lines[0], done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


# ---- silent partial results --------------------------------------------------------------------
def test_a_truncated_mp4_is_a_source_error_and_nothing_is_written(libby_video, tmp_path, kit, refusal, take_snapshot):
    cut = tmp_path / "cut.mp4"
    data = libby_video.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out.mp4"
    out.write_bytes(b"earlier")
    before = take_snapshot(tmp_path)
    line = refusal(cli.invoke(app, ["run", "-s", str(cut), "-e", str(kit["onnx"]), "-o", str(out), "--force"]), 5, tmp_path, before)
    assert "truncated" in line


def test_a_video_cut_short_reports_its_missing_frames(tmp_path):
    clip = tmp_path / "clip.avi"  # AVI declares its frame count up front: a cut file still opens
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    with open_source(str(clip)) as source:
        read = sum(1 for _ in source)
    if source.total is None:
        pytest.skip("this OpenCV build reports no frame count for a cut AVI")
    assert read < 20 and source.missing == source.total - read > 0


def test_zero_processed_frames_is_a_failure(kit, tmp_path, refusal, take_snapshot):
    before = take_snapshot(tmp_path)
    result = cli.invoke(app, ["run", "-s", str(kit["corrupt_folder"]), "-e", str(kit["onnx"])])
    text = result.output
    assert result.exit_code == 5 and "no frame" in text.splitlines()[-1] and "Traceback" not in text


def test_frames_of_another_size_are_kept_resized(tmp_path):
    sink = VideoSink(tmp_path / "mixed.mp4", 10)
    sink.write(np.zeros((24, 32, 3), np.uint8), None, FRAME)
    sink.write(np.zeros((48, 64, 3), np.uint8), None, FRAME)
    assert sink.close() == tmp_path / "mixed.mp4"
    assert sink.resized == 1
    assert cv2.VideoCapture(str(tmp_path / "mixed.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 2


# ---- NaN weights -------------------------------------------------------------------------------
def test_nan_weights_are_refused_at_load_and_in_parity(tmp_path, embedded):
    from segedge.models.checkpoint import load_checkpoint, save_checkpoint
    from segedge.models.registry import create_model

    model = create_model(embedded.model_name)
    model.load_state_dict(embedded.model.state_dict())
    with torch.no_grad():
        next(p for p in model.parameters()).fill_(float("nan"))
    path = save_checkpoint(tmp_path / "nan.pt", model, embedded.model_name, embedded.preprocess)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)
    result = cli.invoke(app, ["export", str(path), "-o", str(tmp_path / "nan.onnx")])
    assert result.exit_code == 2 and "NaN" in result.output and not (tmp_path / "nan.onnx").exists()
    logits = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(ExportError, match="NaN"):  # NaN argmax is 0 on both sides: agreement alone would pass
        compare_logits(np.full_like(logits, np.nan), np.full_like(logits, np.nan))


# ---- external data -----------------------------------------------------------------------------
def test_external_data_onnx_is_made_whole(kit, tmp_path):
    from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

    with self_contained(kit["external"]) as single:
        assert single != kit["external"]
        moved = tmp_path / "alone.onnx"
        shutil.copy(single, moved)  # no .data file beside it
    runner = OnnxRuntimeRunner(moved)
    assert runner.infer(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 3, 16, 16)
    out = tmp_path / "built" / "fp32.onnx"
    out.parent.mkdir()
    result = cli.invoke(app, ["build-engine", str(kit["external"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["fp32.onnx"]
    OnnxRuntimeRunner(out)  # readable on its own


# ---- foreign ONNX ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, words", [
    ("one_channel", "1 channels"), ("int64_input", "int64"), ("21_classes", "21 class channels"), ("classifier", "per-pixel"),
])
def test_foreign_onnx_is_refused_at_load_with_what_is_wrong(kit, variant, words, refusal, tmp_path, take_snapshot):
    before = take_snapshot(tmp_path)
    line = refusal(cli.invoke(app, ["run", "-s", str(kit["frames"]), "-e", str(kit[variant])]), 2, tmp_path, before)
    assert words in line


# ---- smaller -----------------------------------------------------------------------------------
def test_checkpoint_with_non_tensor_values_or_a_huge_input_is_a_checkpoint_error(tmp_path, embedded):
    state = {k: v for k, v in embedded.model.state_dict().items()}
    key = next(iter(state))
    for name, payload in (
        ("strings.pt", {"format": "segedge-checkpoint", "format_version": 1, "model": embedded.model_name,
                        "state_dict": {**state, key: "not a tensor"}, "preprocess": {}}),
        ("huge.pt", {"format": "segedge-checkpoint", "format_version": 1, "model": embedded.model_name,
                     "state_dict": state, "preprocess": {"height": 300000, "width": 200000}}),
    ):
        torch.save(payload, tmp_path / name)
        result = cli.invoke(app, ["export", str(tmp_path / name), "-o", str(tmp_path / "x.onnx")])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "x.onnx").exists()


def test_calibrating_an_int8_model_is_refused(kit, tmp_path):
    result = cli.invoke(app, ["calibrate", str(kit["int8"]), "-o", str(tmp_path / "q.onnx"), "--calib-data", str(kit["frames"])])
    assert result.exit_code == 2 and "already quantized" in result.output


def test_demo_checks_its_data_before_any_work(tmp_path):
    started = time.perf_counter()
    result = cli.invoke(app, ["demo", "--data", str(tmp_path / "absent"), "-o", str(tmp_path / "demo")])
    assert result.exit_code == 2 and "absent" in result.output
    assert not (tmp_path / "demo").exists()
    assert time.perf_counter() - started < 60  # generous: the export alone takes over 10 s


def test_a_missing_parent_folder_is_refused_the_same_way_everywhere(tmp_path, kit):
    missing = tmp_path / "no" / "such"
    for args in (
        ["export", "-o", str(missing / "m.onnx")],
        ["build-engine", str(kit["onnx"]), "-o", str(missing / "m.onnx")],
        ["run", "-s", str(kit["frames"]), "-e", str(kit["onnx"]), "-o", str(missing / "o.mp4")],
        ["run", "-s", str(kit["frames"]), "-e", str(kit["onnx"]), "--save-masks", str(missing / "masks")],
        ["report", "-c", str(kit["onnx"]), "-d", str(kit["frames"]), "-o", str(missing / "report")],
    ):
        result = cli.invoke(app, args)
        assert result.exit_code == 2 and "does not exist" in result.output, (args, result.output)
    assert not (tmp_path / "no").exists()


def test_usage_errors_are_one_line(one_line_error):
    line = one_line_error(cli.invoke(app, ["run", "--bogus"]))
    assert "--bogus" in line and cli.invoke(app, ["run", "--bogus"]).exit_code == 2


def _as_from_a_terminal() -> None:
    """In the child: SIGINT as a terminal delivers it. A test runner started in the background
    (``cmd &`` in a script) runs with SIGINT ignored, which its children inherit, and Python
    then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_run_exits_130_with_outputs_finalised(kit, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "o.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "segedge.cli.main", "run", "-s", str(kit["frames"]), "-e", str(kit["onnx"]), "--loop", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(p.name.endswith(".mp4") for p in tmp_path.iterdir()):
            time.sleep(0.2)
        time.sleep(2.0)  # frames flowing into the temporary video
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) > 0


def test_a_tampered_calibration_cache_says_so(kit, tmp_path):
    cache = tmp_path / "cache.json"
    args = ["calibrate", str(kit["onnx"]), "--calib-data", str(kit["frames"]), "--num-images", "3", "--cache", str(cache)]
    first = cli.invoke(app, [*args, "-o", str(tmp_path / "q1.onnx")])
    assert first.exit_code == 0, first.output
    payload = json.loads(cache.read_text())
    del payload["ranges"]["calibration_method"]
    cache.write_text(json.dumps(payload))
    tampered = cache.read_bytes()
    result = cli.invoke(app, [*args, "-o", str(tmp_path / "q2.onnx")])
    assert result.exit_code == 2 and "tampered" in result.output.splitlines()[-1]
    assert cache.read_bytes() == tampered and not (tmp_path / "q2.onnx").exists()


def test_a_sink_that_fails_during_setup_leaves_no_temporary_file(kit, tmp_path, refusal, take_snapshot):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        before = take_snapshot(tmp_path)
        args = ["run", "-s", str(kit["frames"]), "-e", str(kit["onnx"]), "-o", str(tmp_path / "o.mp4"),
                "--stats", str(tmp_path / "s.jsonl"), "--serve", str(port)]
        line = refusal(cli.invoke(app, args), 5, tmp_path, before)
    assert str(port) in line and sorted(p.name for p in tmp_path.iterdir()) == []


def test_ctrl_c_while_a_silent_stream_opens_stops_at_once(kit, tmp_path):
    import socket

    with socket.socket() as silent:  # accepts connections (kernel backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live.mjpg"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        process = subprocess.Popen(
            [sys.executable, "-m", "segedge.cli.main", "run", "-s", url, "-e", str(kit["onnx"])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
            preexec_fn=_as_from_a_terminal,
        )
        try:
            conn = None
            silent.settimeout(60)
            conn, _ = silent.accept()  # the stream is being opened now
            process.send_signal(signal.SIGINT)
            # OpenCV alone waits out its connection timeout (30 s) before Python sees the signal,
            # however often Ctrl-C is pressed; 20 s leaves room for a loaded CI machine and still
            # tells the two apart. A second Ctrl-C after 3 s, as a user would press it, covers a
            # first one that lands while the interpreter is still starting up on a loaded machine.
            try:
                output, _ = process.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGINT)
                output, _ = process.communicate(timeout=17)
        finally:
            if process.poll() is None:
                process.kill()
            if conn is not None:
                conn.close()
    assert process.returncode == 130 and "Traceback" not in output, output
