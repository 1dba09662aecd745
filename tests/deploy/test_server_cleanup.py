"""`segedge serve`'s server wrapper leaves nothing behind when the server cannot start (issue 24,
item 12: its work folder and log leaked when Popen failed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from segedge.errors import BackendUnavailableError


def test_a_server_that_cannot_start_leaves_no_work_folder_and_no_log(tmp_path, monkeypatch):
    from segedge.deploy.server import TritonServer, find_triton, stub_environment

    try:
        stub_environment(find_triton())
    except BackendUnavailableError as exc:
        pytest.skip(f"Triton's bundled server is not usable here: {exc}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "server.log"
    with pytest.raises(ValueError, match="null byte"):  # Popen refuses an argument with a NUL: nothing is started
        TritonServer(Path("repo\0elsewhere"), log=log)
    assert not log.exists()
    assert list((tmp_path / "tmp").iterdir()) == []  # the private work folder (backends copied into it) is gone
