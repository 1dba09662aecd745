"""OpenVINO IR (``.xml`` graph + ``.bin`` weights) from a segedge ONNX, with the deployment
contract kept in the IR's ``rt_info`` (``<rt_info><segedge><preprocess value=.../>...``),
which :class:`~segedge.runtime.openvino_runner.OpenVINORunner` reads back.

Follows the OpenVINO Python API reference (``openvino.convert_model``, ``Model.set_rt_info``,
``openvino.save_model``). OpenVINO has no MaxUnpool, so the source is the ``tensorrt`` form.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from segedge.errors import BackendUnavailableError, ExportError, InputError, ModelFormatError
from segedge.export.metadata import load_onnx, read_metadata

RT_INFO_KEY = "segedge"  # IR rt_info section holding the contract: rt_info["segedge"][<key>] = <metadata value>


def import_openvino():
    """The ``openvino`` module.

    Raises:
        BackendUnavailableError: openvino is not installed (the message names the extra).
    """
    try:
        import openvino
    except ImportError:
        raise BackendUnavailableError("OpenVINO is not installed; install the extra: pip install 'segedge[openvino]'") from None
    return openvino


def onnx_contract(path: Path) -> dict[str, str]:
    """The segedge metadata of an ONNX file (keys without the ``segedge.`` prefix).

    Raises:
        ModelFormatError: unreadable ONNX, or a MaxUnpool graph (``--target onnxruntime``), which
            OpenVINO cannot run.
    """
    model = load_onnx(path)
    if any(node.op_type == "MaxUnpool" for node in model.graph.node):
        raise ModelFormatError(
            f"{path} uses MaxUnpool (the onnxruntime form), which OpenVINO cannot run; "
            "export it with `segedge export --target tensorrt` (or use --backend onnxruntime)"
        )
    return read_metadata(model)


def save_ir(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], fp16_weights: bool = False, force: bool = False) -> Path:
    """Convert a ``tensorrt``-form segedge ONNX to an OpenVINO IR.

    Args:
        onnx_path: ONNX from ``segedge export --target tensorrt`` (FP32, FP16 or Q/DQ INT8).
        output: destination ``.xml``; the weights go to the same stem with ``.bin``. Both are
            written into a temporary folder beside it and renamed into place (``.bin`` first).
        fp16_weights: store FP32 weights as FP16 in the ``.bin`` (half the size; OpenVINO
            decompresses them at load).
        force: overwrite an existing IR.

    Returns:
        The ``.xml`` path.

    Raises:
        InputError: ``output`` not ending in ``.xml``, exists without ``force``, or its folder is missing.
        ModelFormatError: unreadable ONNX, or a MaxUnpool graph.
        BackendUnavailableError: openvino is not installed.
        ExportError: OpenVINO failed to convert the graph.
    """
    output = Path(output)
    if output.suffix.lower() != ".xml":
        raise InputError(f"an OpenVINO IR is written as NAME.xml (+ NAME.bin), got {output}")
    if not output.parent.is_dir():
        raise InputError(f"output directory {output.parent} does not exist")
    if output.exists() and not force:
        raise InputError(f"{output} exists; pass --force to overwrite it")
    ov = import_openvino()
    meta = onnx_contract(Path(onnx_path))
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpConversionFailure, GeneralFailure, ...
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {(lines[-1] if lines else type(exc).__name__)[:300]}") from None
    for key, value in meta.items():
        model.set_rt_info(value, [RT_INFO_KEY, key])
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.") as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(model, str(staged), compress_to_fp16=fp16_weights)
        os.replace(staged.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(staged, output)
    return output
