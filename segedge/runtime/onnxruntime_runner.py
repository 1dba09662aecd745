"""ONNX Runtime runner: FP32, FP16 and Q/DQ INT8 ONNX models on the CPU (or CUDA / TensorRT
execution providers with onnxruntime-gpu)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segedge.contract import Backend, Precision, Provider, Target
from segedge.errors import BackendUnavailableError, InputError, ModelFormatError
from segedge.runtime.onnxruntime_providers import (  # noqa: F401 (provider_chain: public here too)
    PROVIDERS,
    GraphPrecision,
    check_active_provider,
    fp32_math,
    gpu_install_hint,
    graph_precision,
    installed_onnxruntime_builds,
    provider_chain,
)
from segedge.runtime.base import Runner

if TYPE_CHECKING:
    from segedge.onnx.artifact import OnnxArtifact

log = logging.getLogger(__name__)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    The preprocessing, class names and precision come from the model's segedge metadata
    (written by ``segedge export``); an ONNX file without it gets the default
    preprocessing at its input's spatial size, with a warning.

    The file is opened once (:func:`~segedge.onnx.artifact.open_onnx`): the session is
    made from the loaded graph, and the contract, the I/O checks and the calibration record
    come from that one read.

    Args:
        path: ``.onnx`` file with one ``(N, 3, H, W)`` float input and one logits output, or an
            :class:`~segedge.onnx.artifact.OnnxArtifact` already opened.
        provider: ``cpu``, ``cuda`` or ``tensorrt`` (the last two need onnxruntime-gpu; see
            :func:`~segedge.runtime.onnxruntime_providers.provider_chain` for their options
            and fallbacks).
        threads: intra-op threads (0: one per physical core, ONNX Runtime's default).
        spin: let idle intra-op threads spin (lowest latency alone; ``False`` when other
            threads need the cores, as in the pipelined live loop).
        cache_dir: parent of the TensorRT execution provider's engine and timing cache
            folders, which are keyed by the model's SHA-256 (see
            :func:`~segedge.runtime.onnxruntime_providers.tensorrt_cache_dir`).
        device_id: CUDA device for ``cuda`` and ``tensorrt``.

    Attributes:
        precision: from the metadata (``fp32``, ``fp16``, ``int8``).
        fp32_math: ``ieee``, or ``tf32`` for an FP32 model on the ``tensorrt`` provider,
            whose FP32 convolutions run in TF32 on Ampere and newer (TensorRT's default; the
            provider has no option to clear it) unless ``NVIDIA_TF32_OVERRIDE=0`` is set. The
            row label (:attr:`name`) then says ``tf32``. The ``cuda`` provider runs FP32 as
            IEEE FP32 (``use_tf32: 0``).

    Raises:
        InputError: unknown provider.
        ModelFormatError: missing, truncated or invalid ONNX, or not a single-input model.
        BackendUnavailableError: the provider is not in this onnxruntime build, or it failed
            to start and ONNX Runtime fell back to another (see
            :func:`~segedge.runtime.onnxruntime_providers.check_active_provider`).
    """

    backend = Backend.ONNXRUNTIME

    def __init__(
        self, path: str | os.PathLike[str] | OnnxArtifact, provider: Provider | str = Provider.CPU, threads: int = 0, spin: bool = True,
        cache_dir: str | os.PathLike[str] | None = None, device_id: int = 0,
    ):
        import onnxruntime as ort

        from segedge.onnx.artifact import OnnxArtifact, open_onnx  # imports onnx: only when a model is loaded

        if provider not in PROVIDERS:
            raise InputError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
        if PROVIDERS[provider] not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"ONNX Runtime has no {PROVIDERS[provider]} here (available: {', '.join(ort.get_available_providers())}); "
                + gpu_install_hint(installed_onnxruntime_builds())
            )
        source = path if isinstance(path, OnnxArtifact) else open_onnx(path)  # read once: graph, I/O checks, contract
        self.artifact = source.path
        self.contract = source.contract
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if not spin:  # idle worker threads sleep instead of spinning: leaves the CPU to other pipeline stages
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 1 if os.environ.get("SEGEDGE_DEBUG") == "1" else 3
        extra = {}
        if source.calibration.get("base") == Precision.FP16.value:
            # ONNX Runtime's WeightBiasQuantization (level 1) turns the float bias of a DQ -> Conv
            # into int32 with the scale input_scale x weight_scale computed in the scales' type:
            # FP16 there under- and overflows (measured on the 8-epoch segnet: argmax agreement
            # with PyTorch 47% with it, 97.5% without; docs/benchmarks.md). TensorRT adds the
            # bias in float itself, so the Q/DQ graph is right and only this pass is skipped.
            extra["disabled_optimizers"] = ["WeightBiasQuantization"]
        try:
            graph = GraphPrecision(int8=False, fp16=False)  # what the TensorRT provider must enable, from the graph
            if provider == Provider.TENSORRT:
                graph = graph_precision(source.model)
            chain = provider_chain(provider, self.artifact, Path(cache_dir) if cache_dir else None, device_id, graph)
            available = set(ort.get_available_providers())
            chain = [(name, opts) for name, opts in chain if name in available]
            for _, opts in chain:
                if "trt_engine_cache_path" in opts:
                    Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
            self.session = ort.InferenceSession(
                source.serialized(), options, providers=[name for name, _ in chain], provider_options=[opts for _, opts in chain], **extra,
            )
        except Exception as exc:  # InvalidGraph, Fail, NotImplemented, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"ONNX Runtime cannot load {self.artifact}: {first[:300]}") from None
        check_active_provider(provider, self.session.get_providers(), self.artifact)
        inputs, outputs = source.inputs, source.outputs
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_is_fp16 = inputs[0].type == "tensor(float16)"
        self.output_is_fp32 = outputs[0].type == "tensor(float)"
        self.provider = provider
        batch_dim = inputs[0].shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else None
        self.fp32_math = fp32_math(provider, self.precision)
        if provider == Provider.CPU and self.contract.precision is Precision.INT8 and source.calibration.get("target") == Target.TENSORRT.value:
            log.warning(
                "%s is INT8 laid out for TensorRT: ONNX Runtime on a CPU dequantizes it and runs float convolutions, "
                "slower than FP32 (0.2-0.7x, docs/benchmarks.md). For a CPU, run build-engine --precision int8 on the "
                "export of `segedge export --target onnxruntime` (integer kernels), or install segedge[openvino], "
                "which runs the INT8 of a --target tensorrt export on integer kernels (--backend auto picks it)", self.artifact.name,
            )

    @property
    def name(self) -> str:
        """``<artifact name> (onnxruntime <precision label>)``; ``tf32`` in place of ``fp32``
        where the FP32 convolutions run in TF32 (see :attr:`fp32_math`)."""
        label = "tf32" if self.fp32_math == "tf32" else self.precision_label
        return f"{self.artifact.name} ({self.backend} {label})"

    def close(self) -> None:
        """Release the session (its arenas, and device memory on the CUDA and TensorRT providers)."""
        self.session = None

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
