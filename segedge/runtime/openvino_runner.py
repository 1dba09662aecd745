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

from segedge.contract import Backend, Contract
from segedge.errors import InputError, ModelFormatError
from segedge.export.openvino_ir import RT_INFO_KEY, import_openvino, onnx_contract
from segedge.runtime.base import Runner


def ir_contract(model) -> dict[str, str]:
    """The segedge metadata kept in an IR's ``rt_info`` (see :data:`RT_INFO_KEY`)."""
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    return {key: model.get_rt_info([RT_INFO_KEY, key]).astype(str) for key in model.get_rt_info()[RT_INFO_KEY]}


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
        meta = onnx_contract(self.artifact) if self.artifact.suffix.lower() == ".onnx" else {}
        try:
            model = core.read_model(str(self.artifact))
            if not meta:
                meta = ir_contract(model)
            config = {"INFERENCE_PRECISION_HINT": inference_precision, "NUM_STREAMS": streams}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads * streams
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise ModelFormatError(f"OpenVINO cannot load {self.artifact}: {(lines[-1] if lines else type(exc).__name__)[:300]}") from None
        inputs, outputs = self.compiled.inputs, self.compiled.outputs
        if len(inputs) != 1 or len(outputs) != 1 or inputs[0].get_partial_shape().rank.get_length() != 4:
            raise ModelFormatError(f"{self.artifact}: expected one (N, 3, H, W) input and one output")
        shape = inputs[0].get_partial_shape()
        self.max_batch = shape[0].get_length() if shape[0].is_static else None
        size = tuple(shape[i].get_length() if shape[i].is_static else None for i in (2, 3))
        self.contract = Contract.from_metadata(meta, str(self.artifact), fallback_size=size)
        self.metadata = {f"segedge.{k}": v for k, v in meta.items()}
        self.threads, self.streams = threads, streams
        self._local = threading.local()

    def _request(self):
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        request = self._request()
        request.infer({0: batch}, share_inputs=True, share_outputs=True)
        logits = request.get_output_tensor(0).data  # a view of the request's buffer, overwritten by its next call
        if out is not None:
            np.copyto(out, logits, casting="same_kind")
            return out
        return logits.astype(np.float32, copy=True)

    def close(self) -> None:
        self._local = threading.local()
        self.compiled = None
