"""``segedge serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


@handle_errors
def serve_command(
    artifact: Annotated[Path, typer.Argument(help="Artifact to serve: .onnx, .pt or .engine.", show_default=False)],
    port: Annotated[int, typer.Option(min=1, max=65533, help="HTTP port; gRPC listens on PORT+1, metrics (Prometheus) on PORT+2.")] = 8000,
    host: Annotated[str, typer.Option(help="Address every endpoint binds to (0.0.0.0 exposes the model to the network).")] = "127.0.0.1",
    name: Annotated[Optional[str], typer.Option(help="Model name (default: from the file name).")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest batch the dynamic batcher forms.")] = 8,
    queue_delay_us: Annotated[int, typer.Option(min=0, help="How long the dynamic batcher waits for more requests, microseconds.")] = 2000,
    instances: Annotated[int, typer.Option(min=1, help="Model instances (batches executed in parallel).")] = 1,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads per instance (0: the backend's default).")] = 0,
    ready_timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the server and model to become ready.")] = 120.0,
) -> None:
    """Serve an artifact through a real Triton Inference Server (PyTriton's bundled server, Python backend).

    Dynamic batching, HTTP (/v2/health/ready, /v2/models/NAME/infer), gRPC and Prometheus metrics (/metrics),
    all bound to 127.0.0.1 unless --host. Clients: `segedge run --engine triton://HOST:PORT/NAME`. Runs until
    Ctrl-C or SIGTERM, then stops the server. Needs the serve extra and `pip install --no-deps nvidia-pytriton==0.7.0`
    (README, "Many cameras"); without them, or where the server cannot run, one line and exit code 4.
    """
    import shutil
    import signal
    import threading

    from segedge._io import make_private_directory
    from segedge.deploy.server import TritonServer, find_triton, serving_repository, stub_environment
    from segedge.deploy.triton import Device, TritonOptions, model_name
    from segedge.errors import BackendUnavailableError, InputError

    if not artifact.is_file():
        raise InputError(f"artifact {artifact} does not exist")
    stub_environment(find_triton())  # fail in one line before any work when the server cannot run here
    name = name or model_name(artifact)
    work = make_private_directory("serve")  # $TMPDIR/segedge-serve-PID-XXXXXXXX, 0700; a later serve removes it if this one is killed
    log = work / "tritonserver.log"  # kept after a failure: the server's own account of it
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    stopped = False
    try:
        options = TritonOptions(max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances, device=Device.CPU, class_map=True)
        serving_repository(artifact, work / "repo", options, name=name, threads=threads)
        with TritonServer(work / "repo", host, port, log=log) as server:
            server.wait_ready(ready_timeout)
            console.print(f"serving {artifact} as {name!r}: triton://{server.local}/{name} (HTTP), triton+grpc://{host}:{port + 1}/{name}, "
                          f"metrics http://{host}:{port + 2}/metrics; log {log}; Ctrl-C stops")
            while not stop.wait(0.5):
                if server.process.poll() is not None:
                    raise BackendUnavailableError(f"Triton exited ({server.last_error() or 'see its log'}); log: {log}")
        console.print("stopped")
        stopped = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(work / "repo", ignore_errors=True)
        if stopped or not log.exists():
            shutil.rmtree(work, ignore_errors=True)
