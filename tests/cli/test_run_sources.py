"""``segedge run`` with several sources (issue 26), as a user runs it: one output of each kind
per source, named by source and complete; a source cut short mid-run while the others go on;
outputs that would be an input or go through a planted link refused per source; GStreamer
pipelines, and the one line when OpenCV has no GStreamer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cv2
import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.data.sources import gstreamer_support

cli = CliRunner()
VIDEOS = ("davis_libby_854x480.mp4", "bikes_640x272.mp4", "cockatoo_1280x720.mp4")
NAMES = ("davis_libby_854x480", "bikes_640x272", "cockatoo_1280x720")


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def videos(shared_video):
    return [str(shared_video(name)) for name in VIDEOS]


def _sources(videos):
    return [arg for video in videos for arg in ("-s", video)]


def test_every_source_gets_its_own_outputs_named_by_source(tmp_path, tiny_onnx, videos):
    (tmp_path / "out").mkdir()
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), *_sources(videos), "-o", str(tmp_path / "out"),
                              "--stats", str(tmp_path / "stats" / "{name}.jsonl"), "--save-masks", str(tmp_path / "masks"),
                              "--max-frames", "12"])
    assert result.exit_code == 2 and "does not exist" in result.output  # a pattern's folder must exist
    assert not (tmp_path / "masks").exists() and not list((tmp_path / "out").iterdir())  # refused before anything was made
    (tmp_path / "stats").mkdir()
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), *_sources(videos), "-o", str(tmp_path / "out"),
                              "--stats", str(tmp_path / "stats" / "{name}.jsonl"), "--save-masks", str(tmp_path / "masks"),
                              "--max-frames", "12"])
    assert result.exit_code == 0, result.output
    for name, video in zip(NAMES, videos):
        mp4 = tmp_path / "out" / f"{name}.mp4"
        assert frame_count(mp4) == 12, name  # complete and playable
        source, written = cv2.VideoCapture(video), cv2.VideoCapture(str(mp4))
        assert written.get(cv2.CAP_PROP_FRAME_WIDTH) == source.get(cv2.CAP_PROP_FRAME_WIDTH)  # its own frames
        lines = [json.loads(line) for line in (tmp_path / "stats" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in lines] == list(range(12))
        assert len(list((tmp_path / "masks" / name).glob("*.png"))) == 12
    # a row per source and the aggregate
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == [*NAMES, "all"]
    assert "36 frames in" in result.output and "mean batch" in result.output


def test_a_sources_file_as_ultralytics_reads_it(tmp_path, tiny_onnx, videos):
    listing = tmp_path / "cams.streams"
    listing.write_text(f"# the yard\n{videos[1]}\n\n  {videos[1]}  \n")
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), "--sources", str(listing), "-o", str(tmp_path / "{name}.mp4"),
                              "--max-frames", "5"])
    assert result.exit_code == 0, result.output
    assert frame_count(tmp_path / "bikes_640x272.mp4") == 5 and frame_count(tmp_path / "bikes_640x272-2.mp4") == 5
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    result = cli.invoke(app, ["run", "--sources", str(tmp_path / "empty.txt")])
    assert result.exit_code == 2 and "lists no source" in result.output


def test_a_source_that_cannot_be_opened_does_not_stop_the_others(tmp_path, tiny_onnx, videos):
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), "-s", videos[1], "-s", str(tmp_path / "gone.mp4"),
                              "-o", str(tmp_path), "--max-frames", "5"])
    assert result.exit_code == 5  # a source failed; said at the end, after the others ran
    assert frame_count(tmp_path / "bikes_640x272.mp4") == 5
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 sources failed") and "gone" in last and "every output was finalised" in last


@pytest.mark.slow
def test_a_file_cut_mid_run_ends_its_source_and_the_others_go_on(tmp_path, libby_dir, videos):
    """A recording truncated while it is being read (a camera's file rotated away, a disk
    pulled): its source ends with the frames it had, its outputs are finalised and playable,
    and the two other sources run to the end."""
    frames = sorted((libby_dir / "frames").glob("*.jpg"))
    victim = tmp_path / "yard.avi"  # MJPG in AVI stays decodable up to a cut
    writer = cv2.VideoWriter(str(victim), cv2.VideoWriter_fourcc(*"MJPG"), 24, (854, 480))
    for i in range(240):
        writer.write(cv2.imread(str(frames[i % len(frames)])))
    writer.release()
    out, masks = tmp_path / "out", tmp_path / "masks"
    out.mkdir()
    command = [sys.executable, "-m", "segedge.cli.main", "run", "-s", str(victim), "-s", videos[1], "-s", videos[2],
               "-o", str(out), "--stats", str(out), "--save-masks", str(masks), "--max-frames", "150"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (masks / "yard" / "000010.png").exists() and process.poll() is None:
        time.sleep(0.01)
    size = victim.stat().st_size
    os.truncate(victim, size * 4 // 10)  # about frame 96 of 240: far ahead of the reader
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    yard = len((out / "yard.jsonl").read_text().splitlines())
    assert 10 < yard < 150 and frame_count(out / "yard.mp4") == yard and len(list((masks / "yard").glob("*.png"))) == yard
    assert "cut short" in output and "yard" in output and "could not be read (truncated or corrupt file)" in output
    for name in NAMES[1:]:
        assert frame_count(out / f"{name}.mp4") == 150 and len((out / f"{name}.jsonl").read_text().splitlines()) == 150


@pytest.mark.slow
def test_ctrl_c_finalises_every_sources_outputs(tmp_path, videos):
    import signal

    out, masks = tmp_path / "out", tmp_path / "masks"
    out.mkdir()
    command = [sys.executable, "-m", "segedge.cli.main", "run", *_sources(videos[:2]), "--loop", "-o", str(out), "--stats", str(out),
               "--save-masks", str(masks)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal delivers it
    deadline = time.time() + 300
    while time.time() < deadline and not all((masks / n).is_dir() and len(list((masks / n).glob("*.png"))) >= 20 for n in NAMES[:2]):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in output, output
    for name in NAMES[:2]:
        frames = frame_count(out / f"{name}.mp4")
        assert frames >= 20 and frames == len((out / f"{name}.jsonl").read_text().splitlines())


def test_one_file_for_several_sources_is_refused(tmp_path, videos, one_line_error):
    result = cli.invoke(app, ["run", *_sources(videos[:2]), "-o", str(tmp_path / "out.mp4")])
    line = one_line_error(result)
    assert result.exit_code == 2 and "names one file" in line and "{name}" in line
    result = cli.invoke(app, ["run", *_sources(videos[:2]), "-o", str(tmp_path / "{name}.mp4"), "--stats", str(tmp_path / "{name}.mp4")])
    assert result.exit_code == 2 and "writes too" in one_line_error(result)
    assert not list(tmp_path.iterdir())


def test_an_output_that_resolves_to_another_sources_input_is_refused(tmp_path, libby_video, shared_video, one_line_error):
    """``out/bikes_640x272.mp4`` planted as a link to the libby input: the run would overwrite
    the recording it reads, even with --force."""
    bikes = shared_video("bikes_640x272.mp4")
    folder = tmp_path / "in"
    folder.mkdir()
    copy = folder / "libby.mp4"
    copy.write_bytes(libby_video.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "bikes_640x272.mp4").symlink_to(copy)
    result = cli.invoke(app, ["run", "-s", str(copy), "-s", str(bikes), "-o", str(out), "--force"])
    assert result.exit_code == 2 and "is the input" in one_line_error(result)
    assert copy.read_bytes() == libby_video.read_bytes()


def test_a_planted_link_is_replaced_never_written_through(tmp_path, tiny_onnx, videos, one_line_error):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (out / "bikes_640x272.jsonl").symlink_to(target)  # planted where the run will write bikes' statistics
    argv = ["run", "-e", str(tiny_onnx), *_sources(videos[:2]), "--stats", str(out), "--max-frames", "3"]
    result = cli.invoke(app, argv)
    assert result.exit_code == 2 and "exists; pass --force" in one_line_error(result)
    result = cli.invoke(app, [*argv, "--force"])
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me" and not (out / "bikes_640x272.jsonl").is_symlink()
    assert len((out / "bikes_640x272.jsonl").read_text().splitlines()) == 3
    # a per-source mask folder planted as a link to another folder is refused before any work
    masks, victim = tmp_path / "masks", tmp_path / "victim"
    masks.mkdir()
    victim.mkdir()
    (masks / "bikes_640x272").symlink_to(victim)
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), *_sources(videos[:2]), "--save-masks", str(masks)])
    assert result.exit_code == 2 and "symbolic link" in one_line_error(result)
    assert not list(victim.iterdir()) and not (masks / "davis_libby_854x480").exists()


def test_options_of_one_source_are_refused_with_several(videos, libby_dir, one_line_error):
    result = cli.invoke(app, ["run", *_sources(videos[:2]), "--gt-masks", str(libby_dir / "masks")])
    assert result.exit_code == 2 and "--gt-masks" in one_line_error(result)
    result = cli.invoke(app, ["run", *_sources(videos[:2]), "--sequential"])
    assert result.exit_code == 2 and "--sequential" in one_line_error(result)
    result = cli.invoke(app, ["run"])
    assert result.exit_code == 2 and "--source" in one_line_error(result)


def test_each_source_has_its_own_drift_monitor(tmp_path, videos):
    result = cli.invoke(app, ["run", *_sources(videos[:2]), "--reference", "auto", "--reference-every", "5", "--max-frames", "10",
                              "--stats", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in NAMES[:2]:
        records = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert [r["drift"]["frame"] for r in records if "drift" in r] == [0, 5]  # a file: every due frame scored
        assert f"{name}: agreement with segnet-lite0.pt" in result.output  # the default model's checkpoint, its own reference


PIPELINE = "videotestsrc num-buffers=20 ! video/x-raw,width=320,height=240 ! videoconvert ! video/x-raw,format=BGR ! appsink"


@pytest.mark.skipif(gstreamer_support() is not None, reason="this OpenCV has GStreamer: the missing-GStreamer line cannot be shown")
def test_a_gstreamer_pipeline_without_gstreamer_is_one_line(tmp_path, videos, one_line_error):
    for argv in (["-s", PIPELINE], ["-s", videos[1], "-s", PIPELINE, "-o", str(tmp_path / "out"), "--save-masks", str(tmp_path / "masks")]):
        result = cli.invoke(app, ["run", *argv])
        line = one_line_error(result)
        assert result.exit_code == 4, line  # backend unavailable (README's exit-code table)
        assert "GStreamer pipeline" in line and "built without GStreamer" in line and "getBuildInformation" in line
    assert not list(tmp_path.iterdir())


def test_a_pipeline_without_appsink_is_refused(one_line_error):
    result = cli.invoke(app, ["run", "-s", "videotestsrc ! videoconvert"])
    assert result.exit_code in (2, 4)  # no appsink (2), or no GStreamer at all (4): both one line
    line = one_line_error(result)
    assert ("appsink" in line) if gstreamer_support() else ("GStreamer" in line)


@pytest.mark.skipif(gstreamer_support() is None, reason="OpenCV here is built without GStreamer (pip's opencv-python); Jetson's has it")
def test_a_videotestsrc_pipeline_is_a_source(tmp_path, tiny_onnx):
    result = cli.invoke(app, ["run", "-e", str(tiny_onnx), "-s", PIPELINE, "-s", PIPELINE, "-o", str(tmp_path), "--max-frames", "30"])
    assert result.exit_code in (0, 5), result.output
    assert frame_count(tmp_path / "videotestsrc.mp4") > 0 and frame_count(tmp_path / "videotestsrc-2.mp4") > 0
