"""OpenVINO IR (``.xml`` graph + ``.bin`` weights) from a segedge ONNX, with the deployment
contract kept in the IR's ``rt_info`` (``<rt_info><segedge><preprocess value=.../>...``) by
:meth:`segedge.contract.Contract.write_openvino`, which
:class:`~segedge.runtime.openvino_runner.OpenVINORunner` reads back.

The two files are one artifact: the ``.xml`` also records the ``.bin``'s SHA-256 and is
published last (:func:`segedge._io.atomic_pair`), so an interrupted or concurrent export is a
refused mismatch, never an IR whose graph reads another export's weights.

Follows the OpenVINO Python API reference (``openvino.convert_model``, ``Model.set_rt_info``,
``openvino.save_model``). OpenVINO has no MaxUnpool, so the source is the ``tensorrt`` form.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from segedge._io import atomic_pair, check_output, private_directory, resolved
from segedge.contract import Contract
from segedge.errors import BackendUnavailableError, ExportError, InputError, ModelFormatError
from segedge.onnx.metadata import file_sha256
from segedge.onnx.artifact import open_onnx


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


def onnx_contract(path: Path) -> Contract:
    """The contract of an ONNX file OpenVINO is to run, the file opened once
    (:func:`~segedge.onnx.artifact.open_onnx`: I/O checked, one note when defaults are assumed).

    Raises:
        ModelFormatError: unreadable ONNX, not a segmentation network, bad metadata, or a
            MaxUnpool graph (``--target onnxruntime``), which OpenVINO cannot run.
    """
    source = open_onnx(path)
    if "MaxUnpool" in source.op_types:
        raise ModelFormatError(
            f"{path} uses MaxUnpool (the onnxruntime form), which OpenVINO cannot run; "
            "export it with `segedge export --target tensorrt` (or use --backend onnxruntime)"
        )
    return source.contract


def weights_path(xml: str | os.PathLike[str]) -> Path:
    """``NAME.xml`` -> ``NAME.bin``, where OpenVINO reads an IR's weights from."""
    return Path(xml).with_suffix(".bin")


def check_ir_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (), force: bool = False) -> tuple[Path, Path]:
    """Check both files of an IR output before any work (``export --openvino-ir`` checks them
    before exporting): ``NAME.xml`` and ``NAME.bin`` are each new (or ``force``), in a
    writable folder, and neither is one of the command's inputs, nor each other's.

    Args:
        output: ``NAME.xml``.
        inputs: files the command reads or writes before the IR (its checkpoint, its ONNX).
        force: replace an existing IR.

    Returns:
        ``(xml, bin)`` paths.

    Raises:
        InputError: not ``NAME.xml``, or one of the above (one line naming the file).
    """
    xml = Path(output)
    if xml.suffix.lower() != ".xml":
        raise InputError(f"an OpenVINO IR is written as NAME.xml (+ NAME.bin), got {xml}")
    weights = weights_path(xml)
    inputs = [i for i in inputs if i is not None]
    check_output(xml, inputs, force=force, option="--openvino-ir")
    check_output(weights, inputs, force=force, option="--openvino-ir weights")
    for other in inputs:  # a file not written yet (the export's own -o): two writes of one name
        for option, path in (("--openvino-ir", xml), ("--openvino-ir weights", weights)):
            if resolved(other) == resolved(path):
                raise InputError(f"{option} {path} is also the output {other}; give the IR another name")
    return xml, weights


def save_ir(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    fp16_weights: bool = False,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Convert a ``tensorrt``-form segedge ONNX to an OpenVINO IR.

    Args:
        onnx_path: ONNX from ``segedge export --target tensorrt`` (FP32, FP16 or Q/DQ INT8).
        output: destination ``.xml``; the weights go to the same stem with ``.bin``. Both are
            staged in a private folder, then published as a pair, ``.bin`` first and the
            ``.xml`` (holding the ``.bin``'s SHA-256) last.
        fp16_weights: store FP32 weights as FP16 in the ``.bin`` (half the size; OpenVINO
            decompresses them at load).
        force: overwrite an existing IR (both files).
        inputs: other files the calling command reads (its checkpoint): neither IR file may
            be one of them (``onnx_path`` always counts).

    Returns:
        The ``.xml`` path.

    Raises:
        InputError: ``output`` not ending in ``.xml``; ``NAME.xml`` or ``NAME.bin`` exists
            without ``force``, is an input, or its folder is missing.
        ModelFormatError: unreadable ONNX, or a MaxUnpool graph.
        BackendUnavailableError: openvino is not installed.
        ExportError: OpenVINO failed to convert the graph.
    """
    xml, weights = check_ir_output(output, [onnx_path, *inputs], force)
    ov = import_openvino()
    contract = onnx_contract(Path(onnx_path))
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpConversionFailure, GeneralFailure, ...
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {(lines[-1] if lines else type(exc).__name__)[:300]}") from None
    with private_directory("ir") as work:
        ov.save_model(model, str(work / "weights.xml"), compress_to_fp16=fp16_weights)  # the .bin, to hash
        digest = file_sha256(work / "weights.bin")
        contract.write_openvino(model, weights_sha256=digest)
        ov.save_model(model, str(work / "ir.xml"), compress_to_fp16=fp16_weights)
        if file_sha256(work / "ir.bin") != digest:
            raise ExportError(f"OpenVINO wrote different weights for {onnx_path} twice; the IR cannot record its .bin")
        with atomic_pair(weights, xml, overwrite=force) as (bin_tmp, xml_tmp):
            shutil.copyfile(work / "ir.bin", bin_tmp)
            shutil.copyfile(work / "ir.xml", xml_tmp)
    return xml
