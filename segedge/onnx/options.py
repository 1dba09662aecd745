"""Choices of ``segedge export`` that are not part of the deployment contract (no torch import,
so the command line can offer them in ``--help``)."""

from __future__ import annotations

from segedge.contract import Word


class Exporter(Word):
    """PyTorch exporter."""

    DYNAMO = "dynamo"  # torch.onnx.export(dynamo=True)
    LEGACY = "legacy"  # TorchScript, on the module-swapped model (tensorrt target only)
