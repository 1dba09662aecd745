"""A real Triton server on 127.0.0.1 (started through `segedge serve`), used by `segedge run`,
`segedge report` and the runner over HTTP and gRPC, against the local ONNX Runtime artifact."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segedge.cli.main import app
from segedge.errors import BackendUnavailableError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def free_ports(count: int = 3) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1 (HTTP, gRPC, metrics)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no three consecutive free ports on 127.0.0.1")


@pytest.fixture(scope="module")
def served(exported_onnx, tmp_path_factory):
    """`segedge serve` on the exported embedded model; stopped (SIGINT, then SIGKILL) at teardown."""
    from segedge.deploy.server import find_triton, stub_environment

    try:
        stub_environment(find_triton())
    except BackendUnavailableError as exc:
        pytest.skip(f"Triton cannot start here: {exc}")
    port = free_ports()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "segedge.cli.main", "serve", str(exported_onnx), "--port", str(port), "--name", "dsc", "--max-batch", "8"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/dsc/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.skip(f"Triton did not start: {log.read_text(errors='replace').strip().splitlines()[-1:]}")
        yield {"port": port, "onnx": exported_onnx, "log": log}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def masks(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("*.png"))
    assert files, f"no masks in {folder}"
    return np.stack([cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files])


def test_run_through_triton_agrees_with_local_onnxruntime(served, libby_video, tmp_path):
    url = f"triton://127.0.0.1:{served['port']}/dsc"
    for engine, out in ((url, "remote"), (str(served["onnx"]), "local")):
        result = cli.invoke(app, ["run", "--engine", engine, "--source", str(libby_video), "--save-masks", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    remote, local = masks(tmp_path / "remote"), masks(tmp_path / "local")
    assert remote.shape == local.shape and remote.shape[0] >= 40  # every frame of the clip
    assert (remote == local).mean() >= 0.999


def test_report_against_triton_matches_the_local_artifact(served, libby_video, tmp_path):
    url = f"triton://127.0.0.1:{served['port']}/dsc"
    result = cli.invoke(app, ["report", "--candidates", str(served["onnx"]), url, "--video", str(libby_video), "--limit", "6",
                              "--latency-runs", "3", "--warmup", "1", "--worst", "0", "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    local, remote = report["video"]["candidates"]
    assert "triton" in remote["name"]
    assert np.abs(np.array(local["per_frame_agreement"]) - np.array(remote["per_frame_agreement"])).max() <= 0.001


@pytest.mark.parametrize("scheme,offset", [("triton", 0), ("triton+grpc", 1)])
def test_runner_logits_and_class_map_match_onnxruntime(served, scheme, offset):
    from segedge.data.demo import demo_image
    from segedge.runtime.factory import load_runner

    image = demo_image()
    with load_runner(served["onnx"]) as local, load_runner(f"{scheme}://127.0.0.1:{served['port'] + offset}/dsc") as remote:
        assert remote.classes == local.classes and remote.preprocess_config == local.preprocess_config
        batch = local.preprocess([image, cv2.flip(image, 1), image[::2, ::2]])
        np.testing.assert_allclose(remote.infer(batch), local.infer(batch), atol=1e-4)
        np.testing.assert_array_equal(remote.predict([image]), local.predict([image]))


def test_bench_times_the_served_model(served):
    result = cli.invoke(app, ["bench", f"triton+grpc://127.0.0.1:{served['port'] + 1}/dsc", "--runs", "4", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert "dsc@127.0.0.1" in result.output and "triton" in result.output  # the row's name (the table may wrap it)


def test_metrics_count_inferences_and_batches(served):
    from segedge.deploy.metrics import read_counters

    counters = read_counters(f"127.0.0.1:{served['port'] + 2}", "dsc")
    assert counters.requests >= 1 and counters.inferences >= counters.requests and counters.executions >= 1
    assert counters.inferences >= counters.executions


def test_serve_binds_127_0_0_1_by_default(served):
    port = served["port"]
    printed = served["log"].read_text(errors="replace")
    assert f"triton://127.0.0.1:{port}/dsc" in printed and f"http://127.0.0.1:{port + 2}/metrics" in printed
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=5) as response:
        assert response.status == 200


def test_serve_bad_artifact_is_one_line(tmp_path, one_line_error):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert "does not exist" in one_line_error(cli.invoke(app, ["serve", str(tmp_path / "nope.onnx")]))
    result = cli.invoke(app, ["serve", str(bad), "--port", str(free_ports())])
    assert result.exit_code in (2, 4)  # 4 where the server cannot run here at all
    one_line_error(result)


def test_unreachable_server_is_one_line_exit_4(tmp_path, libby_video, one_line_error):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli.invoke(app, ["run", "--engine", f"triton://127.0.0.1:{port}/dsc", "--source", str(libby_video), "--max-frames", "2"])
    assert result.exit_code == 4
    assert "cannot reach Triton" in one_line_error(result)


def test_credentials_in_the_address_are_sent_and_never_shown(served, libby_video, tmp_path):
    """Issue 24, item 11: a password in triton://user:pass@host/... showed in the run summary and on
    the --serve page (both print the runner's name). It is sent as basic authentication instead."""
    from segedge.runtime.triton_runner import TritonRunner

    url = f"triton://user:hunter2@127.0.0.1:{served['port']}/dsc"
    with TritonRunner(url) as runner:
        assert "hunter2" not in runner.name and "user" not in runner.name and runner.address == f"127.0.0.1:{served['port']}"
    result = cli.invoke(app, ["run", "--engine", url, "--source", str(libby_video), "--max-frames", "3", "--stats", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "hunter2" not in (tmp_path / "s.jsonl").read_text()
