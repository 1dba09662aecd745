"""Load test of one Triton server on 127.0.0.1: several live-loop clients at once against one alone.

Starts ``segedge serve``'s server (PyTriton's bundled Triton, Python backend running the
artifact with ONNX Runtime, dynamic batching up to 8, 2 ms queue delay) bound to 127.0.0.1
only, then runs segedge's live loop (``run_live``: reader thread, 4 requests in flight per
client, argmax and overlay, no sinks) on a shared video with a Triton runner per client:

- ``1 client``: one live loop alone;
- ``N clients``: N live loops at once, each on its own copy of the video.

Rounds are interleaved (1, N, 1, N, ...) and the table gives medians over rounds of:
aggregate FPS (all clients' frames / wall time of the group), per-client FPS, end-to-end
frame latency p50/p99 and request round trip (the loop's ``infer`` stage) p50/p99 over
all clients' frames, and the batches Triton formed, from its metrics endpoint:
``nv_inference_count / nv_inference_exec_count`` (images per model execution) and
``nv_inference_request_success`` (requests). Bounded: ``--frames`` per client per round,
and a ``--time-limit`` after which every loop is interrupted and the server stopped.

Everything (server, clients, decoding) shares this machine's CPU, so absolute FPS measures
the CPU, not Triton; the batch sizes and the ratio of N clients to one are the point.

    python benchmarks/triton_load.py [--clients 8] [--frames 48] [--repeats 2] [--time-limit 600]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segedge.cpuinfo import cpu_info  # noqa: E402
from segedge.data.sources import open_source  # noqa: E402
from segedge.deploy.metrics import read_counters  # noqa: E402
from segedge.deploy.server import TritonServer, serving_repository  # noqa: E402
from segedge.deploy.triton import Device, TritonOptions  # noqa: E402
from segedge.runtime.stats import LatencyHistogram  # noqa: E402
from segedge.runtime.triton_runner import TritonRunner  # noqa: E402
from segedge.runtime.video import LiveOptions, run_live  # noqa: E402

HOST = "127.0.0.1"  # never anything else


def free_base_port() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            base = probe.getsockname()[1]
        try:
            for port in (base + 1, base + 2):
                with socket.socket() as s:
                    s.bind((HOST, port))
            return base
        except OSError:
            continue
    raise SystemExit("no free ports on 127.0.0.1")


def merged(histograms: list[LatencyHistogram]) -> LatencyHistogram:
    out = LatencyHistogram()
    for h in histograms:
        out.counts += h.counts
        out.total += h.total
        out.sum_ms += h.sum_ms
    return out


def one_round(url: str, metrics: str, model: str, video: Path, clients: int, frames: int, deadline: float) -> dict:
    """``clients`` live loops at once; returns the round's figures."""
    results, errors, stops = [None] * clients, [], []
    before = read_counters(metrics, model)

    def client(i: int) -> None:
        try:
            with TritonRunner(url) as runner, open_source(str(video), decode_threads=1) as source:
                options = LiveOptions(max_frames=frames, workers=4, hud=True)
                results[i] = run_live(runner, source, [], options)
        except Exception as exc:  # reported below; one failed client must not hang the others
            errors.append(f"client {i}: {exc}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    wall = time.perf_counter() - started
    if errors or any(t.is_alive() for t in threads):
        raise SystemExit(f"round failed or ran past --time-limit: {errors or 'timeout'}")
    after = read_counters(metrics, model)
    delta = after - before
    total = sum(r.frames for r in results)
    latency = merged([r.histograms["latency"] for r in results])
    infer = merged([r.histograms["infer"] for r in results])
    return {
        "fps": total / wall, "client_fps": statistics.median(r.fps for r in results),
        "lat50": latency.percentile(50), "lat99": latency.percentile(99), "rt50": infer.percentile(50), "rt99": infer.percentile(99),
        "batch": delta.mean_batch, "requests": delta.requests, "executions": delta.executions, "frames": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX to serve (default: the embedded segnet-dsc exported, MaxUnpool form)")
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "video" / "davis_libby_854x480.mp4")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--frames", type=int, default=48, help="frames per client per round")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--instances", type=int, default=1, help="model instances on the server")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the whole run")
    args = parser.parse_args()
    deadline = time.monotonic() + args.time_limit
    print(cpu_info().describe())
    with tempfile.TemporaryDirectory(prefix="segedge-triton-load-") as work:
        work = Path(work)
        model = args.model
        if model is None:
            from segedge.onnx.export import export_onnx
            from segedge.models.checkpoint import load_checkpoint

            model = work / "segnet-dsc.onnx"
            export_onnx(load_checkpoint(), model, target="onnxruntime")
        port = free_base_port()
        options = TritonOptions(max_batch=8, queue_delay_us=2000, instances=args.instances, device=Device.CPU)
        serving_repository(model, work / "repo", options, name="dsc")
        with TritonServer(work / "repo", HOST, port, log=work / "tritonserver.log") as server:
            server.wait_ready(180)
            url, metrics = f"triton://{HOST}:{port}/dsc", f"{HOST}:{port + 2}"
            one_round(url, metrics, "dsc", args.video, 1, 8, deadline)  # warm-up: sessions, connections
            rows = {1: [], args.clients: []}
            for r in range(args.repeats):
                for clients in rows:
                    rows[clients].append(one_round(url, metrics, "dsc", args.video, clients, args.frames, deadline))
                    print(f"round {r + 1}, {clients} client(s): {rows[clients][-1]['fps']:.1f} FPS", flush=True)
    med = {c: {k: statistics.median(x[k] for x in v) for k in v[0]} for c, v in rows.items()}
    print(f"\n{args.video.name}, {args.frames} frames per client per round, medians of {args.repeats} interleaved rounds; "
          f"server: Triton 2.51 python backend + ONNX Runtime CPU, max batch 8, queue delay 2 ms, {args.instances} instance(s)\n")
    print("| clients | aggregate FPS | / 1 client | FPS per client | frame latency p50 / p99 ms | request round trip p50 / p99 ms | images per execution | requests | executions |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, m in med.items():
        print(f"| {c} | {m['fps']:.1f} | {m['fps'] / med[1]['fps']:.2f}x | {m['client_fps']:.1f} | {m['lat50']:.0f} / {m['lat99']:.0f} | "
              f"{m['rt50']:.0f} / {m['rt99']:.0f} | {m['batch']:.2f} | {m['requests']:.0f} | {m['executions']:.0f} |")


if __name__ == "__main__":
    main()
