"""Fake quantization that computes what a segedge INT8 artifact computes.

Quantization-aware training (:mod:`segedge.calibration.qat`) fine-tunes an FP32 model while
its forward pass rounds exactly where the deployed INT8 model rounds. "Exactly" is read off
the artifact itself, not restated: :func:`plan_from_artifact` walks a post-training INT8
ONNX that :func:`~segedge.calibration.quantize.quantize_int8` wrote and records, per FP32
tensor name,

- every **activation** it quantizes, with the scale and zero point stored in the file and the
  integer range of its type (``tensorrt`` form: int8, zero point 0, on each Conv input;
  ``onnxruntime`` form: uint8 at every QLinearConv / QLinearAdd / QLinearConcat output and
  QuantizeLinear, with the ReLU or ReLU6 (Clip) the quantizer folded into the range);
- every **weight**: int8, symmetric, per output channel, the scale recomputed from the
  current weights the way ONNX Runtime's quantizer computes it when the artifact is written
  again (``max |w_c| / 127``, in float64 then float32; ``reduce_range``: ``/ 64``);
- every **bias** the CPU form turns into int32 at the scale ``input scale x weight scale``
  (QLinearConv's ``B``); the tensorrt form keeps biases in float;
- whether everything between them runs in **FP16** (the tensorrt form's FP16 base:
  FP16 tensors, FP16 scales).

The functions here apply that plan to torch tensors with the straight-through estimator
(Bengio et al. 2013; gradients pass unchanged inside the representable range and stop
outside it, as for a ReLU6), which is what the QAT literature and every library named in
docs/qat.md use (Jacob et al., CVPR 2018; Krishnamoorthi, arXiv:1806.08342).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from segedge.contract import Precision, Target
from segedge.errors import ExportError

QUANTIZED_SUFFIX = "_quantized"
_RANGES = {onnx.TensorProto.UINT8: (0, 255), onnx.TensorProto.INT8: (-128, 127)}


@dataclass(frozen=True)
class ActivationQuant:
    """One quantized activation: ``q = clamp(round(x / scale) + zero_point, qmin, qmax)``,
    dequantized as ``(q - zero_point) * scale`` (ONNX QuantizeLinear / DequantizeLinear)."""

    scale: float  # float32 (FP16 in the tensorrt form's FP16 base, stored here as its float value)
    zero_point: int
    qmin: int  # the integer type's range: uint8 0..255, int8 -128..127
    qmax: int


@dataclass
class QuantPlan:
    """Where and how an INT8 artifact quantizes, keyed by the FP32 graph's tensor names.

    Attributes:
        activations: FP32 tensor name -> its quantization.
        weights: Conv weight initializer -> the largest integer of its symmetric range
            (127, or 64 with ``reduce_range``).
        biases: Conv bias initializer -> ``(input tensor, weight)`` whose scales multiply
            into its int32 scale (CPU form only).
        integer: FP32 tensors an integer kernel computes (QLinearConv, QLinearAdd; in the
            tensorrt form each INT8 Conv) -> the quantization of that kernel's inputs; their
            value is emulated from the exact integer accumulation and the kernel's
            requantization (CPU form) or float epilogue (tensorrt form), not from a float
            convolution of dequantized tensors, whose summation order differs from kernel to
            kernel (see :mod:`segedge.calibration.torch_graph`).
        fp16: FP16 tensors and scales between the quantized convolutions (tensorrt form
            on its FP16 base).
        target: ``tensorrt`` or ``onnxruntime``.
    """

    activations: dict[str, ActivationQuant] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    biases: dict[str, tuple[str, str]] = field(default_factory=dict)
    integer: dict[str, list[ActivationQuant]] = field(default_factory=dict)
    fp16: bool = False
    target: str = Target.TENSORRT.value

    def summary(self) -> str:
        """One line: what the plan quantizes."""
        base = ", FP16 between them" if self.fp16 else ""
        bias = f", {len(self.biases)} int32 biases" if self.biases else ""
        return f"{self.target} form: {len(self.activations)} quantized activations, {len(self.weights)} int8 weights{bias}{base}"


def _float_name(name: str) -> str:
    return name[: -len(QUANTIZED_SUFFIX)] if name.endswith(QUANTIZED_SUFFIX) else name


def plan_from_artifact(int8: onnx.ModelProto, fp32_tensors: set[str] | None = None) -> QuantPlan:
    """Read the quantization of a segedge INT8 ONNX (either form).

    Args:
        int8: the artifact :func:`~segedge.calibration.quantize.quantize_int8` wrote.
        fp32_tensors: the FP32 graph's tensor names; when given, every quantized tensor must
            be one of them (the plan is applied to that graph).

    Returns:
        The :class:`QuantPlan`.

    Raises:
        ExportError: a quantized tensor the FP32 graph does not have, or a scale that is not
            a stored constant (the artifact is not one segedge wrote from this FP32 model).
    """
    inits = {i.name: i for i in int8.graph.initializer}
    record = {p.key: p.value for p in int8.metadata_props}
    import json

    calibration = json.loads(record.get("segedge.calibration", "{}") or "{}")
    plan = QuantPlan(target=calibration.get("target", Target.TENSORRT.value), fp16=calibration.get("base") == Precision.FP16.value)
    reduce_range = bool(calibration.get("reduce_range"))

    def constant(name: str) -> np.ndarray:
        if name not in inits:
            raise ExportError(f"the INT8 artifact's quantization parameter {name!r} is not a stored constant")
        return numpy_helper.to_array(inits[name])

    def activation(name: str | None, scale: str, zero_point: str) -> ActivationQuant:
        zp = inits.get(zero_point)
        kind = zp.data_type if zp is not None else onnx.TensorProto.UINT8
        qmin, qmax = _RANGES.get(kind, (None, None))
        if qmin is None:
            raise ExportError(f"the INT8 artifact quantizes {name!r} to {onnx.TensorProto.DataType.Name(kind)}, not (u)int8")
        s = constant(scale)
        if s.size != 1:
            raise ExportError(f"the INT8 artifact quantizes the activation {name!r} per channel; segedge writes per-tensor activations")
        z = int(constant(zero_point).reshape(())) if zp is not None else 0
        quant = ActivationQuant(float(s.reshape(())), z, qmin, qmax)
        if name is not None:
            plan.activations[name] = quant
        return quant

    weight_max = 64 if reduce_range else 127
    produced = {out: node for node in int8.graph.node for out in node.output}

    def float_source(name: str) -> str:
        """The FP32 graph's tensor behind ``name``: an FP16 base casts the graph input to FP16
        (``graph_input_cast_0``) before quantizing it; the plan rounds that input to FP16 itself."""
        while name in produced and produced[name].op_type == "Cast":
            name = produced[name].input[0]
        return name

    for node in int8.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:  # the FP32 tensor is its input
            activation(float_source(node.input[0]), node.input[1], node.input[2] if len(node.input) > 2 else "")
        elif node.op_type == "DequantizeLinear" and node.input[0] in inits and node.input[0].endswith(QUANTIZED_SUFFIX):
            weight = constant(node.input[0])
            if weight.ndim == 4:  # a Conv weight (a bias stays float in the tensorrt form)
                plan.weights[_float_name(node.input[0])] = weight_max
        elif node.op_type == "QLinearConv":
            plan.weights[_float_name(node.input[3])] = weight_max
            activation(_float_name(node.output[0]), node.input[6], node.input[7])
            plan.integer[_float_name(node.output[0])] = [activation(None, node.input[1], node.input[2])]
            if len(node.input) > 8 and node.input[8]:
                plan.biases[_float_name(node.input[8])] = (_float_name(node.input[0]), _float_name(node.input[3]))
        elif node.op_type == "QLinearAdd":
            activation(_float_name(node.output[0]), node.input[6], node.input[7])
            plan.integer[_float_name(node.output[0])] = [
                activation(None, node.input[1], node.input[2]), activation(None, node.input[4], node.input[5])]
        elif node.op_type == "QLinearConcat":
            activation(_float_name(node.output[0]), node.input[0], node.input[1])
        elif node.op_type.startswith("QLinear") or node.op_type in ("ConvInteger", "MatMulInteger"):
            raise ExportError(f"the INT8 artifact holds {node.op_type}, which segedge's fake quantization does not model")
    # tensorrt form: a Conv whose input and weight both come through DequantizeLinear is an INT8
    # convolution (int32 accumulation, float epilogue), its input the FP32 tensor the Q node read
    for node in int8.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        dq_x, dq_w = produced.get(node.input[0]), produced.get(node.input[1])
        if dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear":
            continue
        q_x = produced.get(dq_x.input[0])
        if q_x is not None and q_x.op_type == "QuantizeLinear" and float_source(q_x.input[0]) in plan.activations:
            plan.integer[node.output[0]] = [plan.activations[float_source(q_x.input[0])]]
    if fp32_tensors is not None:
        missing = sorted(set(plan.activations) - fp32_tensors)
        if missing:
            raise ExportError(f"the INT8 artifact quantizes {missing[0]!r}, which the FP32 graph does not have: "
                              "was it calibrated from this FP32 ONNX?")
    return plan


def _torch():
    import torch

    return torch


def round_fp16(x):
    """Round a float32 tensor to the nearest FP16 value (kept float32), as an FP16 graph stores it."""
    return x.half().float()


def _ste_function():
    """The autograd functions, built on first use (importing this module needs no torch)."""
    global _Quantize, _Units
    if _Quantize is not None:
        return _Quantize, _Units
    torch = _torch()

    class Quantize(torch.autograd.Function):
        """``clamp(round(x * multiplier), lo, hi) * scale``; backward: ``grad * slope`` where
        the result is strictly inside ``(lo, hi) * scale``, else 0 (saturated or cut by a
        folded ReLU). ``multiplier`` and ``slope`` may be per-channel ``(1, C, 1, 1)``
        tensors; ``multiplier=None`` divides by ``divisor`` instead (QuantizeLinear divides)."""

        @staticmethod
        def forward(ctx, x, multiplier, divisor, lo, hi, scale, slope):
            r = x * multiplier if multiplier is not None else x / divisor
            r.round_().clamp_(lo, hi).mul_(scale)
            ctx.save_for_backward(r, slope if isinstance(slope, torch.Tensor) else None)
            ctx.bounds, ctx.slope = (lo * scale, hi * scale), slope
            return r

        @staticmethod
        def backward(ctx, grad):
            out, slope = ctx.saved_tensors
            low, high = ctx.bounds
            grad = grad * ((out > low) & (out < high))
            return grad * (slope if slope is not None else ctx.slope), None, None, None, None, None, None

    class Units(torch.autograd.Function):
        """``round(x / scale)`` forward, ``grad / scale`` backward (a tensor already on the grid
        of ``scale`` expressed in its integers)."""

        @staticmethod
        def forward(ctx, x, scale):
            ctx.save_for_backward(scale if isinstance(scale, torch.Tensor) else None)
            ctx.scale = scale
            return (x / scale).round_()

        @staticmethod
        def backward(ctx, grad):
            (scale,) = ctx.saved_tensors
            return grad / (scale if scale is not None else ctx.scale), None

    _Quantize, _Units = Quantize, Units
    return _Quantize, _Units


_Quantize = _Units = None


def requantize(x, multiplier, zero_point: int, qmin: int, qmax: int, scale: float, slope=1.0):
    """``(clamp(round(x * multiplier) + zp, qmin, qmax) - zp) * scale`` with the
    straight-through gradient ``slope`` inside the range (the kernel's requantization step)."""
    quantize, _ = _ste_function()
    return quantize.apply(x, multiplier, None, qmin - zero_point, qmax - zero_point, scale, slope)


def fake_quantize(x, q: ActivationQuant, fp16: bool = False):
    """Quantize and dequantize ``x`` (any shape, float32) as QuantizeLinear + DequantizeLinear do.

    ``round(x / scale)`` half to even (ONNX QuantizeLinear divides and rounds so), plus the
    zero point, saturated to the integer type. Gradient: straight through inside the range,
    zero where saturated. With ``fp16`` the input, the scale and the result are FP16 values.
    """
    quantize, _ = _ste_function()
    scale = float(np.float16(q.scale)) if fp16 else q.scale
    if fp16:
        x = round_fp16(x)
    y = quantize.apply(x, None, scale, q.qmin - q.zero_point, q.qmax - q.zero_point, scale, 1.0)
    return round_fp16(y) if fp16 else y


def integer_units(x, scale):
    """``x / scale`` rounded to the integers it stands for (``x`` already on the grid of
    ``scale``: exact), gradient ``1 / scale``."""
    _, units = _ste_function()
    return units.apply(x, scale)


def weight_scales(weight, qmax: int = 127):
    """Per-output-channel scales of a Conv weight ``(C_out, C_in/groups, kH, kW)`` as ONNX
    Runtime's quantizer computes them: ``2 max|w_c| / (2 qmax)`` in float64, stored float32
    (``compute_scale_zp``, symmetric); 1.0 for an all-zero channel."""
    torch = _torch()
    absmax = weight.detach().abs().amax(dim=tuple(range(1, weight.ndim))).double()
    scale = (2 * absmax / (2 * qmax)).float()
    return torch.where(scale < torch.finfo(torch.float32).tiny, torch.ones_like(scale), scale)


def fake_quantize_weight(weight, qmax: int = 127, fp16: bool = False):
    """Symmetric per-channel int8 fake quantization of a Conv weight, with the scales of
    :func:`weight_scales` (recomputed from the current weight, as re-quantizing does).

    Returns:
        ``(weight_hat, scales)``: the dequantized weight (float32; FP16 values with
        ``fp16``) and the ``(C_out,)`` float32 scales.
    """
    torch = _torch()
    scale = weight_scales(weight, qmax)
    view = scale.view(-1, *([1] * (weight.ndim - 1)))
    q = torch.clamp(torch.round(weight / view), -qmax, qmax)
    if fp16:
        y = round_fp16(q * round_fp16(view))
    else:
        y = q * view
    return weight + (y - weight).detach(), scale


def fake_quantize_bias(bias, input_scale: float, weight_scale):
    """The CPU form's int32 bias: ``round(b / (s_x s_w)) s_x s_w`` per output channel
    (ONNX Runtime's ``quantize_bias_static``), straight-through gradient."""
    torch = _torch()
    step = torch.tensor(input_scale, dtype=torch.float32) * weight_scale  # float32, divided in float64
    y = torch.round(bias.double() / step.double()).float() * step
    return bias + (y - bias).detach()


def straight_through(value, exact, low=None, high=None):
    """``exact`` in the forward pass, the gradient of ``value`` in the backward pass; with
    ``low``/``high``, no gradient where ``value`` lies outside ``[low, high]`` (saturated)."""
    torch = _torch()
    out = value + (exact - value).detach()
    if low is None:
        return out
    return torch.where((value >= low) & (value <= high), out, exact.detach())
