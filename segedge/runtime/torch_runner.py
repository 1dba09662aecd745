"""PyTorch eager runner: the reference every deployed variant is compared against."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from segedge.models.checkpoint import Checkpoint, load_checkpoint
from segedge.runtime.base import Runner


class TorchRunner(Runner):
    """Runs a checkpoint in PyTorch eager mode on the CPU, float32, ``channels_last``.

    Args:
        checkpoint: a loaded :class:`Checkpoint`, a ``.pt`` path, or ``None`` for the
            embedded ``segnet-dsc``.

    Raises:
        CheckpointError: unreadable or mismatching checkpoint.
    """

    backend = "torch"

    def __init__(self, checkpoint: Checkpoint | str | os.PathLike[str] | None = None):
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.checkpoint = ckpt
        # a private copy: channels_last (about 2x faster on CPU) must not leak into the caller's model
        self.model = copy.deepcopy(ckpt.model).eval().to(memory_format=torch.channels_last)
        self.preprocess_config = ckpt.preprocess
        self.classes = ckpt.classes
        self.artifact = ckpt.path

    @torch.inference_mode()
    def _infer(self, batch: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        if out is None:
            return logits.contiguous().numpy()
        torch.from_numpy(out).copy_(logits)
        return out
