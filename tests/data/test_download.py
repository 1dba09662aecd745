"""Resumable, checksummed downloads against a local HTTP server that honours Range."""

import hashlib
import http.server
import threading

import pytest

from segedge.data.download import fetch
from segedge.errors import DataError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        header = self.headers.get("Range")
        RangeHandler.requests.append(header or "")
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        body = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/archive.tar.gz"
    httpd.shutdown()


def test_partial_download_resumes_from_where_it_stopped(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    (tmp_path / "archive.tar.gz.part").write_bytes(PAYLOAD[:300_000])
    fetch(server, dest, hashlib.md5(PAYLOAD).hexdigest(), chunk=65536)
    assert dest.read_bytes() == PAYLOAD
    assert RangeHandler.requests == ["bytes=300000-"]
    assert not (tmp_path / "archive.tar.gz.part").exists()


def test_checksum_mismatch_removes_the_file_and_says_so(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    with pytest.raises(DataError, match="MD5 mismatch"):
        fetch(server, dest, "0" * 32)
    assert not dest.exists() and not (tmp_path / "archive.tar.gz.part").exists()


def test_a_verified_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    dest.write_bytes(PAYLOAD)
    fetch(server, dest, hashlib.md5(PAYLOAD).hexdigest())
    assert RangeHandler.requests == []


def test_unreachable_server_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="rerun to resume"):
        fetch("http://127.0.0.1:9/none.tar.gz", tmp_path / "none.tar.gz", "0" * 32)
