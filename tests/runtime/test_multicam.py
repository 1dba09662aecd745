"""Several sources in one live loop (issue 26): frames batched into shared inference calls, each
source with its own complete outputs, one that dies while the others go on, files advancing
together, frames of different input sizes never in one batch, and ``Runner.segment`` on a
batch from several cameras."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from segedge.data.sources import FrameSource, open_source
from segedge.errors import InputError
from segedge.models.checkpoint import Checkpoint
from segedge.runtime.base import Runner
from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segedge.runtime.sinks import MaskSink, MjpegServer, StatsSink, VideoSink
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import LiveOptions, run_live

VIDEOS = ("davis_libby_854x480.mp4", "bikes_640x272.mp4", "cockatoo_1280x720.mp4")


class Recording(Runner):
    """A real runner that records the batch of every inference call (the loop under test
    decides the batches; the inference itself is the wrapped runner's)."""

    def __init__(self, inner: Runner):
        self.inner = inner
        self.backend, self.contract, self.artifact, self.max_batch = inner.backend, inner.contract, inner.artifact, inner.max_batch
        self.calls: list[tuple[int, ...]] = []  # batch shape of each call
        self._lock = threading.Lock()

    def _infer(self, batch, out):
        with self._lock:
            self.calls.append(batch.shape)
        return self.inner.infer(batch, out)


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def videos(shared_video):
    return [shared_video(name) for name in VIDEOS]


@pytest.fixture(scope="module")
def onnx_runner(native_onnx):
    return OnnxRuntimeRunner(native_onnx, threads=1, spin=False)


def test_each_source_gets_complete_playable_outputs_and_frames_are_batched(tmp_path, onnx_runner, videos):
    runner = Recording(onnx_runner)
    sources = [open_source(str(v)) for v in videos]
    sinks = [[VideoSink(tmp_path / f"{k}.mp4", s.fps), StatsSink(tmp_path / f"{k}.jsonl"), MaskSink(tmp_path / f"masks{k}")]
             for k, s in enumerate(sources)]
    delivered: dict[int, list[int]] = {0: [], 1: [], 2: []}
    stats = run_live(runner, sources, sinks, LiveOptions(max_frames=20, workers=2), names=["a", "b", "c"],
                     on_frame=lambda k, i, m: delivered[k].append(i))
    for source in sources:
        source.close()
    assert stats.names == ["a", "b", "c"] and stats.frames == 60
    for k, (source_stats, video) in enumerate(zip(stats.sources, videos)):
        assert source_stats.frames == 20 and source_stats.error is None
        assert delivered[k] == list(range(20))  # each source in its own capture order
        assert stats.sources[k].output == tmp_path / f"{k}.mp4" and frame_count(tmp_path / f"{k}.mp4") == 20
        width, height = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_WIDTH), cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_HEIGHT)
        written = cv2.VideoCapture(str(tmp_path / f"{k}.mp4"))
        assert (written.get(cv2.CAP_PROP_FRAME_WIDTH), written.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (width, height)  # its own frames
        lines = [json.loads(line) for line in (tmp_path / f"{k}.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in lines] == list(range(20)) and all(1 <= r["batch"] <= 3 for r in lines)
        masks = sorted((tmp_path / f"masks{k}").glob("*.png"))
        assert len(masks) == 20 and cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == (int(height), int(width))
    sizes = [shape[0] for shape in runner.calls]
    assert max(sizes) == 3 and sum(sizes) >= 60  # one call for three sources (frames read ahead may be inferred, not delivered)
    assert sum(n for n in sizes if n > 1) > sum(sizes) / 2  # most frames went through a shared call
    assert stats.batches == {n: sizes.count(n) for n in sorted(set(sizes))} and stats.mean_batch > 1.5
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_batched_masks_equal_one_source_at_a_time(onnx_runner, videos):
    """Splitting the batch back gives each source the masks it gets alone."""
    alone = {}
    for k, video in enumerate(videos):
        with open_source(str(video)) as source:
            masks = []
            run_live(onnx_runner, source, [], LiveOptions(max_frames=6), on_frame=lambda i, m: masks.append(m.copy()))
            alone[k] = masks
    together: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}
    sources = [open_source(str(v)) for v in videos]
    run_live(onnx_runner, sources, None, LiveOptions(max_frames=6, workers=2), on_frame=lambda k, i, m: together[k].append(m.copy()))
    for k in range(3):
        assert len(together[k]) == 6
        for a, b in zip(alone[k], together[k]):
            assert (a == b).mean() > 0.999  # the same frames; a batched convolution may round differently in the last bit


def test_the_batch_never_exceeds_max_batch_or_the_artifacts_batch(tmp_path, tiny_checkpoint, tiny_onnx_writer, videos):
    runner = Recording(OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "tiny.onnx"), threads=1))
    run_live(runner, [open_source(str(v)) for v in videos], None, LiveOptions(max_frames=10, max_batch=2))
    assert max(s[0] for s in runner.calls) == 2
    fixed = Recording(OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "tiny-b1.onnx", batch=1), threads=1))
    assert fixed.max_batch == 1
    stats = run_live(fixed, [open_source(str(v)) for v in videos], None, LiveOptions(max_frames=10))
    assert {s[0] for s in fixed.calls} == {1} and stats.frames == 30


class Frames(FrameSource):
    """A file-like source of fixed frames (every frame is delivered)."""

    live = False

    def __init__(self, frames, description="frames"):
        self.frames, self.index, self.description, self.fps = frames, 0, description, 10.0

    def read_into(self, buffer=None):
        if self.index >= len(self.frames):
            return None
        self.index += 1
        return self.frames[self.index - 1].copy()


def test_only_frames_of_one_input_size_share_a_batch(tiny_checkpoint):
    """A model fed at each frame's aspect-preserving size: a 16:9 and a 4:3 camera need
    different input sizes, so their frames are never stacked together; two 16:9 cameras are."""
    preprocess = dataclasses.replace(tiny_checkpoint.preprocess, resize="aspect")
    runner = Recording(TorchRunner(Checkpoint(tiny_checkpoint.model, "tiny", preprocess, tiny_checkpoint.classes)))
    rng = np.random.default_rng(0)
    wide = [rng.integers(0, 256, (90, 160, 3), np.uint8) for _ in range(8)]
    square = [rng.integers(0, 256, (120, 160, 3), np.uint8) for _ in range(8)]
    stats = run_live(runner, [Frames(wide), Frames(square), Frames(wide)], None, LiveOptions(workers=1))
    assert [s.frames for s in stats.sources] == [8, 8, 8]
    assert {shape[2:] for shape in runner.calls} == {(16, 28), (16, 21)}
    assert max(shape[0] for shape in runner.calls if shape[2:] == (16, 28)) == 2  # the two 16:9 sources together
    assert max(shape[0] for shape in runner.calls if shape[2:] == (16, 21)) == 1  # the 4:3 one always alone


class DyingCamera(FrameSource):
    """A 'camera' replaying a real video that stops after ``die_after`` frames and cannot be
    reopened, as a camera unplugged mid-run."""

    live = True

    def __init__(self, path, die_after: int):
        self.inner = open_source(str(path))
        self.description, self.fps, self.die_after, self.reads, self.reopens = "dying camera", 24.0, die_after, 0, 0

    def read_into(self, buffer=None):
        if self.reads >= self.die_after:
            return None
        self.reads += 1
        time.sleep(0.02)  # a 50 FPS camera
        return self.inner.read_into(buffer)

    def reopen(self):
        self.reopens += 1
        return False


def test_a_camera_that_dies_does_not_stop_the_others(tmp_path, onnx_runner, videos):
    camera = DyingCamera(videos[0], die_after=6)
    sources = [camera, open_source(str(videos[1])), open_source(str(videos[2]))]
    sinks = [[VideoSink(tmp_path / f"{k}.mp4", 24)] for k in range(3)]
    options = LiveOptions(max_frames=40, reconnect_attempts=2, reconnect_delay=0.01, loop=True)
    stats = run_live(onnx_runner, sources, sinks, options, names=["cam", "bikes", "bird"])
    assert camera.reopens == 2
    assert stats.sources[0].error is not None and "could not be reopened" in stats.sources[0].error
    assert stats.failed == [f"cam: {stats.sources[0].error}"]
    assert 1 <= stats.sources[0].frames <= 6 and frame_count(tmp_path / "0.mp4") == stats.sources[0].frames  # its file finalised
    for k in (1, 2):  # the others ran to their end
        assert stats.sources[k].error is None and stats.sources[k].frames == 40 and frame_count(tmp_path / f"{k}.mp4") == 40


class SlowFile(Frames):
    """A file whose frames take 20 ms each to decode (a costly codec)."""

    def read_into(self, buffer=None):
        time.sleep(0.02)
        return super().read_into(buffer)


def test_files_advance_together(tmp_path, tiny_checkpoint, tiny_onnx_writer):
    """A file slow to decode and two fast ones: no file runs ahead of the slowest by more than
    the frames in flight (the fast ones would finish 200 frames while the slow one reads 30),
    and when the slow one ends the others go on at their own pace."""
    runner = OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "tiny.onnx"), threads=1)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(8)]
    counts = {0: 0, 1: 0, 2: 0}
    at_end = {}

    def seen(k, index, mask):
        counts[k] += 1
        if k == 0 and counts[0] == 30:
            at_end.update(counts)

    sources = [SlowFile(frames * 4), Frames(frames * 25), Frames(frames * 25)]
    stats = run_live(runner, sources, None, LiveOptions(workers=2), on_frame=seen)
    assert [s.frames for s in stats.sources] == [32, 200, 200]
    slots = LiveOptions().slots
    assert all(at_end[k] <= 30 + slots + 2 for k in (1, 2)), at_end


class Camera(Frames):
    """A live source delivering a frame every 5 ms."""

    live = True

    def read_into(self, buffer=None):
        time.sleep(0.005)
        return super().read_into(buffer)


def test_a_camera_is_never_held_back_by_a_slow_file(tmp_path, tiny_checkpoint, tiny_onnx_writer):
    runner = OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "tiny.onnx"), threads=1)
    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), np.uint8) for i in range(4)]
    counts = {0: 0, 1: 0}
    at_end = {}

    def seen(k, index, mask):
        counts[k] += 1
        if k == 0 and counts[0] == 20:
            at_end.update(counts)

    class SlowerFile(Frames):
        def read_into(self, buffer=None):
            time.sleep(0.05)
            return super().read_into(buffer)

    stats = run_live(runner, [SlowerFile(frames * 5), Camera(frames * 100)], None, LiveOptions(reconnect_attempts=0), on_frame=seen)
    assert stats.sources[0].frames == 20 and at_end[1] > 60, at_end  # 1 s of a 200 FPS camera against 20 file frames


def test_the_serve_page_shows_every_source(onnx_runner, videos):
    names = ["libby", "bikes", "bird"]
    server = MjpegServer(0, "127.0.0.1", title="model on 3 sources", sources=names)
    host, port = server.address
    got = {}

    def client():
        with urllib.request.urlopen(f"http://{host}:{port}/stream/2", timeout=60) as stream:
            data = b""
            while data.count(b"\xff\xd9") < 1:
                data += stream.read(4096)
        start = data.index(b"\xff\xd8")
        got["frame"] = cv2.imdecode(np.frombuffer(data[start: data.index(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)
        got["page"] = urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read().decode()
        got["stats"] = json.loads(urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=10).read())

    thread = threading.Thread(target=client)
    thread.start()
    sources = [open_source(str(v)) for v in videos]
    slow = lambda k, i, m: time.sleep(0.01) if "stats" not in got else None  # noqa: E731 (until the client has its answers)
    run_live(onnx_runner, sources, [[server.sink(k)] for k in range(3)], LiveOptions(loop=True, max_frames=300), on_frame=slow)
    thread.join(timeout=60)
    assert got["frame"].shape == (720, 1280, 3)  # source 2's own stream
    assert 'id="grid"' in got["page"] and "model on 3 sources" in got["page"]
    assert [s["name"] for s in got["stats"]["sources"]] == names
    assert all(s["latest"].get("frame") is not None and s["latest"]["batch"] >= 1 for s in got["stats"]["sources"])
    with pytest.raises(OSError):  # every source's sink closed: the server stopped
        urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=5)


def test_bad_calls_are_refused(onnx_runner, videos):
    with pytest.raises(InputError, match="one per source"):
        run_live(onnx_runner, [open_source(str(videos[1]))] * 2, [[]], LiveOptions())
    with pytest.raises(InputError, match="sequential"):
        run_live(onnx_runner, [open_source(str(videos[1]))] * 2, None, LiveOptions(pipelined=False))


def test_segment_a_batch_from_several_cameras(onnx_runner, videos):
    frames = []
    for video in videos + videos[:1]:
        with open_source(str(video)) as source:
            frames.append(source.read_into())
    runner = Recording(onnx_runner)
    results = runner.segment(frames)
    assert [shape[0] for shape in runner.calls] == [4]  # one call: the model's input size is fixed
    for image, (class_map, overlay) in zip(frames, results):
        alone, _ = onnx_runner.segment(image)
        assert class_map.shape == image.shape[:2] and overlay.shape == image.shape and (class_map == alone).mean() > 0.999
    assert np.array_equal(results[0][0], results[3][0])  # the same frame twice, the same answer
    with pytest.raises(InputError, match="frame 1"):
        onnx_runner.segment([frames[0], np.zeros((4, 4), np.uint8)])


def test_segment_splits_a_batch_by_input_size_and_max_batch(tiny_checkpoint, tmp_path, tiny_onnx_writer):
    preprocess = dataclasses.replace(tiny_checkpoint.preprocess, resize="aspect")
    runner = Recording(TorchRunner(Checkpoint(tiny_checkpoint.model, "tiny", preprocess, tiny_checkpoint.classes)))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, shape, np.uint8) for shape in ((90, 160, 3), (120, 160, 3), (90, 160, 3))]
    results = runner.segment(frames)
    assert sorted(s[0] for s in runner.calls) == [1, 2] and [r[0].shape for r in results] == [(90, 160), (120, 160), (90, 160)]
    fixed = Recording(OnnxRuntimeRunner(tiny_onnx_writer(tiny_checkpoint, tmp_path / "b1.onnx", batch=1)))
    assert len(fixed.segment(frames)) == 3 and [s[0] for s in fixed.calls] == [1, 1, 1]


def test_each_sources_monitor_names_its_alert_panels(tmp_path, tiny_checkpoint):
    from segedge.report.monitor import DriftMonitor

    reference = TorchRunner(tiny_checkpoint)
    monitor = DriftMonitor(reference, every=1, window=1, alert_below=100.0, alert_dir=tmp_path, wait=True, name="yard")
    monitor.start(reference)
    batch = reference.preprocess(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8))
    logits = -reference.infer(batch)  # a candidate that disagrees everywhere
    monitor.offer(0, batch, logits)
    summary = monitor.close()
    assert summary.alerts and summary.alerts[0].panel == tmp_path / "drift-alert-yard-000000.png"
    assert cv2.imread(str(summary.alerts[0].panel)) is not None
