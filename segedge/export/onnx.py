"""Export a SegNet-family checkpoint to ONNX and prove it matches PyTorch.

Steps: swap pool-with-indices + unpool for the exact standard-op form
(:mod:`segedge.export.unpool`), check that swap bit-identical on a tie-heavy probe,
export with ``torch.onnx.export(dynamo=True)`` (dynamic batch), embed the deployment
contract in the ONNX metadata, run ``onnx.checker`` (full check, with shape inference),
compare ONNX Runtime against the original PyTorch model, and rename into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnx
import torch

import segedge
from segedge._io import atomic_path
from segedge.data.transforms import PreprocessConfig, preprocess
from segedge.errors import ExportError, InputError, ModelFormatError
from segedge.export.unpool import make_exportable, tie_heavy_probe
from segedge.models.checkpoint import Checkpoint, load_checkpoint

DEFAULT_OPSET = 17  # the newest opset TensorRT 8.6 to 11 all parse
META_PREFIX = "segedge."
INPUT_NAME, OUTPUT_NAME = "input", "logits"


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
    op_counts: dict[str, int]
    parity: Parity
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> int:
        return sum(self.op_counts.values())


@contextlib.contextmanager
def quiet_exporter() -> Iterator[io.StringIO]:
    """Capture the exporter's chatter (prints, warnings, log records) unless SEGEDGE_DEBUG=1;
    yields the buffer so a failure can show it."""
    buffer = io.StringIO()
    if os.environ.get("SEGEDGE_DEBUG") == "1":
        yield buffer
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def contract_metadata(ckpt: Checkpoint, precision: str = "fp32") -> dict[str, str]:
    """The deployment contract written into ONNX ``metadata_props`` (and engine sidecars):
    preprocessing, class names, model name, precision, segedge version, source checkpoint."""
    meta = {
        "preprocess": ckpt.preprocess.to_json(),
        "classes": json.dumps(list(ckpt.classes)),
        "model": ckpt.model_name,
        "precision": precision,
        "segedge_version": segedge.__version__,
    }
    if ckpt.path is not None:
        meta["checkpoint_sha256"] = file_sha256(ckpt.path)
    return {META_PREFIX + k: v for k, v in meta.items()}


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """segedge entries of ``model.metadata_props``, without the ``segedge.`` prefix."""
    return {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace segedge entries of ``model.metadata_props`` by ``metadata`` (prefixed keys)."""
    keep = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)


def load_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX file.

    Raises:
        ModelFormatError: missing, truncated or not an ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise ModelFormatError(f"{path} is not a readable ONNX model (truncated or corrupt?): {exc}") from None
    if not model.graph.node:
        raise ModelFormatError(f"{path} is not a readable ONNX model: its graph has no nodes")
    return model


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


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Compare two ``(N, C, H, W)`` logit arrays (argmax over C)."""
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = float((reference.argmax(1) == candidate.argmax(1)).mean())
    return Parity(len(reference), float(diff.max()), float(diff.mean()), agree)


def export_onnx(
    checkpoint: Checkpoint | str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    parity_images: Sequence[np.ndarray] | None = None,
    min_agreement: float = 0.999,
) -> ExportResult:
    """Export a checkpoint to ONNX with the exact max-unpool rewrite and a parity check.

    Args:
        checkpoint: loaded :class:`Checkpoint`, a path, or ``None`` for the embedded model.
        output: destination ``.onnx`` path (written atomically; untouched on failure).
        opset: ONNX opset (default 17).
        dynamic_batch: make the batch dimension symbolic (``batch``); H and W stay fixed at
            the checkpoint's input size.
        parity_images: BGR uint8 images for the parity check (default: see
            :func:`parity_inputs`).
        min_agreement: fail if the ONNX Runtime argmax agrees with PyTorch on fewer pixels.

    Returns:
        :class:`ExportResult` with node counts and the parity figures.

    Raises:
        CheckpointError: unreadable checkpoint.
        ExportError: a layer the rewrite cannot express, a rewrite that is not
            bit-identical, an exporter or checker failure, or parity below ``min_agreement``.
    """
    started = time.perf_counter()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if not 7 <= opset <= 23:
        raise InputError(f"opset {opset} is outside the supported range 7..23 (TensorRT wants 17)")
    reference = ckpt.model.eval()
    # contiguous weights: a channels_last model (as runners keep it) makes torch.export
    # specialise the batch dimension through stride guards
    exportable = make_exportable(reference).to(memory_format=torch.contiguous_format).eval()

    # The rewrite must be bit-identical before anything is exported.
    probe = tie_heavy_probe((2, 3, *ckpt.preprocess.size), seed=0)
    with torch.no_grad():
        if not torch.equal(reference(probe), exportable(probe)):
            raise ExportError(
                "the rewritten model is not bit-identical to the original on a tie-heavy probe: "
                "a MaxUnpool2d does not take the indices of its matching MaxPool2d"
            )

    example = torch.from_numpy(parity_inputs(ckpt.preprocess, parity_images))
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    metadata = contract_metadata(ckpt)
    with atomic_path(output) as tmp, quiet_exporter() as log_buffer:
        try:
            program = torch.onnx.export(
                exportable, (example[:2],), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, optimize=True, verbose=False,
            )
            model = program.model_proto
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {str(exc).splitlines()[0][:300]}") from None
        if any(op.domain in ("", "ai.onnx") and op.version != opset for op in model.opset_import):
            found = [op.version for op in model.opset_import if op.domain in ("", "ai.onnx")]
            raise ExportError(f"the exporter produced opset {found}, not the requested {opset}")
        model.doc_string = f"{ckpt.model_name} exported by segedge {segedge.__version__} (exact max-unpool rewrite)"
        set_metadata(model, metadata)
        onnx.save(model, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as exc:
            raise ExportError(f"onnx.checker rejected the export: {str(exc).splitlines()[0][:300]}") from None
        from segedge.runtime.onnxruntime_runner import OnnxRuntimeRunner

        with torch.no_grad():
            expected = reference(example).numpy()
        parity = compare_logits(expected, OnnxRuntimeRunner(tmp).infer(example.numpy()))
        if parity.argmax_agreement < min_agreement:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: {parity.summary()}")
        del log_buffer
    op_counts = dict(Counter(node.op_type for node in model.graph.node).most_common())
    return ExportResult(Path(output), opset, op_counts, parity, time.perf_counter() - started, metadata)
