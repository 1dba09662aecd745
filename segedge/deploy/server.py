"""``segedge serve``: any artifact behind a real Triton Inference Server on this machine.

The server is the ``tritonserver`` binary (Triton 2.51) and Python backend that
``nvidia-pytriton`` bundles (extra ``segedge[serve]``); segedge writes a one-model
repository with the ``python`` backend (:mod:`segedge.deploy.triton_model` runs the
artifact with segedge's own runner inside the backend's stub process) and starts the
binary with dynamic batching, HTTP/gRPC/metrics bound to ``host`` (127.0.0.1 by default).
PyTriton's own Python API is not used: it pins ``numpy<2`` (segedge runs on numpy 2, which
OpenCV 5 requires) and returned empty outputs under numpy 2 here.

The Python 3.11.6+ / 3.12.1+ stub problem (pytriton issue 51, ``'_thread.RLock' object has
no attribute '_recursion_count'``): the stub binary links ``libpython3.X.so.1.0`` and the
dynamic loader finds the system's copy (Debian: 3.11.2) while the stub imports the host
interpreter's standard library (3.11.7), whose ``multiprocessing.resource_tracker`` calls an
RLock method the older C library lacks. The fix here: put the host interpreter's own
``LIBDIR`` first on the stub's ``LD_LIBRARY_PATH`` so the stub embeds the same Python whose
standard library it imports. An interpreter built without a shared libpython (no
``--enable-shared``) cannot be matched: serving then stops with one line saying so.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from segedge._io import atomic_path, create_exclusive, make_private_directory
from segedge.errors import BackendUnavailableError

INSTALL = "pip install 'segedge[serve]' && pip install --no-deps nvidia-pytriton==0.7.0"


@dataclass(frozen=True)
class TritonInstall:
    """Where the bundled server lives.

    Attributes:
        binary: the ``tritonserver`` executable.
        libs: shared libraries it needs (``nvidia_pytriton.libs``).
        python_backend: ``backends/python`` (``libtriton_python.so``, utilities).
        stub: the Python-backend stub built for this interpreter's ``major.minor``.
    """

    binary: Path
    libs: Path
    python_backend: Path
    stub: Path


def find_triton() -> TritonInstall:
    """Locate PyTriton's bundled server without importing pytriton.

    Raises:
        BackendUnavailableError: nvidia-pytriton is not installed, or has no stub for this Python.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"no Triton server here: {INSTALL}")
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(root / "bin" / "tritonserver", root.parent.parent / "nvidia_pytriton.libs",
                            root / "backends" / "python", root / "python_backend_stubs" / version / "triton_python_backend_stub")
    for path in (install.binary, install.python_backend, install.stub):
        if not path.exists():
            raise BackendUnavailableError(f"nvidia-pytriton is incomplete or has no Python {version} stub ({path} missing); {INSTALL}")
    return install


def stub_environment(install: TritonInstall) -> dict[str, str]:
    """Environment for ``tritonserver`` and its Python-backend stub (see the module docstring).

    Raises:
        BackendUnavailableError: this interpreter has no shared libpython the stub could embed
            (the stub would load another Python's library and fail on the first request).
    """
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlibrary = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    if not (Path(libdir) / ldlibrary).is_file():
        raise BackendUnavailableError(
            f"Python {sys.version.split()[0]} at {sys.executable} has no shared {ldlibrary} for Triton's Python-backend stub "
            "(pytriton issue 51); use an interpreter built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared) or the system python3"
        )
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(install.libs), env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    # the stub imports segedge and its dependencies: this process's import path, plus segedge's own root
    # (an editable install is found through an import hook that a PYTHONPATH entry does not carry)
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root] + [p for p in sys.path if p and Path(p).is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _die_with_parent() -> None:  # runs in the child before exec: SIGTERM when segedge exits, even by SIGKILL
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class TritonServer:
    """A running ``tritonserver`` on one model repository; a context manager that stops it.

    Args:
        repo: model repository.
        host: address every endpoint binds to.
        http_port: HTTP port; gRPC listens on ``http_port + 1``, metrics on ``http_port + 2``.
        log: file for the server's log (stdout and stderr).
        exit_timeout_s: how long a stop waits for in-flight requests, seconds.

    Raises:
        BackendUnavailableError: the server is not installed or cannot start (see :meth:`wait_ready`).
    """

    def __init__(self, repo: Path, host: str = "127.0.0.1", http_port: int = 8000, log: Path | None = None, exit_timeout_s: int = 5):
        install = find_triton()
        env = stub_environment(install)
        self.host, self.http_port = host, http_port
        self.work = make_private_directory("tritonserver")  # backends copied for the stub; 0700, swept when stale
        self.log_path = log or self.work / "tritonserver.log"
        self._log = None
        try:
            backends = self.work / "backends"
            shutil.copytree(install.python_backend, backends / "python")
            shutil.copy2(install.stub, backends / "python" / "triton_python_backend_stub")
            args = [
                str(install.binary), f"--model-repository={repo}", f"--backend-directory={backends}",
                f"--http-address={host}", f"--http-port={http_port}", f"--grpc-address={host}", f"--grpc-port={http_port + 1}",
                f"--metrics-address={host}", f"--metrics-port={http_port + 2}", "--allow-metrics=true", "--allow-gpu-metrics=false",
                "--allow-cpu-metrics=true", f"--exit-timeout-secs={exit_timeout_s}", "--strict-readiness=true", "--log-verbose=0",
            ]
            self._log = create_exclusive(self.log_path)  # never through a file or link planted at that name
            self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        except BaseException:  # nothing started: leave neither the work folder nor a log behind
            if self._log is not None:
                self._log.close()
                self.log_path.unlink(missing_ok=True)
            shutil.rmtree(self.work, ignore_errors=True)
            raise

    @property
    def local(self) -> str:
        """``HOST:PORT`` of the HTTP endpoint as reachable from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{host}:{self.http_port}"

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Poll ``/v2/health/ready`` until the server and its model are ready.

        Raises:
            BackendUnavailableError: the server exited or was not ready in time; the message
                quotes the last error line of its log.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://{self.local}/v2/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        reason = self.last_error() or "no error in its log"
        self.stop()
        raise BackendUnavailableError(f"Triton did not become ready in {timeout_s:.0f} s ({reason}); log: {self.log_path}")

    def last_error(self) -> str:
        """The last error line of the server log (shortened), or ``""``."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        errors = [line for line in lines if line.startswith("E") or "Error" in line]
        return errors[-1][:300] if errors else ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGINT (graceful: in-flight requests finish), then SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()

    def __enter__(self) -> "TritonServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def serving_repository(artifact: Path, repo: Path, options, name: str | None = None, threads: int = 0) -> Path:
    """Write the one-model Python-backend repository that serves ``artifact``.

    Args:
        artifact: ``.onnx``, ``.pt`` or ``.engine`` (anything :func:`~segedge.runtime.factory.load_runner` loads).
        repo: repository directory (created).
        options: :class:`~segedge.deploy.triton.TritonOptions` (batching, instances).
        name: model name (default: from the file name).
        threads: intra-op threads of each instance's runner (0: the backend's default).

    Returns:
        The model directory.

    Raises:
        ModelFormatError, CheckpointError: the artifact cannot be loaded.
    """
    from segedge.deploy.artifact import ArtifactInfo, TensorSpec, read_artifact
    from segedge.deploy.triton import write_model
    from segedge.runtime.factory import load_runner

    if artifact.suffix.lower() == ".onnx":
        info = read_artifact(artifact)
    else:  # a checkpoint or an engine: the contract as its runner reads it
        with load_runner(artifact) as runner:
            contract = runner.contract
        h, w = contract.preprocess.size
        info = ArtifactInfo(artifact, artifact.suffix.lstrip("."), (TensorSpec("input", "TYPE_FP32", (-1, 3, h, w)),),
                            (TensorSpec("logits", "TYPE_FP32", (-1, contract.num_classes, h, w)), TensorSpec("classmap", "TYPE_UINT8", (-1, h, w))),
                            contract)
    model = Path(__file__).with_name("triton_model.py")
    model_dir = write_model(info, repo, dataclasses.replace(options, threads=threads or options.threads), name=name, backend="python", python_model=model)
    if artifact.suffix.lower() in (".engine", ".plan"):  # the TensorRT runner checks the engine against its sidecar
        with atomic_path(model_dir / "1" / f"model{artifact.suffix}.json") as tmp:
            shutil.copyfile(artifact.with_name(artifact.name + ".json"), tmp)
    return model_dir
