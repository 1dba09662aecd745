"""OpenVINO runner: FP32, FP16 and Q/DQ INT8 ONNX in the ``tensorrt`` form (standard ops, no
MaxUnpool), or an OpenVINO IR (``.xml`` + ``.bin``) from ``segedge export --target openvino``,
on the CPU.

Needs the optional ``openvino`` package (``pip install 'segedge[openvino]'``), imported only
when a runner is created. Follows the OpenVINO Python API reference (``Core.read_model``,
``Core.compile_model``, ``CompiledModel.create_infer_request``, ``InferRequest.infer``) and the
CPU device docs ("CPU Device": ``INFERENCE_NUM_THREADS``, ``NUM_STREAMS``,
``INFERENCE_PRECISION_HINT``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from segedge.contract import Backend, Contract, openvino_weights_sha256
from segedge.errors import InputError, ModelFormatError
from segedge.onnx.openvino_ir import import_openvino, onnx_contract, weights_path
from segedge.runtime.base import Runner


def read_ir(core, xml: Path):
    """Read an IR's two files once and check they belong together: the ``.bin``'s SHA-256
    against the one its ``.xml`` records (``segedge export --openvino-ir`` writes it; an IR
    from elsewhere has none and is taken as it is).

    Raises:
        ModelFormatError: the ``.bin`` is missing or is not the one the ``.xml`` was written
            with (an interrupted or concurrent export), or OpenVINO cannot parse them.
    """
    import hashlib

    weights = weights_path(xml)
    if not weights.is_file():
        raise ModelFormatError(f"{xml} has no weights file {weights.name} beside it")
    graph, data = xml.read_bytes(), weights.read_bytes()
    ov = import_openvino()
    try:
        model = core.read_model(graph, ov.Tensor(np.frombuffer(data, np.uint8)))
    except RuntimeError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ModelFormatError(f"OpenVINO cannot read {xml}: {(lines[-1] if lines else type(exc).__name__)[:300]}") from None
    expected = openvino_weights_sha256(model)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise ModelFormatError(
            f"{weights} is not the weights file {xml.name} was written with (an export interrupted or run twice at once); "
            "export the IR again with `segedge export --openvino-ir`"
        )
    return model


class OpenVINORunner(Runner):
    """Runs an ONNX file or an OpenVINO IR on OpenVINO's CPU plugin.

    The preprocessing, class names and precision come from the artifact's segedge metadata
    (ONNX ``metadata_props`` or the IR's ``rt_info``), as in
    :class:`~segedge.runtime.onnxruntime_runner.OnnxRuntimeRunner`. Inference runs at FP32
    (``INFERENCE_PRECISION_HINT=f32``) unless asked otherwise: the CPU plugin's default on
    CPUs with AVX-512 BF16 or AMX is bfloat16, 2-5x faster there but measured at 98.0-99.1%
    argmax agreement with PyTorch on the embedded segnet-dsc (Pet images), below the 99.9% an
    FP32 artifact promises (docs/benchmarks.md). An FP16 artifact runs in FP32 on its FP16-rounded weights
    (agreement as in ONNX Runtime); an INT8 Q/DQ artifact runs its quantized convolutions in INT8.

    Each calling thread gets its own infer request, so several live-loop workers can infer
    at once (``streams`` of them run in parallel).

    Args:
        path: ``.onnx`` in the ``tensorrt`` form, or ``.xml`` IR (its ``.bin`` beside it).
        threads: CPU threads per stream (0: OpenVINO's default, all cores).
        streams: parallel inference streams (use one per live-loop worker).
        inference_precision: ``f32`` (default, exact) or ``bf16`` (the plugin's own default
            where the CPU has BF16 instructions; benchmarks compare it).

    Raises:
        BackendUnavailableError: openvino is not installed.
        ModelFormatError: missing or unreadable file, a MaxUnpool graph, not one ``(N, 3, H, W)``
            input and one output, or bad segedge metadata.
        InputError: negative ``threads``, ``streams`` below 1, or an unknown ``inference_precision``.
    """

    backend = Backend.OPENVINO

    def __init__(self, path: str | os.PathLike[str], threads: int = 0, streams: int = 1, inference_precision: str = "f32"):
        ov = import_openvino()
        if threads < 0 or streams < 1 or inference_precision not in ("f32", "bf16"):
            raise InputError(
                f"threads must be >= 0, streams >= 1 and inference_precision f32 or bf16, got {threads}, {streams}, {inference_precision!r}"
            )
        self.artifact = Path(path)
        if not self.artifact.is_file():
            raise ModelFormatError(f"{self.artifact} does not exist")
        core = ov.Core()
        is_onnx = self.artifact.suffix.lower() == ".onnx"
        contract = onnx_contract(self.artifact) if is_onnx else None
        model = None if is_onnx else read_ir(core, self.artifact)
        try:
            if model is None:
                model = core.read_model(str(self.artifact))
            config = {"INFERENCE_PRECISION_HINT": inference_precision, "NUM_STREAMS": streams}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads * streams
            if len(model.inputs) != 1 or len(model.outputs) != 1 or model.inputs[0].get_partial_shape().rank.get_length() != 4:
                raise ModelFormatError(f"{self.artifact}: expected one (N, 3, H, W) input and one output")
            shape = model.inputs[0].get_partial_shape()
            self.max_batch = shape[0].get_length() if shape[0].is_static else None
            size = tuple(shape[i].get_length() if shape[i].is_static else None for i in (2, 3))
            self.contract = contract or Contract.from_openvino(model, str(self.artifact), fallback_size=size)
            self._core, self._model, self._config = core, model, config
            self._dynamic_hw = None in size
            self._compiled: dict[tuple[int, ...], object] = {}
            self._lock = threading.Lock()
            self.compiled = self._compile((1, 3, *self.contract.input_size)) if self._dynamic_hw else core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise ModelFormatError(f"OpenVINO cannot load {self.artifact}: {(lines[-1] if lines else type(exc).__name__)[:300]}") from None
        self.threads, self.streams = threads, streams
        self._local = threading.local()

    def _compile(self, shape: tuple[int, ...]):
        """The model compiled for one static input shape (cached; a model of symbolic height and
        width is reshaped first: OpenVINO's CPU plugin runs a static shape 2.4x faster than the
        dynamic one on segnet-lite0 FP32 at 256x448, docs/benchmarks.md)."""
        with self._lock:
            compiled = self._compiled.get(shape)
            if compiled is None:
                model = self._model.clone()
                model.reshape(list(shape))
                compiled = self._compiled[shape] = self._core.compile_model(model, "CPU", self._config)
            return compiled

    def _request(self, shape: tuple[int, ...]):
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(shape)
        if request is None:
            compiled = self._compile(shape) if self._dynamic_hw else self.compiled
            request = requests[shape] = compiled.create_infer_request()
        return request

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        request = self._request(batch.shape if self._dynamic_hw else ())
        request.infer({0: batch}, share_inputs=True, share_outputs=True)
        logits = request.get_output_tensor(0).data  # a view of the request's buffer, overwritten by its next call
        if out is not None:
            np.copyto(out, logits, casting="same_kind")
            return out
        return logits.astype(np.float32, copy=True)

    def close(self) -> None:
        self._local = threading.local()
        self.compiled = None
        self._compiled = {}
