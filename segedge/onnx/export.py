"""Export a SegNet-family checkpoint (or rewrite a foreign ONNX) for TensorRT or ONNX Runtime,
and prove nothing changed.

From a checkpoint (default exporter ``torch.onnx.export(dynamo=True)``):

1. export the model as it is; PyTorch's exporter writes MaxPool with ``Indices`` and turns
   ``max_unpool2d`` into index arithmetic and a ``ScatterND``, which TensorRT rejects;
2. rewrite every pool/unpool pair at graph level (:mod:`segedge.onnx.rewrite`):
   the ``standard`` form for ``--target tensorrt`` (default) or ONNX's ``MaxUnpool`` for
   ``--target onnxruntime``, and check the rewritten graph bit-identical to the exported one
   in ONNX Runtime;
3. embed the deployment contract (:mod:`segedge.onnx.metadata`), convert to FP16 if asked,
   run ``onnx.checker`` (full check) and the TensorRT lint (:mod:`segedge.onnx.lint`);
4. compare ONNX Runtime against the original PyTorch model (max |diff|, argmax agreement);
5. rename into place (nothing is written on failure).

The legacy TorchScript exporter (``exporter="legacy"``) cannot emit ``max_unpool2d`` at
all; it exports the module-swapped model (:mod:`segedge.onnx.unpool`) instead.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

import segedge
from segedge._io import atomic_path, check_output
from segedge.data.transforms import PreprocessConfig, preprocess
from segedge.errors import ExportError, InputError
from segedge.onnx.lint import LintReport, lint_tensorrt
from segedge.contract import Contract, Precision, Resize, Target
from segedge.onnx.options import Exporter
from segedge.onnx.metadata import check_finite_weights, file_sha256, load_onnx, quiet_exporter, read_metadata
from segedge.onnx.rewrite import outputs_identical, rewrite_unpool
from segedge.onnx.unpool import make_exportable, tie_heavy_probe
from segedge.models.checkpoint import Checkpoint, load_checkpoint, size_multiple

DEFAULT_OPSET = 17  # the newest opset TensorRT 8.6 to 11 all parse
INPUT_NAME, OUTPUT_NAME = "input", "logits"
TARGETS = {Target.TENSORRT: "standard", Target.ONNXRUNTIME: "native"}  # target -> unpool form


EXPORTERS = tuple(Exporter)
PRECISIONS = (Precision.FP32, Precision.FP16)
MIN_AGREEMENT = {Precision.FP32: 0.999, Precision.FP16: 0.99}  # argmax agreement with PyTorch below which export fails


@dataclass
class Parity:
    """Agreement of a deployed model's logits with the PyTorch reference on the same inputs."""

    images: int  # number of images compared
    max_abs_diff: float  # max |logit difference| over all elements
    mean_abs_diff: float  # mean |logit difference|
    argmax_agreement: float  # fraction of pixels with the same argmax class, in [0, 1]

    def summary(self) -> str:
        return (
            f"max |diff| {self.max_abs_diff:.3g}, mean |diff| {self.mean_abs_diff:.3g}, "
            f"argmax agreement {100 * self.argmax_agreement:.3f}% over {self.images} images"
        )


@dataclass
class ExportResult:
    path: Path
    opset: int
    target: str  # tensorrt | onnxruntime
    precision: str  # fp32 | fp16
    op_counts: dict[str, int]  # final graph
    nodes_exported: int  # as the exporter wrote them, before simplification and the rewrite
    unpool_sites: int  # pool/unpool pairs rewritten
    parity: Parity | None  # against PyTorch (None when the input was an ONNX file)
    lint: LintReport | None
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> int:
        return sum(self.op_counts.values())


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Compare two ``(N, C, H, W)`` logit arrays (argmax over C).

    Raises:
        ExportError: either array holds NaN or infinity (NaN's argmax is 0 on both sides,
            so agreement alone would pass a broken model).
    """
    for name, logits in (("PyTorch", reference), ("ONNX Runtime", candidate)):
        if not np.isfinite(logits).all():
            bad = int(np.size(logits) - np.isfinite(logits).sum())
            raise ExportError(f"{name} logits hold {bad} NaN or infinite values (non-finite weights?); the model cannot be deployed")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = float((reference.argmax(1) == candidate.argmax(1)).mean())
    return Parity(len(reference), float(diff.max()), float(diff.mean()), agree)


def parity_inputs(config: PreprocessConfig, images: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Inputs for parity checks: the given BGR images, or a real photo (scikit-image's
    ``chelsea``, a cat) and its mirror, uniform noise and a tie-heavy probe.

    Returns:
        ``(N, 3, height, width)`` float32 model inputs.
    """
    if images:
        return preprocess(list(images), config)
    from segedge.data.demo import demo_image

    cat = demo_image()
    batch = preprocess([cat, cat[:, ::-1].copy()], config)
    rng = np.random.default_rng(0)
    noise = rng.random((1, 3, *config.size), dtype=np.float32)
    probe = tie_heavy_probe((1, 3, *config.size), seed=1).clamp(0, 1).numpy()
    return np.concatenate([batch, noise, probe])


def onnxruntime_logits(path: str | os.PathLike[str], batch: np.ndarray) -> np.ndarray:
    """Logits of an ONNX file in ONNX Runtime (CPU, full graph optimisation) for a float32 batch."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0].astype(np.float32)


def check_output_path(output: str | os.PathLike[str], force: bool, source: str | os.PathLike[str] | None = None) -> Path:
    """Refuse an output in a missing or read-only directory, a folder, an existing output
    without ``force``, or an output that is the input (see :func:`segedge._io.check_output`).

    Raises:
        InputError: one of the above.
    """
    return check_output(output, [source], force=force)


def onnx_contract(model: onnx.ModelProto, source: str = "ONNX model") -> Contract:
    """The contract an ONNX declares; for a foreign model, defaults at its input's static
    size (see :meth:`Contract.from_metadata`).

    Raises:
        ModelFormatError: malformed metadata, or no metadata and a dynamic input size.
    """
    return Contract.from_onnx(model, source)  # a missing record falls back to the graph's own input size


def _output_classes(model: onnx.ModelProto) -> int | None:
    dims = model.graph.output[0].type.tensor_type.shape.dim if model.graph.output else []
    return dims[1].dim_value if len(dims) == 4 and dims[1].HasField("dim_value") and dims[1].dim_value > 0 else None


def export_contract(ckpt: Checkpoint, target: Target | str, dynamic: list[str]) -> Contract:
    """The deployment contract of a checkpoint's export (see :mod:`segedge.contract`)."""
    return ckpt.contract.replace(
        target=Target(target), precision=Precision.FP32, dynamic=tuple(dynamic), size_multiple=size_multiple(ckpt.model),
        segedge_version=segedge.__version__, checkpoint_sha256=file_sha256(ckpt.path) if ckpt.path is not None else "",
    )


def _export_graph(model: torch.nn.Module, example: torch.Tensor, opset: int, exporter: Exporter, dynamic: list[str], multiple: int):
    """Run a PyTorch exporter; returns the ONNX proto and its node count before simplification."""
    if exporter is Exporter.LEGACY:
        import io

        buffer = io.BytesIO()
        axes = {0: "batch"} if "batch" in dynamic else {}
        axes.update({2: "height", 3: "width"} if "height" in dynamic else {})
        torch.onnx.export(
            make_exportable(model), (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if axes else None,
            do_constant_folding=True,
        )
        proto = onnx.load_from_string(buffer.getvalue())
        from onnxscript import optimizer

        return optimizer.optimize(proto), len(proto.graph.node)  # constant folding and dead-code elimination
    shapes: dict[int, object] = {}
    if "batch" in dynamic:
        shapes[0] = torch.export.Dim("batch", min=1, max=4096)
    if "height" in dynamic:
        shapes[2] = multiple * torch.export.Dim("height_blocks", min=1, max=4096 // multiple)
        shapes[3] = multiple * torch.export.Dim("width_blocks", min=1, max=4096 // multiple)
    program = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=(shapes,) if shapes else None, optimize=False, verbose=False,
    )
    exported = len(program.model_proto.graph.node)
    program.optimize()  # constant folding, common-subexpression and dead-code elimination
    return program.model_proto, exported


def _finish(model: onnx.ModelProto, precision: Precision, lint: bool, target: Target) -> tuple[onnx.ModelProto, LintReport | None]:
    """FP16 conversion, checker and lint on an in-memory model; returns what is to be saved."""
    if precision is Precision.FP16:
        from segedge.onnx.fp16 import to_fp16

        model = to_fp16(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the export: {str(exc).splitlines()[0][:300]}") from None
    report = lint_tensorrt(model) if target is Target.TENSORRT else None
    if lint and report is not None and not report.ok:
        listed = "; ".join(str(issue) for issue in report.errors[:4])
        raise ExportError(f"the graph would not parse in TensorRT ({len(report.errors)} errors): {listed} (--no-lint to write it anyway)")
    return model, report


def export_onnx(
    checkpoint: Checkpoint | str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamic_hw: bool | None = None,
    target: Target | str = Target.TENSORRT,
    precision: Precision | str = Precision.FP32,
    exporter: Exporter | str = Exporter.DYNAMO,
    parity_images: Sequence[np.ndarray] | None = None,
    lint: bool = True,
    force: bool = False,
) -> ExportResult:
    """Export a checkpoint to ONNX with an exact unpool form and a parity check.

    Args:
        checkpoint: loaded :class:`Checkpoint`, a path, or ``None`` for the embedded model.
        output: destination ``.onnx`` (written atomically; untouched on failure).
        opset: ONNX opset (default 17; the range TensorRT 8.6 to 11 all parse).
        dynamic_batch: symbolic batch dimension.
        dynamic_hw: symbolic height and width, constrained to multiples of ``2 ** stages``;
            ``None`` (default): on for a checkpoint whose preprocessing keeps the frame's aspect
            (``resize="aspect"``: every frame is fed at its own aspect-preserving size), off otherwise.
        target: ``tensorrt`` (standard ops, TensorRT-parseable) or ``onnxruntime``
            (MaxPool Indices + MaxUnpool, about 2x faster in ONNX Runtime on a CPU).
        precision: ``fp32``, or ``fp16`` (FP16 weights and activations, float32 input and output).
        exporter: ``dynamo`` (default) or ``legacy`` (TorchScript; ``tensorrt`` target only).
        parity_images: BGR uint8 images for the parity check (default: :func:`parity_inputs`).
        lint: fail on a graph TensorRT's parser would reject (``tensorrt`` target).
        force: overwrite an existing ``output``.

    Raises:
        InputError: bad option, missing output directory, existing output without ``force``.
        CheckpointError: unreadable checkpoint.
        ExportError: exporter, rewrite, checker or lint failure, or parity below
            :data:`MIN_AGREEMENT`.
    """
    started = time.perf_counter()
    try:
        target, exporter, precision = Target(target), Exporter(exporter), Precision(precision)
    except ValueError:
        target = exporter = precision = None  # type: ignore[assignment]
    if target is None or precision not in PRECISIONS:
        raise InputError(
            f"target must be one of {[t.value for t in Target]}, exporter one of {[e.value for e in Exporter]}, "
            f"precision one of {[p.value for p in PRECISIONS]}"
        )
    if not 9 <= opset <= 20:
        raise InputError(f"opset {opset} is outside 9..20; TensorRT 8.6 parses up to 17, TensorRT 10.x up to 20")
    if exporter is Exporter.LEGACY and target is not Target.TENSORRT:
        raise InputError("the legacy exporter cannot write MaxUnpool; use --exporter dynamo for --target onnxruntime")
    output = check_output_path(output, force)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    multiple = size_multiple(ckpt.model)
    h, w = ckpt.preprocess.size
    if h % multiple or w % multiple:
        raise InputError(f"input size {h}x{w} must be a multiple of {multiple} (2 ** pooling stages)")
    if dynamic_hw is None:
        dynamic_hw = ckpt.preprocess.resize == Resize.ASPECT
    dynamic = (["batch"] if dynamic_batch else []) + (["height", "width"] if dynamic_hw else [])
    # contiguous weights: a channels_last model makes torch.export specialise the batch size
    reference = ckpt.model.eval()
    model = make_exportable(reference) if exporter is Exporter.LEGACY else reference
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    example = torch.from_numpy(parity_inputs(ckpt.preprocess, parity_images))

    with quiet_exporter():
        try:
            exported, nodes_exported = _export_graph(model, example[:2], opset, exporter, dynamic, multiple)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {str(exc).strip().splitlines()[0][:300]}") from None
        sites = 0
        final = exported
        if exporter is Exporter.DYNAMO:
            final, sites = rewrite_unpool(exported, TARGETS[target])
            if sites and not outputs_identical(exported, final):  # a model without unpools is left as exported
                raise ExportError("the rewritten graph is not bit-identical to the exported one in ONNX Runtime")
    final.doc_string = f"{ckpt.model_name} exported by segedge {segedge.__version__} for {target.value}"
    export_contract(ckpt, target, dynamic).write_onnx(final)
    final, report = _finish(final, precision, lint, target)

    with atomic_path(output, overwrite=force) as tmp:  # without --force, created exclusively
        onnx.save(final, str(tmp))
        with torch.no_grad():
            expected = reference(example).numpy()
        parity = compare_logits(expected, onnxruntime_logits(tmp, example.numpy()))
        if parity.argmax_agreement < MIN_AGREEMENT[precision]:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: {parity.summary()}")
    opset_used = next(o.version for o in final.opset_import if o.domain in ("", "ai.onnx"))
    counts = dict(Counter(node.op_type for node in final.graph.node).most_common())
    return ExportResult(
        output, opset_used, target, precision, counts, nodes_exported, sites, parity, report,
        time.perf_counter() - started, read_metadata(final),
    )


def rewrite_onnx(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    target: Target | str = Target.TENSORRT,
    precision: Precision | str = Precision.FP32,
    lint: bool = True,
    force: bool = False,
    contract: Contract | None = None,
) -> ExportResult:
    """ONNX in, ONNX out: rewrite the MaxPool-Indices + MaxUnpool (or dynamo ScatterND)
    pairs of an existing model for ``target``, proven bit-identical in ONNX Runtime.

    A model without unpools (any other segmentation network) passes through unchanged
    apart from FP16 conversion, the checks and its contract.

    Args:
        source: the ONNX to rewrite.
        output: destination ``.onnx``.
        target: unpool form to write.
        precision: ``fp32`` or ``fp16``.
        lint: fail on a graph TensorRT's parser would reject (``tensorrt`` target).
        force: overwrite an existing ``output``.
        contract: the deployment contract to embed (classes, mean/std, ... of a foreign
            model); default: the source's own, or only ``target``/``precision`` when it has none.

    Raises:
        InputError: bad option or output path.
        ModelFormatError: unreadable ONNX, or NaN/infinite weights (as a checkpoint's are refused).
        ExportError: a pair the rewrite cannot express exactly, a rewritten graph that is
            not bit-identical, checker or lint failure.
    """
    started = time.perf_counter()
    try:
        target, precision = Target(target), Precision(precision)
    except ValueError:
        target = precision = None  # type: ignore[assignment]
    if target is None or precision not in PRECISIONS:
        raise InputError(f"target must be one of {[t.value for t in Target]}, precision one of {[p.value for p in PRECISIONS]}")
    output = check_output_path(output, force, source)
    original = load_onnx(source)
    check_finite_weights(original, source)
    with quiet_exporter():
        rewritten, sites = rewrite_unpool(original, TARGETS[target])
        if sites and not outputs_identical(original, rewritten):
            raise ExportError(f"the rewritten graph is not bit-identical to {source} in ONNX Runtime")
    form = Target.ONNXRUNTIME if any(n.op_type == "MaxUnpool" for n in rewritten.graph.node) else Target.TENSORRT
    if target is Target.ONNXRUNTIME and form is not target:
        raise InputError(
            f"{source} has no MaxPool-Indices unpool to turn into MaxUnpool (a standard-form graph stays as it is); "
            "export the checkpoint with --target onnxruntime instead"
        )
    if contract is not None:
        channels = _output_classes(rewritten)
        if channels is not None and channels != contract.num_classes:
            raise InputError(f"{source} predicts {channels} classes but {contract.num_classes} class names were given")
        contract.replace(target=form, declared=True).write_onnx(rewritten)
    else:
        Contract.from_onnx(rewritten, str(source)).replace(target=form).write_onnx_step(rewritten, "target", "precision")
    rewritten, report = _finish(rewritten, precision, lint, target)
    with atomic_path(output, overwrite=force) as tmp:
        onnx.save(rewritten, str(tmp))
    opset_used = next(o.version for o in rewritten.opset_import if o.domain in ("", "ai.onnx"))
    counts = dict(Counter(node.op_type for node in rewritten.graph.node).most_common())
    return ExportResult(
        output, opset_used, form, precision, counts, len(original.graph.node), sites, None, report,
        time.perf_counter() - started, read_metadata(rewritten),
    )
