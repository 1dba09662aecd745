"""ONNX Runtime runner: FP32, FP16 and Q/DQ INT8 ONNX models on the CPU (or CUDA / TensorRT
execution providers with onnxruntime-gpu)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from segedge.contract import Backend, Contract, Precision, Provider
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.base import Runner

log = logging.getLogger(__name__)

PROVIDERS = {
    Provider.CPU: "CPUExecutionProvider",
    Provider.CUDA: "CUDAExecutionProvider",
    Provider.TENSORRT: "TensorrtExecutionProvider",
}


def provider_chain(provider: str, model: Path, cache_dir: Path | None = None, device_id: int = 0) -> list[tuple[str, dict]]:
    """Execution providers with their options, most preferred first.

    ``tensorrt`` keeps TensorRT's engines and timing cache in ``cache_dir`` (default
    ``<model dir>/<model stem>.trt-cache``) so the first session's build is not repeated, and
    falls back to CUDA, then the CPU, for nodes TensorRT does not take. Precision comes from
    the model (FP16 tensors, Q/DQ nodes): ``trt_fp16_enable`` / ``trt_int8_enable`` stay off.
    Option names: ONNX Runtime docs, "TensorRT Execution Provider" and "CUDA Execution Provider".
    """
    if provider == Provider.CPU:
        return [("CPUExecutionProvider", {})]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"})
    if provider == Provider.CUDA:
        return [cuda, ("CPUExecutionProvider", {})]
    cache = str(cache_dir or model.parent / f"{model.stem}.trt-cache")
    tensorrt = ("TensorrtExecutionProvider", {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
    })
    return [tensorrt, cuda, ("CPUExecutionProvider", {})]


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    The preprocessing, class names and precision come from the model's segedge metadata
    (written by ``segedge export``); an ONNX file without it gets the default
    preprocessing at its input's spatial size, with a warning.

    Args:
        path: ``.onnx`` file with one ``(N, 3, H, W)`` float input and one logits output.
        provider: ``cpu``, ``cuda`` or ``tensorrt`` (the last two need onnxruntime-gpu; see
            :func:`provider_chain` for their options and fallbacks).
        threads: intra-op threads (0: one per physical core, ONNX Runtime's default).
        spin: let idle intra-op threads spin (lowest latency alone; ``False`` when other
            threads need the cores, as in the pipelined live loop).
        cache_dir: TensorRT execution provider engine and timing cache directory.
        device_id: CUDA device for ``cuda`` and ``tensorrt``.

    Raises:
        ModelFormatError: missing, truncated or invalid ONNX, or not a single-input model.
        BackendUnavailableError: the provider is not available in this onnxruntime.
    """

    backend = Backend.ONNXRUNTIME

    def __init__(
        self, path: str | os.PathLike[str], provider: Provider | str = Provider.CPU, threads: int = 0, spin: bool = True,
        cache_dir: str | os.PathLike[str] | None = None, device_id: int = 0,
    ):
        import onnxruntime as ort

        self.artifact = Path(path)
        if not self.artifact.is_file():
            raise ModelFormatError(f"ONNX file {self.artifact} does not exist")
        if provider not in PROVIDERS:
            raise InputError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
        if PROVIDERS[provider] not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"ONNX Runtime has no {PROVIDERS[provider]} here (available: {', '.join(ort.get_available_providers())}); "
                "install the 'gpu' extra on a CUDA machine: pip install 'segedge[gpu]'"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if not spin:  # idle worker threads sleep instead of spinning: leaves the CPU to other pipeline stages
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            chain = provider_chain(provider, self.artifact, Path(cache_dir) if cache_dir else None, device_id)
            available = set(ort.get_available_providers())
            chain = [(name, opts) for name, opts in chain if name in available]
            for _, opts in chain:
                if "trt_engine_cache_path" in opts:
                    Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
            self.session = ort.InferenceSession(
                str(self.artifact), options, providers=[name for name, _ in chain], provider_options=[opts for _, opts in chain]
            )
        except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "INVALID_PROTOBUF" in first:
                first = "not a valid ONNX file (truncated or corrupt?)"
            raise ModelFormatError(f"ONNX Runtime cannot load {self.artifact}: {first[:300]}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFormatError(f"{self.artifact}: expected one (N, 3, H, W) input, found {[i.shape for i in inputs]}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_is_fp16 = inputs[0].type == "tensor(float16)"
        self.output_is_fp32 = outputs[0].type == "tensor(float)"
        self.provider = provider
        meta = self.session.get_modelmeta().custom_metadata_map
        batch_dim = inputs[0].shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else None
        h, w = (d if isinstance(d, int) else None for d in inputs[0].shape[2:])
        self.contract = Contract.from_props(
            meta, str(self.artifact), fallback_size=(h, w),
            fallback_precision=Precision.FP16 if self.input_is_fp16 else Precision.FP32,
        )
        self.metadata = dict(meta)

    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if self.input_is_fp16:
            batch = batch.astype(np.float16)
        if out is not None and self.output_is_fp32:
            # write straight into the caller's buffer: no allocation per frame
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, batch)
            binding.bind_output(self.output_name, "cpu", 0, np.float32, out.shape, out.ctypes.data)
            self.session.run_with_iobinding(binding)
            return out
        logits = self.session.run([self.output_name], {self.input_name: batch})[0]
        return logits if logits.dtype == np.float32 else logits.astype(np.float32)
