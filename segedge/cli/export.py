"""``segedge export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors


@handle_errors
def export_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="segedge checkpoint (.pt); default: the embedded segnet-dsc.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Destination .onnx (written atomically).")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(help="ONNX opset; 17 is the newest TensorRT 8.6 to 11 all parse.")] = 17,
    dynamic_batch: Annotated[bool, typer.Option(help="Symbolic batch dimension.")] = True,
) -> None:
    """Export a checkpoint to ONNX for TensorRT and ONNX Runtime (exact unpool rewrite, parity check).

    Max-pooling with indices and max-unpooling (which TensorRT cannot parse and PyTorch cannot
    export) are rewritten into standard operators with PyTorch's exact first-max-wins
    semantics; the rewrite is checked bit-identical before export. The ONNX carries the
    preprocessing and class names in its metadata, passes onnx.checker, and is compared
    against PyTorch in ONNX Runtime (max |diff|, argmax agreement), printed at the end.
    """
    from segedge.export.onnx import export_onnx

    result = export_onnx(checkpoint, output, opset=opset, dynamic_batch=dynamic_batch)
    ops = ", ".join(f"{op} {n}" for op, n in list(result.op_counts.items())[:8])
    console.print(f"wrote {result.path} (opset {result.opset}, {result.nodes} nodes: {ops}, ...) in {result.seconds:.1f} s")
    console.print(f"parity vs PyTorch (ONNX Runtime): {result.parity.summary()}")
