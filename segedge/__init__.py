"""segedge: take a segmentation network from PyTorch to an edge device (ONNX, FP16, INT8 Q/DQ,
TensorRT, live video) and prove that nothing was lost on the way.

The public API (``import segedge``); names import lazily, so ``import segedge`` pulls in no
torch or onnxruntime until a function needs it::

    model = segedge.create_model("segnet-dsc")        # or any nn.Module with a segedge.Contract
    segedge.export(model, "m.onnx", contract)         # ONNX with the contract embedded, parity-checked
    segedge.build("m.onnx", "m-int8.onnx", "int8", calibration="frames.mp4")
    runner = segedge.load("m-int8.onnx")              # any artifact -> Runner
    class_map, overlay = runner.segment(frame)        # one BGR frame
    report = segedge.compare("m.onnx", ["m-int8.onnx"], "clip.mp4")   # -> DriftReport
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # the deployment contract and its vocabulary
    "Contract": "segedge.contract",
    "PreprocessConfig": "segedge.contract",
    "Precision": "segedge.contract",
    "Target": "segedge.contract",
    "Backend": "segedge.contract",
    "CalibrationMethod": "segedge.contract",
    "Provider": "segedge.contract",
    # models
    "create_model": "segedge.models.registry",
    "list_models": "segedge.models.registry",
    "register_model": "segedge.models.registry",
    "Checkpoint": "segedge.models.checkpoint",
    "load_checkpoint": "segedge.models.checkpoint",
    "save_checkpoint": "segedge.models.checkpoint",
    # one call per step (the export *function*: ONNX export code lives in the subpackage segedge.onnx,
    # as torch.onnx.export lives in torch.onnx, so no package and function share a name)
    "export": "segedge.pipeline.api",
    "calibration_set": "segedge.pipeline.api",
    "quantize": "segedge.pipeline.api",
    "build": "segedge.pipeline.api",
    "load": "segedge.pipeline.api",
    "compare": "segedge.pipeline.api",
    "preprocess": "segedge.data.transforms",
    "Runner": "segedge.runtime.base",
    "DriftReport": "segedge.report.schema",
    # errors
    "SegEdgeError": "segedge.errors",
    "InputError": "segedge.errors",
    "ExportError": "segedge.errors",
    "BackendUnavailableError": "segedge.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segedge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
