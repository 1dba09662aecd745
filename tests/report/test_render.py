"""report.json (versioned schema), report.md and the self-contained report.html, the last
rendered in headless Chromium."""

import base64
import copy
import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from segedge.errors import InputError
from segedge.report.drift import ARTICLE
from segedge.report.render import to_html, to_markdown, write_report
from segedge.report.schema import SCHEMA_VERSION, DriftReport, validate_report

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(small_report, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report(small_report, out)
    return out


def test_json_validates_and_round_trips(small_report, written):
    data = json.loads((written / "report.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 2
    validate_report(data)
    again = DriftReport.from_dict(data).to_dict()
    assert again == data
    # version 1 fields the demo and older readers use are still there
    for model in data["models"]:
        assert {"name", "backend", "precision", "pixel_accuracy", "miou", "iou_per_class", "agreement", "latency_ms", "size_mb", "is_reference"} <= set(model)
    # every worst-case picture the JSON names was written, as a PNG
    cases = [case for model in data["models"] for case in model["worst"]]
    assert cases
    for case in cases:
        assert (written / case["image"]).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    "break_it, field",
    [
        (lambda d: d.update(schema_version=1), "schema_version"),
        (lambda d: d["models"][1].pop("agreement"), "agreement"),
        (lambda d: d["models"][0].update(pixel_accuracy="88%"), "pixel_accuracy"),
        (lambda d: d["models"].reverse(), "reference"),
        (lambda d: d["models"][1]["speed"]["latency"]["8"].pop("p99"), "latency"),
        (lambda d: d["data"].update(labelled="yes"), "labelled"),
    ],
)
def test_invalid_json_is_refused_naming_the_field(written, break_it, field):
    data = json.loads((written / "report.json").read_text())
    broken = copy.deepcopy(data)
    break_it(broken)
    with pytest.raises(InputError, match=field):
        validate_report(broken)


def test_markdown_carries_the_tables_and_the_worst_cases(small_report, written):
    markdown = (written / "report.md").read_text()
    assert markdown == to_markdown(small_report)
    candidate = small_report.models[1]
    assert f"{100 * candidate.agreement:.3f}%" in markdown
    assert "## Speed" in markdown and "b8 p99 ms" in markdown and "## Video" in markdown
    int8 = small_report.models[2]
    assert len(int8.worst) == 2  # INT8 disagrees somewhere on each of the 4 images
    for case in int8.worst:
        assert f"]({case.image})" in markdown and case.name in markdown


def test_article_reference_is_printed_only_on_the_full_test_split(small_report):
    assert "88.28%" not in to_markdown(small_report)
    full = copy.copy(small_report)
    full.data = {**small_report.data, "article": {**ARTICLE, "reference_model": "segnet-dsc"}}
    text = to_markdown(full)
    measured = f"{100 * small_report.models[0].pixel_accuracy:.2f}%"
    assert "segnet 88.28%" in text and "segnet-dsc 86.96%" in text and measured in text


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)


def test_html_is_self_contained_with_png_images(small_report, written):
    page = (written / "report.html").read_text()
    sources = _img_sources(page)
    # metrics, confusion, latency, agreement, video plots and one picture per worst case
    assert len(sources) == 5 + sum(len(m.worst) for m in small_report.models)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_MAGIC)
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) is not None
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)  # nothing fetched from elsewhere


@pytest.mark.browser
def test_chromium_shows_the_table_and_the_images(small_report, written, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    url = (written / "report.html").resolve().as_uri()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    summary = re.search(r'<table class="summary">(.*?)</table>', dom, re.S)
    assert summary, dom[:500]
    for model in small_report.models:
        assert f"<td>{model.name}" in summary.group(1)
    sources = _img_sources(dom)
    assert len(sources) >= 5 and all(s.startswith("data:image/png;base64,") for s in sources)
    shot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,2400", url], capture_output=True, timeout=120)
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (2400, 1400)
    assert (image < 250).any(axis=2).mean() > 0.02  # not a blank page
    # the plots (coloured bars, heat maps) are drawn: the table alone is black on white and grey
    saturated = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1] > 100
    assert saturated.mean() > 0.005
