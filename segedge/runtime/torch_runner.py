"""PyTorch eager runner: the reference every deployed variant is compared against, on the
CPU or on CUDA (FP16 autocast), and the GPU fallback where TensorRT is absent."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from segedge.contract import Backend, Precision, Resize
from segedge.errors import BackendUnavailableError, InputError
from segedge.models.checkpoint import Checkpoint, load_checkpoint
from segedge.runtime.base import Runner


def use_ieee_fp32() -> None:
    """Make CUDA FP32 convolutions and matrix multiplications IEEE FP32, not TF32.

    PyTorch runs cuDNN convolutions in TF32 by default on Ampere and newer
    (``torch.backends.cudnn.conv.fp32_precision == "tf32"``): 10 mantissa bits, which
    moves SegNet's logits (max-unpool turns near-ties into moved values), so an "FP32"
    reference would not be FP32. This sets ``torch.backends.cudnn.conv.fp32_precision``
    and ``torch.backends.cuda.matmul.fp32_precision`` to ``"ieee"`` (PyTorch 2.9+; older
    releases: ``allow_tf32 = False``). The setting is process-wide. Source: PyTorch notes,
    "TensorFloat-32 (TF32) on Ampere (and later) devices".
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:  # the legacy switches (mixing them with the new API is an error in PyTorch 2.9+)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


class TorchRunner(Runner):
    """Runs a checkpoint in PyTorch eager mode, ``channels_last``.

    Args:
        checkpoint: a loaded :class:`Checkpoint`, a ``.pt`` path, or ``None`` for the
            embedded ``segnet-dsc``.
        device: ``cpu`` or ``cuda`` / ``cuda:N``. On CUDA, FP32 is IEEE FP32: TF32 is turned
            off for the process (see :func:`use_ieee_fp32`).
        fp16: run under ``torch.autocast("cuda", torch.float16)`` (CUDA only); logits are
            returned as float32 either way.
        threads: PyTorch intra-op threads on the CPU (0: leave PyTorch's setting, one per
            core). PyTorch's setting is process-wide, so a value here applies to every
            model of the process. The live loop asks for 1 with one inference worker per
            core: OpenMP's parallel regions stall whenever the decoder or encoder threads
            preempt one of their threads. Measured here on 2 cores with the embedded
            model: two 1-thread workers 23 frames/s against 11 for one 2-thread worker
            thread (34 against 25 when the 2-thread stream runs in the main thread).

    Raises:
        CheckpointError: unreadable or mismatching checkpoint.
        BackendUnavailableError: ``cuda`` asked for where PyTorch sees no CUDA device.
        InputError: ``fp16`` on the CPU.
    """

    backend = Backend.TORCH

    def __init__(self, checkpoint: Checkpoint | str | os.PathLike[str] | None = None, device: str = "cpu", fp16: bool = False, threads: int = 0):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"PyTorch sees no CUDA device (torch {torch.__version__}); use device cpu, or a CUDA build of PyTorch on a GPU machine")
        if fp16 and not device.startswith("cuda"):
            raise InputError("FP16 autocast runs on CUDA only; use device cuda, or fp16=False on the CPU")
        if threads < 0:
            raise InputError(f"threads must be >= 0 (0: PyTorch's default), got {threads}")
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        if threads and torch.device(device).type == "cpu":
            torch.set_num_threads(threads)
        if torch.device(device).type == "cuda":
            use_ieee_fp32()
        self.checkpoint = ckpt
        self.device = torch.device(device)
        self.fp16 = fp16
        # a private copy: channels_last (about 2x faster on CPU, tensor-core friendly on GPU) must not leak into the caller's model
        self.model = copy.deepcopy(ckpt.model).eval().to(self.device, memory_format=torch.channels_last)
        # eager PyTorch takes any batch; a model trained to see each frame at its own aspect, any multiple of its size multiple
        dynamic = ("batch", "height", "width") if ckpt.preprocess.resize == Resize.ASPECT else ("batch",)
        self.contract = ckpt.contract.replace(precision=Precision.FP16 if fp16 else Precision.FP32, dynamic=dynamic)
        self.artifact = ckpt.path

    def close(self) -> None:
        """Drop the private model copy (and, on CUDA, return its cached memory to the driver)."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.fp16):
            logits = self.model(x)
        logits = logits.float()
        if self.device.type != "cpu":
            logits = logits.cpu()
        if out is None:
            return logits.contiguous().numpy()
        torch.from_numpy(out).copy_(logits)
        return out
