"""``segedge export``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


class Target(str, Enum):
    tensorrt = "tensorrt"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class ExportPrecision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


class Exporter(str, Enum):
    dynamo = "dynamo"
    legacy = "legacy"


def print_export(result) -> None:
    ops = ", ".join(f"{op} {n}" for op, n in list(result.op_counts.items())[:8])
    console.print(
        f"wrote {result.path}: {result.target} form, {result.precision}, opset {result.opset}, "
        f"{result.unpool_sites} unpool pairs rewritten, {result.nodes_exported} nodes as exported -> {result.nodes} "
        f"after simplification and rewrite ({ops}, ...) in {result.seconds:.1f} s"
    )
    if result.lint is not None:
        console.print(result.lint.summary())
        for issue in result.lint.issues:
            console.print(f"  {issue}")
    if result.parity is not None:
        console.print(f"parity vs PyTorch (ONNX Runtime): {result.parity.summary()}")
    elif result.unpool_sites:
        console.print("rewritten graph checked bit-identical to the input in ONNX Runtime (tie-heavy and random inputs)")
    else:
        console.print("no MaxPool-Indices unpool in the input: nothing to rewrite")


def _export_ir(source: Path | None, output: Path, precision: str, opset: int, dynamic_batch: bool, dynamic_hw: bool, exporter: str, force: bool) -> None:
    """``--target openvino``: the tensorrt-form ONNX (exported, or the given ONNX file), then its IR."""
    import tempfile

    from segedge.errors import InputError
    from segedge.export.onnx import export_onnx
    from segedge.export.openvino_ir import save_ir

    if output.suffix.lower() != ".xml":
        raise InputError(f"--target openvino writes an IR: give -o NAME.xml (the weights go to NAME.bin), got {output}")
    if output.exists() and not force:
        raise InputError(f"{output} exists; pass --force to overwrite it")
    if source is not None and source.suffix.lower() == ".onnx":
        console.print(f"wrote {save_ir(source, output, force=force)} and its .bin from {source}")
        return
    with tempfile.TemporaryDirectory(prefix="segedge-ir-") as tmp:
        result = export_onnx(
            source, Path(tmp) / "model.onnx", opset=opset, dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw,
            target="tensorrt", precision=precision, exporter=exporter, lint=False,
        )
        print_export(result)
        console.print(f"wrote {save_ir(result.path, output, force=force)} and its .bin (OpenVINO IR of the tensorrt form above)")


@handle_errors
def export_command(
    source: Annotated[Optional[Path], typer.Argument(help="A segedge checkpoint (.pt; default: the embedded segnet-dsc), or an ONNX file whose MaxPool-Indices + MaxUnpool / ScatterND unpools to rewrite.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Destination .onnx, or .xml for --target openvino (written atomically; its directory must exist).")] = Path("model.onnx"),
    target: Annotated[Target, typer.Option(help="tensorrt: standard ops any TensorRT parses; onnxruntime: MaxUnpool, about 2x faster in ONNX Runtime on a CPU; openvino: an OpenVINO IR (-o NAME.xml + NAME.bin) of the tensorrt form, contract in its rt_info (needs segedge[openvino]).")] = Target.tensorrt,
    precision: Annotated[ExportPrecision, typer.Option(help="fp32, or fp16 (FP16 inside, float32 input and output: what a strongly typed TensorRT network builds as FP16).")] = ExportPrecision.fp32,
    opset: Annotated[int, typer.Option(help="ONNX opset; 17 is the newest TensorRT 8.6 to 11 all parse.")] = 17,
    dynamic_batch: Annotated[bool, typer.Option(help="Symbolic batch dimension.")] = True,
    dynamic_hw: Annotated[bool, typer.Option("--dynamic-hw", help="Symbolic height and width (multiples of 2**stages = 16).")] = False,
    exporter: Annotated[Exporter, typer.Option(help="dynamo (torch.onnx.export(dynamo=True)) or legacy (TorchScript, module-swapped model).")] = Exporter.dynamo,
    lint: Annotated[bool, typer.Option(help="Fail when TensorRT's ONNX parser would reject the graph (tensorrt target).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Export a checkpoint to ONNX for TensorRT or ONNX Runtime, or rewrite an ONNX file's unpools.

    Max-pooling with indices and max-unpooling (which TensorRT cannot parse) are rewritten into
    an exact form for the target: standard ops with PyTorch's first-max-wins semantics
    (tensorrt) or MaxUnpool (onnxruntime). The rewritten graph is checked bit-identical to the
    exported one in ONNX Runtime, the ONNX carries the preprocessing, classes and palette in its
    metadata, passes onnx.checker and the TensorRT parser lint, and its parity with PyTorch
    (max |diff|, argmax agreement) is printed at the end.
    """
    from segedge.errors import InputError
    from segedge.export.onnx import export_onnx, rewrite_onnx

    if target is Target.openvino:
        _export_ir(source, output, precision.value, opset, dynamic_batch, dynamic_hw, exporter.value, force)
        return
    if source is not None and source.suffix.lower() == ".onnx":
        if dynamic_hw or exporter is not Exporter.dynamo or opset != 17 or not dynamic_batch:
            raise InputError("--dynamic-hw, --no-dynamic-batch, --opset and --exporter apply to checkpoints, not to an ONNX input")
        result = rewrite_onnx(source, output, target.value, precision.value, lint=lint, force=force)
    else:
        result = export_onnx(
            source, output, opset=opset, dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw, target=target.value,
            precision=precision.value, exporter=exporter.value, lint=lint, force=force,
        )
    print_export(result)
