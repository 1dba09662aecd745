"""Triton addresses as `--engine` takes them (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segedge.errors import InputError
from segedge.runtime.factory import live_parallelism
from segedge.runtime.triton_runner import is_triton_url, parse_url


@pytest.mark.parametrize("url,expected", [
    ("triton://127.0.0.1:8000/dsc", ("http", "127.0.0.1:8000", "dsc")),
    ("triton+http://localhost:9000/a-b_c.1", ("http", "localhost:9000", "a-b_c.1")),
    ("triton+grpc://127.0.0.1:8001/dsc", ("grpc", "127.0.0.1:8001", "dsc")),
    (str(Path("triton://127.0.0.1:8000/dsc")), ("http", "127.0.0.1:8000", "dsc")),  # what a typer Path option delivers
    (str(Path("triton+grpc://127.0.0.1:8001/dsc/")), ("grpc", "127.0.0.1:8001", "dsc")),
])
def test_parse(url, expected):
    assert parse_url(url) == expected and is_triton_url(url)


@pytest.mark.parametrize("url", ["triton://127.0.0.1:8000", "triton+udp://h:1/m", "triton://h:1/m/extra"])
def test_rejects_a_malformed_address(url):
    assert is_triton_url(url)  # meant for Triton, so the runner reports what is wrong with it
    with pytest.raises(InputError, match="triton://HOST:PORT/MODEL"):
        parse_url(url)


@pytest.mark.parametrize("path", ["triton.onnx", "tritonx://h:1/m", "models/triton://x", "model.onnx"])
def test_files_are_not_addresses(path):
    assert not is_triton_url(path) and not is_triton_url(Path(path))


def test_live_loop_keeps_several_requests_in_flight():
    workers, threads = live_parallelism("triton://127.0.0.1:8000/dsc")
    assert workers >= 2 and threads == 0
