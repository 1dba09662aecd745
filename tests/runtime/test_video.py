"""The live loop on real video: every frame processed, output playable, sources that fail."""

import cv2
import numpy as np
import pytest

from segedge.data.sources import open_source
from segedge.errors import SourceError
from segedge.runtime.torch_runner import TorchRunner
from segedge.runtime.video import run_live


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


def test_every_frame_of_a_real_video_is_segmented_and_written(tmp_path, runner, libby_video):
    masks = []
    with open_source(str(libby_video)) as source:
        stats = run_live(runner, source, output=tmp_path / "out.mp4", max_frames=12, on_frame=lambda i, m: masks.append(m))
    assert stats.frames == 12 and stats.output == tmp_path / "out.mp4"
    assert frame_count(stats.output) == 12
    capture = cv2.VideoCapture(str(stats.output))
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 854, 3)
    assert len(masks) == 12 and masks[0].shape == (128, 128)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


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
        stats = run_live(runner, source, output=tmp_path / "out.mp4")
    assert 5 <= stats.frames < 20
    assert stats.output is not None and frame_count(stats.output) == stats.frames


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
        stats = run_live(runner, source, output=tmp_path / "out.mp4", on_frame=stop)
    assert stats.interrupted and frame_count(tmp_path / "out.mp4") == 4


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
