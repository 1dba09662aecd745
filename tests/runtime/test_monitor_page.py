"""The live page of ``run --serve``: made for people (rounded figures, speed and agreement plots
drawn in a real headless browser), the source name shown as text, URL credentials never shown."""

import json
import re
import shutil
import subprocess
import urllib.request

import cv2
import numpy as np
import pytest

from segedge.data.sources import redact_url
from segedge.runtime.sinks import MjpegServer

HOSTILE = "model.onnx (onnxruntime int8) on video <img src=x onerror=alert(1)>.mp4 from rtsp://admin:hunter2@cam.local/live"


@pytest.fixture
def server():
    """A page with 40 frames and 20 scored frames fed through the sink interface."""
    server = MjpegServer(0, "127.0.0.1", title=HOSTILE, monitor_window=5)
    server.SAMPLE_S = 0.0  # one speed sample per frame
    frame, mask = np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.uint8)
    for i in range(40):
        server.write(frame, mask, {"frame": i, "infer_ms": 20.123456789, "latency_ms": 41.987654321 + i % 3, "fps": 29.87654321 - i % 5,
                                   "class_fraction": [0.1, 0.7, 0.2]})
        if i % 2 == 0:
            agreement = 0.9 + 0.004 * (i % 7)
            server.drift({"frame": i, "agreement": agreement, "running_agreement": agreement - 0.001,
                          "iou": {"pet": 0.81234567, "background": 0.95, "border": 0.7}, "logits_error": {"max": 1.23456789, "mean": 0.1, "p99": 0.5},
                          "reference_ms": 30.0})
    yield server
    server.close()


def _url(server, path="/"):
    host, port = server.address
    return f"http://{host}:{port}{path}"


def test_redact_url_removes_credentials_only():
    assert redact_url("stream rtsp://admin:p@ss@cam:554/live?x=1") == "stream rtsp://cam:554/live?x=1"
    assert redact_url("video /data/a@b.mp4 and http://host/x") == "video /data/a@b.mp4 and http://host/x"


def test_page_escapes_the_source_and_stats_are_rounded(server):
    page = urllib.request.urlopen(_url(server), timeout=10).read().decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.mp4" in page
    assert "hunter2" not in page and "admin" not in page and "rtsp://cam.local/live" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loaded from elsewhere
    stats = json.loads(urllib.request.urlopen(_url(server, "/stats"), timeout=10).read())
    assert stats["latest"]["infer_ms"] == 20.12 and stats["monitor"] is True and stats["window"] == 5
    assert len(stats["history"]) == 40 and len(stats["drift"]) == 20
    assert stats["drift"][-1]["iou"]["pet"] == 81.23 and stats["drift"][-1]["logits_error_max"] == 1.2346


@pytest.mark.browser
def test_chromium_draws_the_plots_and_shows_the_source_as_text(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--timeout=8000"]  # the MJPEG stream never finishes loading: dump after 8 s
    dom = subprocess.run([*flags, "--dump-dom", _url(server)], capture_output=True, text=True, timeout=120).stdout
    assert 'id="perf"' in dom, dom[:500]
    for name, count in (("fps", 40), ("latency", 40), ("agreement", 20), ("running", 20)):
        line = re.search(rf'<polyline points="([^"]*)"[^>]*class="{name}"', dom)
        assert line, f"no {name} line in {dom[:2000]}"
        assert len(line.group(1).split()) == count
    # rounded figures: the last frame's, and the running agreement of the last scored frame
    assert re.search(r'id="fps">25\.9<', dom) and re.search(r'id="latency">42\.0<', dom) and re.search(r'id="infer">20\.1<', dom)
    assert re.search(r'id="agreement">91\.1 %<', dom)
    assert re.search(r"<td>pet</td><td>81\.23</td>", dom)
    # the hostile file name is text, not an element; the stream is the only image
    assert len(re.findall(r"<img\b", dom)) == 1 and "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "hunter2" not in dom
    shot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,900", _url(server)], capture_output=True, timeout=120)
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None
    green = (np.abs(image.astype(int) - (0x84, 0xC7, 0x81)).sum(axis=2) < 40).sum()  # the agreement line, #81c784
    blue = (np.abs(image.astype(int) - (0xF7, 0xC3, 0x4F)).sum(axis=2) < 40).sum()  # the FPS line, #4fc3f7
    assert green > 100 and blue > 50
