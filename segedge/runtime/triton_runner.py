"""Triton runner: a model on a Triton Inference Server, reached over HTTP or gRPC.

``triton://HOST:PORT/MODEL`` uses HTTP (``tritonclient.http``), ``triton+grpc://HOST:PORT/MODEL``
gRPC (``tritonclient.grpc``; Triton's default gRPC port is the HTTP port + 1). The
deployment contract (preprocessing, classes, precision) comes from the model's config
``parameters`` that ``segedge deploy triton`` and ``segedge serve`` write, so frames are
preprocessed here exactly as the artifact expects and only the tensor travels.

Each calling thread gets its own client connection (the HTTP client is not thread-safe),
so the live loop's inference workers keep several requests in flight and a remote GPU is
fed without gaps; the server's dynamic batcher joins them into batches.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from segedge.contract import Backend, Contract
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.base import Runner

# "triton://h:p/m"; a pathlib.Path turns "//" into "/", so the CLI's Path options arrive as "triton:/h:p/m"
SCHEME = re.compile(r"^triton(?:\+[A-Za-z]+)?:/")
URL = re.compile(
    r"^triton(?:\+(?P<protocol>http|grpc))?:/{1,2}(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?"
    r"(?P<address>(?P<host>\[[^]/]+\]|[^:/@]+)(?::(?P<port>[^/@]*))?)/(?P<model>[A-Za-z0-9_.-]+)/?$"
)


def parse_url(url: str) -> tuple[str, str, str]:
    """``(protocol, "host:port", model)`` of a ``triton[+http|+grpc]://[USER:PASSWORD@]HOST:PORT/MODEL``
    URL; the address never carries the credentials (see :func:`credentials`).

    Raises:
        InputError: not such a URL, or a port that is not 1-65535 (one line, the password
            removed).
    """
    match = URL.match(str(url))
    typed = re.sub(r"^(triton[^:/]*):/+", r"\1://", str(url))  # as typed, before pathlib folded its "//"
    typed = re.sub(r"(://)[^/@]*@", r"\1", typed)  # never repeat a password
    if match is None:
        raise InputError(f"{typed!r} is not a Triton address; expected triton://HOST:PORT/MODEL or triton+grpc://HOST:PORT/MODEL")
    port = match["port"]
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise InputError(f"{typed!r}: port {port!r} is not a number from 1 to 65535")
    return match["protocol"] or "http", match["address"], match["model"]


def credentials(url: str) -> tuple[str, str] | None:
    """``(user, password)`` of a ``triton://USER:PASSWORD@HOST:PORT/MODEL`` URL, sent as HTTP
    basic authentication (tritonclient's ``BasicAuth`` plugin), never shown; ``None`` without."""
    match = URL.match(str(url))
    if match is None or match["user"] is None:
        return None
    return match["user"], match["password"] or ""


def is_triton_url(value) -> bool:
    """Whether ``value`` (a string or a ``Path``) is meant as a Triton address: its scheme is
    ``triton`` or ``triton+PROTOCOL`` (:func:`parse_url` then checks the rest)."""
    return value is not None and SCHEME.match(str(value)) is not None


class TritonRunner(Runner):
    """A Triton-served model.

    Args:
        url: ``triton://HOST:PORT/MODEL`` (HTTP) or ``triton+grpc://HOST:PORT/MODEL``;
            ``USER:PASSWORD@`` before the host is sent as basic authentication and appears in
            no name, message, summary or page.
        timeout_s: network timeout per request, seconds.

    Raises:
        InputError: a malformed URL.
        BackendUnavailableError: tritonclient is missing, the server cannot be reached or
            the model is not ready.
        ModelFormatError: the model's config carries no segedge contract.
    """

    backend = Backend.TRITON

    def __init__(self, url: str, timeout_s: float = 30.0):
        self.protocol, self.address, self.model = parse_url(url)  # the address without credentials: it is shown
        self._credentials = credentials(url)
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as client_module
            else:
                import tritonclient.http as client_module
        except ImportError:
            raise BackendUnavailableError(f"the Triton runner needs tritonclient[{self.protocol}]: pip install 'segedge[triton]'") from None
        self._module, self._timeout = client_module, timeout_s
        self._local, self._clients, self._lock = threading.local(), [], threading.Lock()
        where = f"{self.protocol}://{self.address}"
        try:
            client = self._client()
            ready = client.is_model_ready(self.model)
            config = client.get_model_config(self.model, **({"as_json": True} if self.protocol == "grpc" else {}))
        except Exception as exc:  # connection refused, DNS, timeouts: tritonclient raises several types
            raise BackendUnavailableError(f"cannot reach Triton at {where}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
        if not ready:
            raise BackendUnavailableError(f"model {self.model!r} is not ready on Triton at {where}")
        config = config.get("config", config)
        params = {k: v.get("string_value", v.get("stringValue", "")) for k, v in config.get("parameters", {}).items()}
        self.contract = Contract.from_props(params, source=f"model {self.model!r} at {where}")
        if not self.contract.declared:
            raise ModelFormatError(f"model {self.model!r} at {where} carries no segedge contract in its parameters; write it with segedge deploy triton")
        self.logits_name = params.get("logits_output", config["output"][0]["name"])  # written by segedge.deploy.triton
        self.input_name = config["input"][0]["name"]
        dtype = config["input"][0].get("data_type", config["input"][0].get("dataType"))
        self.input_dtype = "FP16" if dtype == "TYPE_FP16" else "FP32"
        self.has_class_map = any(o["name"] == "classmap" for o in config["output"])
        self.max_batch = int(config.get("max_batch_size", config.get("maxBatchSize", 0))) or 1

    @property
    def name(self) -> str:
        return f"{self.model}@{self.address} (triton {self.precision})"

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = self._module.InferenceServerClient(self.address)
            else:
                client = self._module.InferenceServerClient(self.address, connection_timeout=self._timeout, network_timeout=self._timeout)
            if self._credentials is not None:
                from importlib import import_module

                auth = import_module(f"{self._module.__name__}.auth")  # tritonclient.http.auth / tritonclient.grpc.auth
                client.register_plugin(auth.BasicAuth(*self._credentials))
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _request(self, batch: np.ndarray, output: str) -> np.ndarray:
        if self.input_dtype == "FP16":
            batch = batch.astype(np.float16)
        tensor = self._module.InferInput(self.input_name, list(batch.shape), self.input_dtype)
        tensor.set_data_from_numpy(batch)
        wanted = self._module.InferRequestedOutput(output, **({"binary_data": True} if self.protocol == "http" else {}))
        extra = {"client_timeout": self._timeout} if self.protocol == "grpc" else {}
        try:
            result = self._client().infer(self.model, [tensor], outputs=[wanted], **extra)
        except Exception as exc:
            raise BackendUnavailableError(f"Triton at {self.address} failed the request: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
        return result.as_numpy(output)

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        logits = self._request(batch, self.logits_name)
        return logits if logits.dtype == np.float32 else logits.astype(np.float32)

    def predict(self, images) -> np.ndarray:
        """Class maps ``(N, H, W)`` uint8; asks the server for its ``classmap`` output when it has
        one, so only one byte per pixel crosses the network."""
        if not self.has_class_map:
            return super().predict(images)
        batch = self.preprocess(images)
        if batch.shape[0] > self.max_batch:
            raise InputError(f"batch {batch.shape[0]} exceeds this model's maximum batch {self.max_batch}")
        return self._request(batch, "classmap").astype(np.uint8, copy=False)

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                try:
                    client.close()
                except Exception:  # closing a broken connection must not mask the real error
                    pass
            self._clients.clear()
        self._local = threading.local()
