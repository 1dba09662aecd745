"""The one door for writes (``segedge._io``), issue 24 items 7 and 11: a folder replaced whole
never disappears, a pair is published manifest last, a killed run's temporaries are removed by
the next run, and the writers that bypassed the door (download, serve, demo, sinks) use it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from segedge._io import (
    atomic_pair, check_output, create_exclusive, make_private_directory, open_resumable, private_directory,
    replace_directory, staged_directory, sweep_stale,
)
from segedge.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_folder_replaced_whole_never_disappears(tmp_path):
    """The old replace_directory renamed the old folder aside, then the new one in: between the two
    renames the report folder did not exist (a reader polling it from another process saw that)."""
    final = tmp_path / "report"
    final.mkdir()
    (final / "report.json").write_text("0")
    poller = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        f"path = {str(final)!r}\n"
        "misses = 0\nend = time.monotonic() + 1.5\n"
        "while time.monotonic() < end:\n"
        "    misses += not os.path.isdir(path)\n"
        "print(misses)\n"
    )], stdout=subprocess.PIPE, text=True)
    time.sleep(0.2)
    end = time.monotonic() + 1.0
    replaced = 0
    while time.monotonic() < end:
        with staged_directory(final) as staged:
            (staged / "report.json").write_text(str(replaced))
        replaced += 1
    misses = int(poller.communicate(timeout=30)[0])
    assert replaced > 50 and misses == 0, f"{final} was missing {misses} times during {replaced} replacements"
    assert (final / "report.json").read_text() == str(replaced - 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no old or staged folder left


def test_an_exclusive_folder_publish_refuses_an_existing_one(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "keep").write_text("earlier")
    with pytest.raises(InputError, match="exists"):
        with staged_directory(final, overwrite=False) as staged:
            (staged / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["keep"] and len(list(tmp_path.iterdir())) == 1
    staged = tmp_path / "staged"
    staged.mkdir()
    replace_directory(staged, tmp_path / "fresh", overwrite=False)
    assert (tmp_path / "fresh").is_dir() and not staged.exists()


def _write_pair(payload: Path, manifest: Path, data: bytes, overwrite: bool = True) -> None:
    with atomic_pair(payload, manifest, overwrite=overwrite) as (payload_tmp, manifest_tmp):
        payload_tmp.write_bytes(data)
        manifest_tmp.write_text(hashlib.sha256(data).hexdigest())


def test_a_pair_is_published_payload_first_and_manifest_last(tmp_path):
    payload, manifest = tmp_path / "m.engine", tmp_path / "m.engine.json"
    _write_pair(payload, manifest, b"first")
    assert manifest.read_text() == hashlib.sha256(payload.read_bytes()).hexdigest()
    with pytest.raises(RuntimeError):  # a body that fails publishes nothing
        with atomic_pair(payload, manifest) as (payload_tmp, manifest_tmp):
            payload_tmp.write_bytes(b"second")
            raise RuntimeError("build failed")
    assert payload.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]
    manifest.unlink()  # without --force, an existing manifest refuses the pair and the payload is taken back
    (tmp_path / "m.engine.json").write_text("someone else's")
    payload.unlink()
    with pytest.raises(InputError, match="exists"):
        _write_pair(payload, manifest, b"third", overwrite=False)
    assert not payload.exists() and manifest.read_text() == "someone else's"


def test_a_killed_run_leaves_temporaries_that_the_next_run_removes(tmp_path):
    """Issue 24, item 11: temporary files left by a SIGKILL were never cleaned up. A process killed
    inside a write leaves ``.NAME.PID.XXXXXXXX.tmp`` beside the output; the next check of that
    output (every command makes one before any work) removes it, and nothing of a live writer."""
    out = tmp_path / "m.onnx"
    code = (
        "import os, signal, sys\n"
        "from segedge._io import atomic_path, staged_directory\n"
        f"with staged_directory({str(tmp_path / 'report')!r}) as staged:\n"
        f"    with atomic_path({str(out)!r}) as tmp:\n"
        "        tmp.write_bytes(b'half a model')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and any(n.startswith(".m.onnx.") and n.endswith(".tmp") for n in left)
    assert any(n.startswith(".report.") and ".new." in n for n in left)
    live = tmp_path / f".m.onnx.{os.getpid()}.abcdefgh.tmp"  # a concurrent writer that is alive: kept
    live.write_bytes(b"in progress")
    other = tmp_path / ".unrelated.tmp"
    other.write_bytes(b"not ours to judge")
    check_output(out)
    check_output(tmp_path / "report", directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_folder_output_is_swept_inside_too(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    stale = masks / f".000001.png.{_dead_pid()}.abcdefgh.tmp"
    stale.write_bytes(b"x")
    (masks / "000000.png").write_bytes(b"kept")
    check_output(masks, directory=True, option="--save-masks")
    assert sorted(p.name for p in masks.iterdir()) == ["000000.png"]
    assert sweep_stale(masks, inside=True) == []


def test_private_folders_are_private_and_stale_ones_go(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"segedge-serve-{_dead_pid()}-abcdefgh"
    stale.mkdir()
    (stale / "tritonserver.log").write_text("an old failure")
    mine = tmp_path / f"segedge-serve-{os.getpid()}-zzzzzzzz"
    mine.mkdir()
    folder = make_private_directory("serve")
    assert not stale.exists() and mine.exists() and folder.parent == tmp_path
    assert folder.name.startswith(f"segedge-serve-{os.getpid()}-") and folder.stat().st_mode & 0o777 == 0o700
    with private_directory("quant") as work:
        assert work.is_dir()
    assert not work.exists()


def test_a_log_is_created_never_written_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "server.log")
    with pytest.raises(InputError, match="exists"):
        create_exclusive(tmp_path / "server.log")
    with create_exclusive(tmp_path / "fresh.log") as log:
        log.write(b"started\n")
    assert victim.read_text() == "precious" and (tmp_path / "fresh.log").stat().st_mode & 0o777 == 0o600


def test_a_partial_download_is_never_appended_through_a_link(tmp_path):
    """Issue 24, item 7: download.py opened the predictable ``NAME.part`` by name and appended
    through whatever was planted there."""
    from segedge.data.download import fetch

    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "images.tar.gz.part")
    with pytest.raises(InputError, match="symbolic link"):
        fetch("http://127.0.0.1:9/images.tar.gz", tmp_path / "images.tar.gz", "0" * 32)
    assert victim.read_text() == "precious"
    (tmp_path / "images.tar.gz.part").unlink()
    os.link(victim, tmp_path / "images.tar.gz.part")  # a hard link: appends would land in the victim
    with pytest.raises(InputError, match="one link"):
        open_resumable(tmp_path / "images.tar.gz.part")
    assert victim.read_text() == "precious"
    handle, offset = open_resumable(tmp_path / "fresh.part")
    with handle:
        handle.write(b"12345")
    handle, offset = open_resumable(tmp_path / "fresh.part")
    handle.close()
    assert offset == 5


def test_the_demo_clip_leaves_no_temporary_on_failure(tmp_path):
    """Issue 24, item 7: make_demo_clip wrote to ``TMP.mp4``, a non-exclusive name it left behind
    when the writer failed."""
    from segedge.data.demo import make_demo_clip
    from segedge.errors import DataError

    with pytest.raises(DataError):
        make_demo_clip(tmp_path / "clip.mp4", frames=2, size=(0, 0))  # OpenCV opens no writer for 0x0 frames
    assert list(tmp_path.iterdir()) == []
    make_demo_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_no_writer_bypasses_the_door():
    """Every temporary name, rename and exclusive open is made in segedge/_io/ (STYLE.md: "A new
    writer that does not use _io is a defect")."""
    import ast

    banned = {("tempfile", "mkstemp"), ("tempfile", "mkdtemp"), ("tempfile", "TemporaryDirectory"), ("tempfile", "NamedTemporaryFile"),
              ("os", "replace"), ("os", "rename"), ("os", "link"), ("os", "open")}
    offenders = []
    for path in sorted((ROOT / "segedge").rglob("*.py")):
        if path.parent.name == "_io":  # the door itself
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in banned:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open" and len(node.args) > 1:
                mode = node.args[1]
                if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: open(..., {mode.value!r})")
    assert not offenders, "write through segedge._io:\n" + "\n".join(offenders)
