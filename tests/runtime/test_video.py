"""The live loop on real video: every frame processed, outputs finalised on every exit, live
sources that lag or die, the MJPEG endpoint, and the statistics it reports."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

from segedge.data.sources import FrameSource, open_source
from segedge.errors import SourceError
from segedge.runtime.postprocess import GroundTruth, Postprocessor
from segedge.runtime.sinks import MjpegServer, StatsSink, VideoSink
from segedge.runtime.stats import LatencyHistogram
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def runner(embedded):
    return TorchRunner(embedded)


class FlakyLiveSource(FrameSource):
    """A 'camera' replaying a real video that dies after ``die_after`` frames and never
    comes back (reopen fails), as a camera unplugged mid-stream does."""

    live = True

    def __init__(self, path, die_after: int):
        self.inner = open_source(str(path))
        self.description, self.fps, self.die_after, self.reads, self.reopens = "flaky camera", 24.0, die_after, 0, 0

    def read_into(self, buffer=None):
        if self.reads >= self.die_after:
            return None
        self.reads += 1
        return self.inner.read_into(buffer)

    def reopen(self):
        self.reopens += 1
        return False


@pytest.mark.parametrize("pipelined", [True, False])
def test_every_frame_of_a_real_video_is_segmented_and_written(tmp_path, runner, libby_video, pipelined):
    masks = []
    with open_source(str(libby_video)) as source:
        sink = VideoSink(tmp_path / "out.mp4", source.fps)
        options = LiveOptions(max_frames=12, pipelined=pipelined)
        stats = run_live(runner, source, [sink], options, on_frame=lambda i, m: masks.append((i, m.copy())))
    assert stats.frames == 12 and stats.output == tmp_path / "out.mp4"
    assert frame_count(stats.output) == 12
    assert [i for i, _ in masks] == list(range(12))  # in order, none dropped from a file
    assert masks[0][1].shape == (128, 128)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("workers", [1, 3])
def test_pipelined_and_sequential_loops_give_the_same_masks_in_order(runner, libby_video, workers):
    results = {}
    for pipelined in (True, False):
        masks = []
        options = LiveOptions(max_frames=12, pipelined=pipelined, workers=workers, smooth=0.5)
        with open_source(str(libby_video)) as source:
            run_live(runner, source, [], options, on_frame=lambda i, m: masks.append((i, m.copy())))
        results[pipelined] = masks
    assert [i for i, _ in results[True]] == list(range(12))  # parallel workers, delivery still in order
    # temporal smoothing depends on order: equal masks prove frames met the smoother in order
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(results[True], results[False]))


def test_a_truncated_video_ends_cleanly_with_a_playable_file(tmp_path, runner, libby_dir):
    # MJPG in AVI stays decodable up to the cut (an MP4 loses its index and does not open).
    frames = sorted((libby_dir / "frames").glob("*.jpg"))[:20]
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 24, (854, 480))
    for path in frames:
        writer.write(cv2.imread(str(path)))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with open_source(str(tmp_path / "cut.avi")) as source:
        stats = run_live(runner, source, [VideoSink(tmp_path / "out.mp4", 24)])
    assert 5 <= stats.frames < 20
    assert stats.output is not None and frame_count(stats.output) == stats.frames


def test_a_camera_that_dies_is_retried_then_reported_and_the_file_is_playable(tmp_path, runner, libby_video):
    source = FlakyLiveSource(libby_video, die_after=8)
    options = LiveOptions(reconnect_attempts=3, reconnect_delay=0.01)
    stats = run_live(runner, source, [VideoSink(tmp_path / "out.mp4", 24)], options)
    assert source.reopens == 3
    assert stats.error is not None and "could not be reopened" in stats.error and "3 attempts" in stats.error
    assert 1 <= stats.frames <= 8 and frame_count(tmp_path / "out.mp4") == stats.frames


def test_a_live_source_faster_than_the_model_drops_stale_frames(runner, libby_video):
    class FastCamera(FrameSource):
        live, description, fps = True, "fast camera", 1000.0

        def __init__(self):
            self.frames = list(open_source(str(libby_video)))
            self.index = 0

        def read_into(self, buffer=None):
            if self.index >= 300:
                return None
            frame = self.frames[self.index % len(self.frames)]
            self.index += 1
            time.sleep(0.001)  # a 1000 FPS camera
            return frame.copy()

    delivered = []
    stats = run_live(runner, FastCamera(), [], LiveOptions(reconnect_attempts=0), on_frame=lambda i, m: delivered.append(i))
    assert stats.dropped > 0 and stats.frames + stats.dropped <= 300
    assert delivered == sorted(delivered) and delivered[-1] - delivered[0] >= len(delivered)  # gaps: frames skipped


def test_image_folders_skip_corrupt_frames_and_count_them(tmp_path, runner, libby_dir):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("00000.jpg", "00001.jpg"):
        (folder / name).write_bytes((libby_dir / "frames" / name).read_bytes())
    (folder / "00002.jpg").write_bytes(b"\xff\xd8\xff not really")
    with open_source(str(folder)) as source:
        stats = run_live(runner, source)
    assert stats.frames == 2 and stats.skipped == 1


def test_interrupt_still_finalises_the_video(tmp_path, runner, libby_video):
    def stop(index, mask):
        if index == 3:
            raise KeyboardInterrupt

    with open_source(str(libby_video)) as source:
        stats = run_live(runner, source, [VideoSink(tmp_path / "out.mp4", 24)], LiveOptions(pipelined=False), on_frame=stop)
    assert stats.interrupted and stats.frames == 4 and frame_count(tmp_path / "out.mp4") == 4


@pytest.mark.slow
def test_sigint_to_the_cli_finalises_a_playable_file(tmp_path, libby_video):
    out, stats_file = tmp_path / "out.mp4", tmp_path / "stats.jsonl"
    command = [sys.executable, "-m", "segedge.cli.main", "run", "-s", str(libby_video), "--loop", "-o", str(out), "--stats", str(stats_file)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal delivers it, even under `cmd &`
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not stats_file.exists() or len(stats_file.read_text().splitlines()) < 30):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    # Ctrl-C stops a live run with the summary printed and every output finalised, and exit
    # code 130 like every other command (issue 15: a script must see that it was interrupted)
    assert process.returncode == 130 and b"interrupted" in stdout
    frames = frame_count(out)
    assert frames >= 30 and frames == len(stats_file.read_text().splitlines())


def test_mjpeg_endpoint_serves_decodable_jpeg_frames(runner, libby_video):
    server = MjpegServer(0, "127.0.0.1", title="test")
    host, port = server.address
    received = {}

    def client():
        with urllib.request.urlopen(f"http://{host}:{port}/stream", timeout=30) as stream:
            data = b""
            while data.count(b"\xff\xd9") < 2:  # two complete JPEGs
                data += stream.read(4096)
        start = data.index(b"\xff\xd8")
        received["frame"] = cv2.imdecode(np.frombuffer(data[start : data.index(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)
        received["page"] = urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read().decode()
        received["stats"] = urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=10).read().decode()

    import threading

    thread = threading.Thread(target=client)
    thread.start()
    with open_source(str(libby_video)) as source:
        run_live(runner, source, [server], LiveOptions(loop=True, max_frames=200), on_frame=lambda i, m: time.sleep(0.01) if "frame" not in received else None)
    thread.join(timeout=30)
    assert received["frame"] is not None and received["frame"].shape == (480, 854, 3)
    assert '<img src="/stream"' in received["page"] and '"infer_ms"' in received["stats"]


def test_stats_sink_writes_one_json_line_per_frame(tmp_path, runner, libby_video):
    import json

    with open_source(str(libby_video)) as source:
        run_live(runner, source, [StatsSink(tmp_path / "s.jsonl")], LiveOptions(max_frames=5))
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(5))
    assert all(abs(sum(r["class_fraction"]) - 1) < 1e-3 and r["infer_ms"] > 0 for r in lines)


def test_pet_iou_against_ground_truth_masks(tmp_path):
    folder = tmp_path / "gt"
    folder.mkdir()
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 255  # 4 object pixels
    cv2.imwrite(str(folder / "00000.png"), truth)
    prediction = np.ones((4, 4), np.uint8)  # background everywhere
    prediction[:2, :1] = 0  # 2 pet pixels, both inside the object
    prediction[3, 3] = 0  # 1 pet pixel outside
    gt = GroundTruth(folder)
    assert gt.iou(0, prediction) == pytest.approx(2 / 5)
    assert np.isnan(gt.iou(1, prediction))  # no mask for that frame


def test_smoothing_reduces_flicker_on_noisy_logits():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 32, 32)).astype(np.float32)
    flicker = {}
    for smooth in (0.0, 0.8):
        post = Postprocessor(3, 32, 32, smooth)
        values = []
        for _ in range(30):
            post(base + rng.normal(scale=1.0, size=base.shape).astype(np.float32))
            if post.flicker is not None:
                values.append(post.flicker)
        flicker[smooth] = np.mean(values)
    assert flicker[0.8] < 0.5 * flicker[0.0]


def test_latency_histogram_percentiles_are_within_their_bin_width():
    values = np.random.default_rng(1).lognormal(mean=3.0, sigma=0.7, size=20_000)
    hist = LatencyHistogram()
    for v in values:
        hist.add(float(v))
    for q in (50, 90, 99):
        assert hist.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.015)


def test_outline_mode_colours_only_boundaries():
    from segedge.runtime.overlay import Overlay

    frame = np.full((20, 20, 3), 100, np.uint8)
    mask = np.ones((20, 20), np.uint8)
    mask[5:15, 5:15] = 0  # a pet square
    Overlay(alpha=1.0, outline=True).draw(frame, mask)
    coloured = (frame != 100).any(axis=2)
    assert coloured[5, 10] and coloured[14, 10] and not coloured[10, 10] and not coloured[0, 0]


@pytest.mark.parametrize("spec", ["/no/such/video.mp4", "/no/such/*.jpg"])
def test_missing_sources_raise_source_error(spec):
    with pytest.raises(SourceError):
        open_source(spec)


def test_overlay_colours_only_drawn_classes():
    from segedge.runtime.overlay import Overlay

    frame = np.full((4, 6, 3), 100, np.uint8)
    mask = np.array([[0, 1], [2, 1]], np.uint8)  # pet | background / border | background
    Overlay(alpha=1.0).draw(frame, mask)
    assert tuple(frame[0, 0]) == (0, 140, 255)  # pet, full opacity
    assert tuple(frame[0, 5]) == (100, 100, 100)  # background untouched
    assert tuple(frame[3, 0]) == (0, 255, 255)  # border
    only_pet = np.full((4, 6, 3), 100, np.uint8)
    Overlay(alpha=1.0, classes=[0]).draw(only_pet, mask)
    assert tuple(only_pet[3, 0]) == (100, 100, 100)


def test_single_threaded_decoding_gives_ffmpegs_frames(libby_video):
    # the loop decodes with one FFmpeg thread (less CPU beside the inference workers):
    # the frames must be those of FFmpeg's default frame-threaded decoder
    with open_source(str(libby_video), decode_threads=1) as one, open_source(str(libby_video), decode_threads=0) as default:
        assert one.capture.get(cv2.CAP_PROP_N_THREADS) == 1
        frames_one, frames_default = list(one), list(default)
    assert len(frames_one) == len(frames_default) == 49
    assert all(np.array_equal(a, b) for a, b in zip(frames_one, frames_default))
