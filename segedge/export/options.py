"""Choices of ``segedge export`` that are not part of the deployment contract (no torch import,
so the command line can offer them in ``--help``)."""

from __future__ import annotations

from enum import Enum


class Exporter(str, Enum):
    """PyTorch exporter."""

    DYNAMO = "dynamo"  # torch.onnx.export(dynamo=True)
    LEGACY = "legacy"  # TorchScript, on the module-swapped model (tensorrt target only)

    def __str__(self) -> str:
        return self.value
