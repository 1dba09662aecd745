"""Names of the sources of a multi-source run: safe as file names, unique, never a credential;
and which specifications are GStreamer pipelines."""

from segedge.data.sources import is_gstreamer_pipeline, read_sources_file, source_names


def test_names_are_unique_safe_file_names_without_credentials(tmp_path):
    (tmp_path / "frames").mkdir()
    specs = ["0", "/data/yard.mp4", "/other/yard.mp4", "rtsp://admin:hunter2@10.0.0.5:554/live/ch1?token=x",
             "nvarguscamerasrc sensor-id=0 ! nvvidconv ! appsink", str(tmp_path / "frames"), "clips/*.jpg", "..", "/", "../../etc/passwd"]
    names = source_names(specs)
    assert names[:7] == ["camera0", "yard", "yard-2", "10.0.0.5_554_live_ch1", "nvarguscamerasrc", "frames", "clips"]
    assert len(set(names)) == len(names)
    for name in names:
        assert name and not name.startswith(".") and "/" not in name and "hunter2" not in name and "admin" not in name


def test_a_sources_file_skips_blanks_and_comments(tmp_path):
    listing = tmp_path / "list.streams"
    listing.write_text("# cameras of the yard\n0\n\n   rtsp://cam/live   \n#rtsp://old/cam\n")
    assert read_sources_file(listing) == ["0", "rtsp://cam/live"]


def test_gstreamer_pipelines_are_told_from_paths_and_urls(tmp_path):
    assert is_gstreamer_pipeline("videotestsrc ! videoconvert ! appsink")
    assert is_gstreamer_pipeline("rtspsrc location=rtsp://cam/live ! rtph264depay ! nvv4l2decoder ! nvvidconv ! appsink")
    assert not is_gstreamer_pipeline("rtsp://cam/live!x")
    odd = tmp_path / "a ! b.mp4"
    odd.write_bytes(b"")
    assert not is_gstreamer_pipeline(str(odd))  # an existing file is a file, whatever its name
