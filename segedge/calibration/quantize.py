"""INT8 quantization in two forms, one per target, like the unpool forms of ``segedge export``.

Done with ONNX Runtime's ``quantize_static``, configured per target (the ``target`` argument
of :func:`quantize_int8`; by default the FP32 ONNX's ``segedge.target``).

``tensorrt`` (Q/DQ for TensorRT's explicit quantization; TensorRT developer guide, "Explicit
Quantization" and "Q/DQ Layer-Placement Recommendations"):

- **signed INT8, symmetric** (``QInt8``, ``ActivationSymmetric``/``WeightSymmetric``):
  TensorRT supports only zero-point 0.
- **per-channel weights on the output-channel axis**, **per-tensor activations**.
- **float bias** (``QuantizeBias=False``): TensorRT adds the bias in the fused kernel.
- **no Q/DQ on convolution outputs**: the logits leave the last convolution in float, and
  a ReLU output is quantized where the next convolution reads it, after the ReLU.
- **only Conv is quantized**: the exact max-unpool rewrite (MaxPool, Slice, Equal, Where)
  stays in float; a Q/DQ on one side of its Equal would misplace every unpooled value.
- **on an FP16 base** (``fp16_base``, default): the FP32 model is moved to opset 19 (whose
  Q/DQ take FP16 scales and tensors; every TensorRT with strongly typed networks parses it),
  quantized, then converted with :func:`segedge.onnx.fp16.to_fp16`, so a strongly typed
  engine runs INT8 convolutions and everything between them in FP16, not FP32.

``onnxruntime`` (the CPU form, for ONNX Runtime's integer kernels; ONNX Runtime docs,
"Quantize ONNX models"; needs the MaxUnpool export, ``segedge export --target onnxruntime``):

- **QOperator format**: QLinearConv in the file, with ReLU folded into its unsigned output
  range and MaxPool (indices included) run on uint8. Measured here on the MaxUnpool models,
  one thread: the QDQ layout of the same quantizer also fuses every Conv into QLinearConv
  after ONNX Runtime's optimizer, but its MaxPool (two outputs) stays float between a DQ and
  a Q and the NHWC layout pass adds Transposes around it: segnet-dsc 1.14x against 1.36x
  for QOperator, segnet 2.41x against 2.45x (``benchmarks/int8_cpu.py``).
- **U8 asymmetric activations, S8 symmetric per-channel weights** (U8S8): ONNX Runtime's
  recommended default on x86-64 and the fast path of its VNNI and AMX kernels.
- **reduce_range** on x86-64 CPUs without VNNI (AVX2, AVX-512F): their U8S8 kernels sum
  pairs of products in 16 bits and can saturate; ONNX Runtime's docs advise 7-bit weights
  there. Chosen from :func:`segedge.cpuinfo.cpu_info` unless given.
- the logits are quantized too (the last QLinearConv's uint8 output is dequantized at the
  graph output): a float last convolution would run in float.
- **ReLU6 (Clip), residual Add and Concat quantized too** (:data:`CPU_FORM_OPS`): the quantizer
  folds a Clip into the unsigned range of the QLinearConv before it and turns Add and Concat
  into QLinearAdd / QLinearConcat, so an EfficientNet-Lite block stays in uint8 from one
  convolution to the next. Without them every Clip sat in float between a DequantizeLinear and
  a QuantizeLinear: segnet-lite0's CPU INT8 ran at 0.78x its FP32 in ONNX Runtime, with them
  1.56x (256x448, 2 threads, measured on a loaded machine; docs/benchmarks.md has the quiet run).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from segedge._io import atomic_path, private_directory
from segedge.calibration.cache import CalibrationKey, array_sha256, read_cache, write_cache
from segedge.calibration.dataset import CalibrationSet
from segedge.cpuinfo import CpuInfo, cpu_info
from segedge.errors import DataError, ExportError, InputError
from segedge.onnx.layers import conv_layers
from segedge.contract import Contract, Precision, Target
from segedge.onnx.metadata import file_sha256, quiet_exporter
from segedge.onnx.artifact import OnnxArtifact, open_onnx

# operators of the CPU form's QOperator graph (ONNX Runtime's integer kernels; MaxUnpool stays float)
CPU_FORM_OPS = ["Conv", "Relu", "Clip", "Add", "Concat", "MaxPool"]

METHODS = ("minmax", "entropy", "percentile")
TARGETS = tuple(t.value for t in Target)
# Version tag of the quantizer settings per target; part of the calibration cache key, so a
# change of settings invalidates cached ranges. Bump it whenever the options or ops change.
SETTINGS = {
    Target.TENSORRT.value: "qdq-s8-sym-perchannel-conv-v2",
    Target.ONNXRUNTIME.value: "qoperator-u8-asym-s8-perchannel-conv-relu-clip-add-concat-maxpool-v2",
}
FP16_BASE_OPSET = 19  # Q/DQ with FP16 scales and tensors


@dataclass
class QuantizeResult:
    """What :func:`quantize_int8` did.

    Attributes:
        path: the Q/DQ ONNX written.
        method: calibration method.
        images: calibration images.
        quantized_nodes: QuantizeLinear nodes inserted.
        seconds: wall time, calibration included.
        float_layers: layers kept in float (mixed precision), by name.
        cache: ``None`` (no cache), ``computed``, ``reused`` or ``recomputed: <reason>``.
        target: the INT8 form, ``tensorrt`` or ``onnxruntime``.
        int8_convs: convolutions that run in INT8 (QLinearConv, or Conv whose weight is a DQ).
    """

    path: Path
    method: str
    images: int
    quantized_nodes: int
    seconds: float
    float_layers: list[str] = field(default_factory=list)
    cache: str | None = None
    target: str = Target.TENSORRT.value
    int8_convs: int = 0


def default_reduce_range(info: CpuInfo | None = None) -> bool:
    """Whether the CPU form should use 7-bit weights on ``info`` (default: this CPU).

    True on x86-64 without 8-bit dot products (no VNNI, no AMX), where ONNX Runtime's U8S8
    kernels can saturate (ONNX Runtime docs, "Quantize ONNX models", "When and why do I need
    to try U8U8?" and ``reduce_range``); False with VNNI/AMX and on Arm.
    """
    info = info or cpu_info()
    return info.arch in ("x86_64", "AMD64") and not info.int8_dot_product


def int8_target(contract: Contract, target: str | Target | None, path: object = "the model") -> str:
    """The INT8 form for an FP32 model: ``target``, or the form its contract records.

    Args:
        contract: the FP32 model's contract (:attr:`OnnxArtifact.contract
            <segedge.onnx.artifact.OnnxArtifact>`).
        target: ``tensorrt``, ``onnxruntime`` or ``None`` (the model's own).
        path: the model, for messages.

    Raises:
        InputError: unknown target, or ``onnxruntime`` for a model that is not the MaxUnpool
            export (the CPU form runs MaxPool on uint8 with the indices MaxUnpool reads).
    """
    form = (contract.target or Target.TENSORRT).value
    if target is None:
        return form
    target = str(target)
    if target not in TARGETS:
        raise InputError(f"unknown INT8 target {target!r}; expected one of {', '.join(TARGETS)}")
    if target == Target.ONNXRUNTIME and form != Target.ONNXRUNTIME:
        raise InputError(
            f"--target onnxruntime quantizes the MaxUnpool export, and {path} is the {form} form; "
            "export it with `segedge export --target onnxruntime`"
        )
    return target


def _fp16_opset(source: onnx.ModelProto, destination: Path) -> None:
    """Write ``source`` at opset :data:`FP16_BASE_OPSET` (ONNX's version converter)."""
    from onnx import version_converter

    model = onnx.ModelProto()
    model.CopyFrom(source)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < FP16_BASE_OPSET:
        model = version_converter.convert_version(model, FP16_BASE_OPSET)
    onnx.save(model, str(destination))


def _int8_convs(model: onnx.ModelProto) -> int:
    produced_by = {out: n.op_type for n in model.graph.node for out in n.output}
    return sum(
        n.op_type == "QLinearConv" or (n.op_type == "Conv" and produced_by.get(n.input[1]) == "DequantizeLinear")
        for n in model.graph.node
    )


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a :class:`CalibrationSet`.

    Its length and ``set_range`` are in batches: with ``CalibStridedMinMax`` ONNX Runtime
    calls ``collect_data`` once per range and merges the result (ranges for MinMax,
    histograms for entropy/percentile) before the next, so peak memory is one batch's
    intermediate tensors whatever the number of images.
    """

    def __init__(self, input_name: str, calibration: CalibrationSet, batch_size: int):
        self.input_name = input_name
        self._batches = list(calibration.batches(batch_size))
        self.set_range(0, len(self._batches))

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self._batches[start_index:end_index])

    def get_next(self):
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}


def quantize_int8(
    onnx_path: str | os.PathLike[str] | OnnxArtifact,
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    method: str = "percentile",
    percentile: float = 99.9,
    batch_size: int = 8,
    exclude: list[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    target: str | None = None,
    fp16_base: bool = True,
    reduce_range: bool | None = None,
    ranges: dict | None = None,
    record: dict | None = None,
) -> QuantizeResult:
    """Write an INT8 ONNX calibrated on ``calibration``, in the form of ``target``.

    The entry point for every INT8 artifact (``segedge calibrate``, ``build-engine
    --precision int8``, sensitivity analysis, mixed precision, the benchmarks).

    Args:
        onnx_path: FP32 ONNX from ``segedge export``, or that file already opened
            (:func:`~segedge.onnx.artifact.open_onnx`; sensitivity analysis quantizes one
            model many times).
        output: destination (atomic; untouched on failure).
        calibration: preprocessed calibration images, ``(N, 3, H, W)`` float32.
        method: ``percentile`` (default), ``minmax`` or ``entropy``.
        percentile: percentile of |activation| kept in range for ``percentile``. 99.9 is
            the default because it measured best on the embedded segnet-dsc (test split of
            the Pet sample, 64 trainval images): pixel-accuracy drop 0.18 points, against
            0.61 at 99.99 and 1.75 with ``minmax``. Max-unpooling amplifies activation noise
            (a perturbed near-tie moves a whole unpooled value), so clipping rare outliers
            for finer steps pays off.
        batch_size: images per calibration inference; peak memory is one batch's
            intermediate tensors, whatever the number of images.
        exclude: layers (names from :func:`conv_layers`) or Conv node names to keep in
            float (mixed precision): FP16 in the ``tensorrt`` form on its FP16 base, FP32
            otherwise.
        cache: calibration cache file (see :mod:`segedge.calibration.cache`): ranges are
            reused when the model, the data, the method, the target and the settings all
            match, and recomputed (and the file replaced) when any differs.
        target: ``tensorrt`` (Q/DQ for TensorRT) or ``onnxruntime`` (QLinearConv for ONNX
            Runtime on CPUs); ``None``: the FP32 model's ``segedge.target`` (see the module
            docstring for both layouts).
        fp16_base: ``tensorrt`` form only: FP16 between the INT8 convolutions (opset 19);
            ``False`` keeps them FP32 at the model's opset.
        reduce_range: ``onnxruntime`` form only: 7-bit weights; ``None``: on x86-64 CPUs
            without VNNI/AMX (:func:`default_reduce_range`).
        ranges: activation ranges to quantize with instead of calibrating (ONNX Runtime's
            ``TensorsData`` JSON, the ``ranges`` record of a calibration cache): how
            quantization-aware training (:mod:`segedge.calibration.qat`) writes its fine-tuned
            weights with the post-training scales it trained against. ``calibration`` is then
            only described in the metadata.
        record: more entries for the artifact's calibration record (``qat``: what
            quantization-aware training did).

    Returns:
        :class:`QuantizeResult`.

    Raises:
        DataError: empty calibration set; unreadable cache file.
        InputError: unknown method, target or excluded layer; ``onnxruntime`` target for a
            model that is not the MaxUnpool export.
        ModelFormatError: unreadable ONNX.
        ExportError: ONNX Runtime's quantizer or the FP16 conversion failed.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    if len(calibration) == 0:
        raise DataError("the calibration set is empty")
    started = time.perf_counter()
    artifact = onnx_path if isinstance(onnx_path, OnnxArtifact) else open_onnx(onnx_path)
    onnx_path, model, contract = artifact.path, artifact.model, artifact.contract
    target = int8_target(contract, target, onnx_path)
    cpu_form = target == Target.ONNXRUNTIME
    fp16_base = fp16_base and not cpu_form
    if cpu_form and reduce_range is None:
        reduce_range = default_reduce_range()
    input_name = artifact.inputs[0].name
    calibrate_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    extra = {
        "ActivationSymmetric": not cpu_form,
        "WeightSymmetric": True,
        # Calibrate one batch at a time, merging as we go (see _Reader): memory stays flat.
        # Not "CalibMaxIntermediateOutputs": in onnxruntime 1.32 MinMaxCalibrater discards
        # every full chunk instead of merging it (only the last partial chunk is used).
        "CalibStridedMinMax": 1,
    }
    if not cpu_form:  # QLinearConv takes an int32 bias; TensorRT adds a float one itself
        extra |= {"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": ["Conv"]}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    layers = conv_layers(model)
    nodes = {name for names in layers.values() for name in names}
    excluded: list[str] = []
    for item in exclude or []:
        if item in layers:
            excluded.extend(layers[item])
        elif item in nodes:
            excluded.append(item)
        else:
            raise InputError(f"no quantizable layer or Conv node named {item!r} (layers: {', '.join(list(layers)[:6])}, ...)")
    float_layers = [n for n in layers if set(layers[n]) <= set(excluded)]
    key = lookup = None
    if cache is not None and ranges is None:
        key = CalibrationKey(
            file_sha256(onnx_path), array_sha256(calibration.images), method,
            percentile if method == "percentile" else None, SETTINGS[target], target,
        )
        lookup = read_cache(cache, key)
    with private_directory("quant") as work, quiet_exporter():
        source = Path(onnx_path)
        prepared = Path(work) / "prepared.onnx"
        ranges_file = Path(work) / "ranges.json"
        if ranges is not None:
            ranges_file.write_text(json.dumps(ranges))
        elif lookup is not None and lookup.ranges is not None:
            ranges_file.write_text(json.dumps(lookup.ranges))
        try:
            if fp16_base:
                source = Path(work) / "opset19.onnx"
                _fp16_opset(model, source)
            # node names survive pre-processing (checked by the mixed-precision tests)
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            with atomic_path(output) as tmp:
                quantize_static(
                    str(prepared), str(tmp), _Reader(input_name, calibration, batch_size),
                    quant_format=QuantFormat.QOperator if cpu_form else QuantFormat.QDQ,
                    op_types_to_quantize=CPU_FORM_OPS if cpu_form else ["Conv"],
                    per_channel=True, reduce_range=bool(reduce_range),
                    activation_type=QuantType.QUInt8 if cpu_form else QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=calibrate_method, extra_options=extra, nodes_to_exclude=excluded,
                    calibration_cache_path=str(ranges_file),
                )
                quantized = onnx.load(str(tmp))
                if fp16_base:
                    from segedge.onnx.fp16 import to_fp16

                    quantized = to_fp16(quantized, fp32_layers=0)
                record = json.dumps(
                    {"method": method, "images": len(calibration), "source": calibration.source,
                     "percentile": percentile if method == "percentile" else None,
                     "float_layers": float_layers, "target": target,
                     "format": "QOperator (QLinearConv)" if cpu_form else "QDQ",
                     "activations": "uint8 asymmetric" if cpu_form else "int8 symmetric",
                     "base": (Precision.FP16 if fp16_base else Precision.FP32).value, "reduce_range": bool(reduce_range)}
                    | (record or {})
                )
                extra = {k: v for k, v in contract.extra.items() if k != "fp32_nodes"} | {"calibration": record}
                contract.replace(precision=Precision.INT8, extra=extra).write_onnx_step(quantized, "precision", "calibration")
                onnx.save(quantized, str(tmp))
        except (DataError, InputError):
            raise
        except OSError as exc:  # a full, read-only or over-quota disk is the environment, not the quantizer (exit 2, README)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                raise ExportError(f"INT8 quantization failed: {str(exc).splitlines()[0][:300]}") from None
            raise InputError(f"cannot write {output} (or its work files in {work}): {exc.strerror}; free space or write elsewhere") from None
        except Exception as exc:
            raise ExportError(f"INT8 quantization failed: {str(exc).splitlines()[0][:300]}") from None
        if key is not None and lookup.status != "reused":
            write_cache(cache, key, json.loads(ranges_file.read_text()), len(calibration), calibration.source)
    q_nodes = sum(node.op_type == "QuantizeLinear" for node in quantized.graph.node)
    status = None
    if lookup is not None:
        status = {"reused": "reused", "missing": "computed"}.get(lookup.status, f"recomputed: {lookup.reason}")
    return QuantizeResult(
        Path(output), method, len(calibration), q_nodes, time.perf_counter() - started, float_layers, status,
        target, _int8_convs(quantized),
    )
