"""``segedge export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segedge.cli.common import console, handle_errors
from segedge.contract import Precision, Target
from segedge.onnx.options import Exporter


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


def _floats(option: str, text: str | None) -> list[float] | None:
    """``"0.485,0.456,0.406"`` -> three floats; ``None`` stays ``None``."""
    from segedge.errors import InputError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{option} takes three comma-separated numbers, got {text!r}") from None
    if len(values) != 3:
        raise InputError(f"{option} takes three comma-separated numbers (one per channel), got {len(values)}")
    return values


@handle_errors
def export_command(
    source: Annotated[Optional[Path], typer.Argument(help="A segedge checkpoint (.pt), an embedded model by name (segnet-lite0, the default; segnet-dsc), or an ONNX file whose MaxPool-Indices + MaxUnpool / ScatterND unpools to rewrite.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Destination .onnx (written atomically; its directory must exist).")] = Path("model.onnx"),
    target: Annotated[Target, typer.Option(help="tensorrt: standard ops any TensorRT parses; onnxruntime: MaxUnpool, about 2x faster in ONNX Runtime on a CPU.")] = Target.TENSORRT,
    precision: Annotated[Precision, typer.Option(help="fp32, or fp16 (FP16 inside, float32 input and output: what a strongly typed TensorRT network builds as FP16); int8 is `segedge calibrate` or `segedge build-engine --precision int8`.")] = Precision.FP32,
    opset: Annotated[int, typer.Option(help="ONNX opset; 17 is the newest TensorRT 8.6 to 11 all parse. PyTorch's exporter builds at opset 18 and keeps 18 where it cannot convert the graph down (segnet-lite0 here; TensorRT 10 and 11, JetPack 6, parse it); the line after the export names the opset written.")] = 17,
    dynamic_batch: Annotated[bool, typer.Option(help="Symbolic batch dimension.")] = True,
    dynamic_hw: Annotated[Optional[bool], typer.Option("--dynamic-hw/--static-hw", help="Symbolic height and width (multiples of the model's size multiple: 16 for segnet, 32 for segnet-lite0), or the trained size only. Default: symbolic for a model that keeps the frame's aspect (segnet-lite0: every frame is fed at its own aspect-preserving size), static otherwise.", show_default=False)] = None,
    exporter: Annotated[Exporter, typer.Option(help="dynamo (torch.onnx.export(dynamo=True)) or legacy (TorchScript, module-swapped model).")] = Exporter.DYNAMO,
    lint: Annotated[bool, typer.Option(help="Fail when TensorRT's ONNX parser would reject the graph (tensorrt target).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    openvino_ir: Annotated[Optional[Path], typer.Option("--openvino-ir", help="Also write an OpenVINO IR (NAME.xml + NAME.bin) of the exported tensorrt form, the contract kept in its rt_info (needs segedge\\[openvino]).")] = None,
    classes: Annotated[Optional[str], typer.Option(help="ONNX input: comma-separated class names in logit order, embedded in its contract (e.g. background,person,...); a checkpoint carries its own.")] = None,
    mean: Annotated[Optional[str], typer.Option(help="ONNX input: per-channel mean subtracted after scaling to [0, 1], in the model's channel order (ImageNet: 0.485,0.456,0.406).")] = None,
    std: Annotated[Optional[str], typer.Option(help="ONNX input: per-channel std dividing after the mean (ImageNet: 0.229,0.224,0.225).")] = None,
) -> None:
    """Export a checkpoint to ONNX for TensorRT or ONNX Runtime, or rewrite an ONNX file's unpools.

    Max-pooling with indices and max-unpooling (which TensorRT cannot parse) are rewritten into
    an exact form for the target: standard ops with PyTorch's first-max-wins semantics
    (tensorrt) or MaxUnpool (onnxruntime). The rewritten graph is checked bit-identical to the
    exported one in ONNX Runtime, the ONNX carries the preprocessing, classes and palette in its
    metadata, passes onnx.checker and the TensorRT parser lint, and its parity with PyTorch
    (max |diff|, argmax agreement) is printed at the end.

    Any other segmentation ONNX (no unpools) goes through too: --classes, --mean and --std
    declare what its file does not say, and every later step (build-engine, run, report)
    reads them back from the written ONNX.
    """
    from segedge.errors import InputError
    from segedge.onnx.export import export_onnx, rewrite_onnx

    if openvino_ir is not None and target is not Target.TENSORRT:
        raise InputError("--openvino-ir needs --target tensorrt: OpenVINO has no MaxUnpool")
    if openvino_ir is not None and openvino_ir.suffix.lower() != ".xml":
        raise InputError(f"--openvino-ir takes NAME.xml (the weights go to NAME.bin), got {openvino_ir}")
    if openvino_ir is not None:  # both IR files, before the export: neither an input (`ckpt.bin`), nor there without --force
        from segedge.onnx.openvino_ir import check_ir_output

        check_ir_output(openvino_ir, [source, output], force=force)
    if precision is Precision.INT8:
        raise InputError("export writes fp32 or fp16; INT8 needs calibration: `segedge calibrate` or `segedge build-engine --precision int8`")
    if source is not None and source.suffix.lower() == ".onnx":
        if dynamic_hw is not None or exporter is not Exporter.DYNAMO or opset != 17 or not dynamic_batch:
            raise InputError("--dynamic-hw/--static-hw, --no-dynamic-batch, --opset and --exporter apply to checkpoints, not to an ONNX input")
        contract = None
        if classes is not None or mean is not None or std is not None:
            from segedge.onnx.metadata import load_onnx
            from segedge.onnx.export import onnx_contract

            contract = onnx_contract(load_onnx(source), str(source)).override(
                classes=None if classes is None else [c.strip() for c in classes.split(",") if c.strip()],
                mean=_floats("--mean", mean), std=_floats("--std", std),
            )
        result = rewrite_onnx(source, output, target, precision, lint=lint, force=force, contract=contract)
    else:
        if classes is not None or mean is not None or std is not None:
            raise InputError("--classes, --mean and --std apply to an ONNX input; a checkpoint carries its own contract")
        result = export_onnx(
            source, output, opset=opset, dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw, target=target,
            precision=precision, exporter=exporter, lint=lint, force=force,
        )
    print_export(result)
    if openvino_ir is not None:
        from segedge.onnx.openvino_ir import save_ir

        console.print(f"wrote {save_ir(result.path, openvino_ir, force=force, inputs=[source])} and its .bin (OpenVINO IR of {result.path})")
