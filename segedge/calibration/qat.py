"""Quantization-aware training (QAT): fine-tune an FP32 ONNX so that its INT8 artifact agrees with it.

Post-training INT8 loses little accuracy but moves the class map on a few percent of the
pixels (mostly along object boundaries). QAT (Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi,
"Quantizing deep convolutional networks for efficient inference", arXiv:1806.08342) trains the
weights with the rounding of the deployed model in the forward pass, so they settle where
rounding costs least. Here:

1. the post-training artifact (:func:`~segedge.calibration.quantize.quantize_int8`) gives the
   **plan**: where and how it rounds (:func:`~segedge.calibration.fakequant.plan_from_artifact`);
   its activation scales stay fixed (they are the calibration's), the weight scales follow the
   weights as re-quantizing computes them;
2. the **student** is the exported FP32 graph itself run in PyTorch with that rounding
   (:class:`~segedge.calibration.torch_graph.OnnxGraphModule`: BatchNorm already folded, as the
   quantizer sees it), its Conv weights and biases trainable;
3. the **loss** is distillation from the FP32 model's own logits (Hinton et al., "Distilling
   the Knowledge in a Neural Network", 2015: KL divergence of the softened class
   distributions, per pixel), which is exactly the agreement the drift report measures and
   needs no labels; cross-entropy on Pet trimaps can be added (``label_weight``) or used alone
   (``distill=False``);
4. the fine-tuned weights are written back into the FP32 graph and quantized **by the same
   writer** with the same activation ranges, so every runner, the contract, the report and the
   monitor take the result unchanged; its calibration record gains a ``qat`` entry.

The teacher runs in ONNX Runtime on the FP32 ONNX (it agrees with PyTorch to 99.99%, and is
5-10x faster than the graph in PyTorch on a CPU).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from segedge._io import private_directory
from segedge.calibration.dataset import CalibrationSet
from segedge.calibration.quantize import QuantizeResult, quantize_int8
from segedge.contract import Precision
from segedge.errors import DataError, InputError
from segedge.onnx.artifact import OnnxArtifact, open_onnx

Progress = Callable[..., None]


@dataclass(frozen=True)
class QatConfig:
    """How QAT fine-tunes.

    Attributes:
        epochs: passes over the training images (>= 1).
        lr: Adam learning rate of the folded Conv weights and biases (small: the model is
            already trained; on segnet-lite0 1e-4 lowered the agreement with FP32 by 2.9
            points in 8 steps, 1e-5 kept it: docs/benchmarks.md, "QAT").
        batch_size: images per step.
        distill: distillation loss from the FP32 model's logits (no labels needed).
        temperature: softmax temperature of the distillation (1: the deployed argmax's own).
        label_weight: weight of the cross-entropy on labels (Pet trimaps; 0: none).
        hard_weight: weight of the cross-entropy against the FP32 model's own argmax (the
            class map the agreement counts; 0: none).
        crop: train on random ``crop x crop`` windows of the images (one offset per batch)
            instead of the whole images: the network is fully convolutional and the scales
            are fixed, so the rounding is the same per pixel, and a step costs (crop / side)^2
            as much; None: whole images. A multiple of the model's size multiple.
        hflip: also train on horizontally flipped images (each epoch flips half, seeded).
        seed: shuffling and flips.
    """

    epochs: int = 2
    lr: float = 1e-5
    batch_size: int = 8
    distill: bool = True
    temperature: float = 1.0
    label_weight: float = 0.0
    hard_weight: float = 0.0
    crop: int | None = None
    hflip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InputError(f"QAT needs at least 1 epoch, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"the QAT learning rate must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise InputError(f"the QAT batch size must be >= 1, got {self.batch_size}")
        if self.temperature <= 0:
            raise InputError(f"the distillation temperature must be > 0, got {self.temperature}")
        if self.label_weight < 0 or self.hard_weight < 0:
            raise InputError(f"loss weights must be >= 0, got label {self.label_weight}, hard {self.hard_weight}")
        if self.crop is not None and self.crop < 32:
            raise InputError(f"the QAT crop must be at least 32 pixels, got {self.crop}")
        if not self.distill and self.label_weight == 0:
            raise InputError("QAT without distillation needs labels: give a label weight > 0 (Pet trimaps) or keep distillation on")


@dataclass
class QatData:
    """Training images for QAT: ``images`` ``(N, 3, H, W)`` float32 model inputs, ``labels``
    ``(N, H, W)`` uint8 class indices or ``None``, and where they came from."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_calibration(cls, calibration: CalibrationSet) -> "QatData":
        return cls(calibration.images, None, calibration.source)


@dataclass
class QatResult:
    """What :func:`quantization_aware_training` did.

    Attributes:
        quantized: the artifact written (:class:`~segedge.calibration.quantize.QuantizeResult`).
        epochs: epochs trained.
        images: training images.
        seconds: wall time of the fine-tuning (the quantization after it excluded).
        loss: mean training loss per epoch.
        fake_quant_agreement: argmax agreement of the fake-quantized PyTorch graph with the
            written artifact in ONNX Runtime on up to 8 training images (CPU form: bit-exact
            arithmetic, 1.0 up to float ties of a float Resize after the last quantized
            tensor; tensorrt form: ONNX Runtime's float convolutions round differently).
        plan: the plan's one-line summary.
    """

    quantized: QuantizeResult
    epochs: int
    images: int
    seconds: float
    loss: list[float] = field(default_factory=list)
    fake_quant_agreement: float | None = None
    plan: str = ""

    def record(self, config: QatConfig, source: str) -> dict:
        return {"qat": {"epochs": self.epochs, "images": self.images, "source": source, "config": asdict(config),
                        "loss": [round(v, 6) for v in self.loss], "seconds": round(self.seconds, 1)}}


def stored_ranges(path: str | os.PathLike[str]) -> dict:
    """The activation ranges a calibration cache holds (its ``ranges`` record).

    Raises:
        DataError: not a readable segedge calibration cache.
    """
    try:
        return json.loads(Path(path).read_text())["ranges"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"calibration cache {path} holds no ranges ({exc}); delete it or pass another path") from None


def _session(model: onnx.ModelProto | str | os.PathLike[str], fp16_qdq: bool = False):
    """An ONNX Runtime CPU session; ``fp16_qdq``: without the pass that breaks FP16-base Q/DQ
    biases (``WeightBiasQuantization``, docs/benchmarks.md, as ``OnnxRuntimeRunner`` does)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    disabled = ["WeightBiasQuantization"] if fp16_qdq else None
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def _window(size: tuple[int, int], crop: int | None, generator) -> tuple[slice, slice]:
    """Rows and columns of one random ``crop x crop`` window of an ``(H, W)`` image (the whole
    image when ``crop`` is None or not smaller)."""
    import torch

    def axis(extent: int) -> slice:
        if crop is None or crop >= extent:
            return slice(0, extent)
        start = int(torch.randint(0, extent - crop + 1, (1,), generator=generator))
        return slice(start, start + crop)

    return axis(size[0]), axis(size[1])


def quantization_aware_training(
    fp32: str | os.PathLike[str] | OnnxArtifact,
    ptq: str | os.PathLike[str],
    ranges: dict,
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    data: QatData,
    config: QatConfig = QatConfig(),
    progress: Progress | None = None,
) -> QatResult:
    """Fine-tune ``fp32`` against the rounding of its post-training artifact ``ptq`` and write
    the INT8 artifact of the result to ``output``.

    Args:
        fp32: the FP32 ONNX from ``segedge export`` (a path, or the file already opened).
        ptq: the post-training INT8 artifact of ``fp32`` (either form, mixed precision
            included: layers it keeps in float stay float).
        ranges: the activation ranges ``ptq`` was quantized with (:func:`stored_ranges`).
        output: the INT8 artifact to write (atomic), in ``ptq``'s form, method and layers.
        calibration: the calibration set (recorded in the metadata, as for ``ptq``).
        data: training images (and labels, for ``label_weight``).
        config: :class:`QatConfig`.
        progress: ``progress(stage, done, total, info="")`` once per step.

    Returns:
        :class:`QatResult`.

    Raises:
        InputError: labels asked for and ``data`` has none; a bad config.
        DataError: no training image.
        ExportError: the graph holds an operator the QAT graph does not run, or ``ptq`` does
            not belong to ``fp32``; the quantizer failed.
    """
    import torch
    import torch.nn.functional as F

    from segedge.calibration.fakequant import plan_from_artifact
    from segedge.calibration.torch_graph import OnnxGraphModule

    if len(data) == 0:
        raise DataError("QAT has no training image")
    if config.label_weight > 0 and data.labels is None:
        raise InputError(f"--label-weight needs labelled training data (an Oxford-IIIT Pet root); {data.source} has no labels")
    report = progress or (lambda *args, **kwargs: None)
    source = fp32 if isinstance(fp32, OnnxArtifact) else open_onnx(fp32)
    ptq_model = onnx.load(str(ptq))
    record = json.loads(next((p.value for p in ptq_model.metadata_props if p.key == "segedge.calibration"), "{}"))
    student = OnnxGraphModule(source.model)
    plan = plan_from_artifact(ptq_model, student.tensor_names())
    student = OnnxGraphModule(source.model, plan)
    teacher = _session(source.model) if config.distill else None
    input_name = source.inputs[0].name
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    steps = math.ceil(len(data) / config.batch_size)
    started = time.perf_counter()
    losses: list[float] = []
    student.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data), generator=generator).numpy()
        flips = (torch.rand(len(data), generator=generator) < 0.5).numpy() if config.hflip else np.zeros(len(data), bool)
        total, seen = 0.0, 0
        for step in range(steps):
            index = np.sort(order[step * config.batch_size : (step + 1) * config.batch_size])
            x = data.images[index].copy()
            x[flips[index]] = x[flips[index], :, :, ::-1]
            window = _window(x.shape[2:], config.crop, generator)
            x = np.ascontiguousarray(x[:, :, window[0], window[1]])
            logits = student(torch.from_numpy(x))
            loss = logits.new_zeros(())
            if teacher is not None:
                with torch.no_grad():
                    target = torch.from_numpy(teacher.run(None, {input_name: x})[0]) / config.temperature
                log_p = F.log_softmax(logits / config.temperature, 1)
                loss = loss + F.kl_div(log_p, F.log_softmax(target, 1), log_target=True, reduction="none").sum(1).mean() * config.temperature**2
                if config.hard_weight > 0:
                    loss = loss + config.hard_weight * F.cross_entropy(logits, target.argmax(1))
            if config.label_weight > 0:
                labels = data.labels[index].copy()
                labels[flips[index]] = labels[flips[index], :, ::-1]
                labels = labels[:, window[0], window[1]]
                loss = loss + config.label_weight * F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
            report(f"QAT epoch {epoch + 1}/{config.epochs}", step + 1, steps, f"loss {total / seen:.4f}")
        losses.append(total / seen)
    seconds = time.perf_counter() - started
    student.eval()
    with private_directory("qat") as work:
        tuned = Path(work) / "fp32-qat.onnx"
        onnx.save(student.export_weights(source.model), str(tuned))
        result = QatResult(None, config.epochs, len(data), seconds, losses, plan=plan.summary())  # type: ignore[arg-type]
        result.quantized = quantize_int8(
            tuned, output, calibration, record.get("method", "percentile"), record.get("percentile") or 99.9,
            exclude=record.get("float_layers") or None, target=record.get("target"),
            fp16_base=record.get("base", Precision.FP16.value) == Precision.FP16.value, reduce_range=record.get("reduce_range"),
            ranges=ranges, record=result.record(config, data.source),
        )
    check = data.images[: min(8, len(data))]
    with torch.no_grad():
        mine = student(torch.from_numpy(check)).numpy().argmax(1)
    theirs = _session(output, plan.fp16).run(None, {input_name: check})[0].argmax(1)
    result.fake_quant_agreement = float((mine == theirs).mean())
    return result
