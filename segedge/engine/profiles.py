"""Optimization profiles: the input shapes an engine accepts, parsed and checked without TensorRT.

A TensorRT engine built from an ONNX with symbolic dimensions needs, for its input, the
smallest, the tuned-for and the largest shape it will see (``IOptimizationProfile.set_shape``;
TensorRT developer guide, "Working with Dynamic Shapes"). segedge exports a symbolic batch
(and, with ``--dynamic-hw``, symbolic height and width in multiples of ``2 ** stages``); the
defaults are batch 1 (min and opt: the camera loop) to 8 (max) at the model's input size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from segedge.contract import MAX_ASPECT, Resize, aspect_size
from segedge.errors import InputError

Shape = tuple[int, int, int, int]  # (N, C, H, W)
DEFAULT_MIN_BATCH = 1
DEFAULT_OPT_BATCH = 1
DEFAULT_MAX_BATCH = 8


def parse_shape(text: str, option: str = "shape") -> Shape:
    """Parse ``"NxCxHxW"`` (``"1x3x128x128"``).

    Args:
        text: four positive integers joined by ``x``.
        option: the option name for the message (``--min-shape``).

    Raises:
        InputError: not four positive integers.
    """
    parts = text.strip().lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) <= 0:
        raise InputError(f"{option} {text!r} is not a shape NxCxHxW of four positive integers, e.g. 1x3x128x128")
    return dims  # type: ignore[return-value]


def format_shape(shape: Shape | list[int]) -> str:
    """``(1, 3, 128, 128)`` -> ``"1x3x128x128"``."""
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class InputSpec:
    """The model input as the ONNX declares it."""

    name: str  # input tensor name
    batch: int | None  # fixed batch, None when symbolic
    channels: int  # fixed channel count (3)
    height: int | None  # fixed height in pixels, None when symbolic
    width: int | None  # fixed width in pixels, None when symbolic
    default_size: tuple[int, int]  # (H, W) used for default profiles: the fixed size or the trained size
    size_multiple: int = 16  # symbolic H and W must be multiples of this (2 ** pooling stages)
    aspect: bool = False  # the contract feeds each frame at its own aspect (resize="aspect"): default profiles cover it

    @property
    def dynamic_hw(self) -> bool:
        return self.height is None or self.width is None


def onnx_input_spec(model, contract=None) -> InputSpec:
    """Read the single ``(N, C, H, W)`` input of an ONNX model and its segedge metadata.

    Args:
        model: ``onnx.ModelProto``, or an :class:`~segedge.onnx.artifact.OnnxArtifact`
            (its contract is then the one already read).
        contract: the model's :class:`~segedge.contract.Contract` when already read.

    Raises:
        ModelFormatError: not one rank-4 input with a fixed channel count.
    """
    from segedge.errors import ModelFormatError
    from segedge.contract import Contract

    if hasattr(model, "contract") and hasattr(model, "model"):  # an OnnxArtifact: opened once
        model, contract = model.model, model.contract
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise ModelFormatError(f"expected one (N, 3, H, W) input, found {[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in inputs[0].type.tensor_type.shape.dim]
    if dims[1] is None:
        raise ModelFormatError(f"input {inputs[0].name} has a symbolic channel dimension; expected (N, 3, H, W)")
    contract = contract or Contract.from_onnx(model)
    trained = contract.input_size
    default = (dims[2] or trained[0], dims[3] or trained[1])
    aspect = contract.preprocess.resize == Resize.ASPECT and None in (dims[2], dims[3])
    return InputSpec(inputs[0].name, dims[0], dims[1], dims[2], dims[3], default, contract.size_multiple or 16, aspect)


@dataclass(frozen=True)
class Profile:
    """One optimization profile of the input (``min <= opt <= max`` in every dimension)."""

    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        """``{"min": [N, C, H, W], "opt": [...], "max": [...]}`` (the sidecar form)."""
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> "Profile":
        return cls(tuple(data["min"]), tuple(data["opt"]), tuple(data["max"]))  # type: ignore[arg-type]

    def contains(self, shape: tuple[int, ...]) -> bool:
        """True if every dimension of ``shape`` lies within ``[min, max]``."""
        return len(shape) == 4 and all(lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        """``"min 1x3x128x128, opt 1x3x128x128, max 8x3x128x128"``."""
        return f"min {format_shape(self.min)}, opt {format_shape(self.opt)}, max {format_shape(self.max)}"


def resolve_profile(spec: InputSpec, min_shape: Shape | None = None, opt_shape: Shape | None = None, max_shape: Shape | None = None) -> Profile:
    """The profile to build: the given shapes, defaults for the rest, all checked against the ONNX.

    Defaults: batch 1 / 1 / 8 (or the ONNX's fixed batch) at ``spec.default_size``; for a model
    fed at each frame's aspect (``spec.aspect``), every size :func:`~segedge.contract.aspect_size`
    can give: min ``S x S``, opt ``S x 16:9`` (e.g. 256x448, the camera's usual frame), max
    ``3S x 3S`` (a 3:1 frame either way up, :data:`~segedge.contract.MAX_ASPECT`), ``S`` the
    trained short side.

    Args:
        spec: the ONNX input (:func:`onnx_input_spec`).
        min_shape, opt_shape, max_shape: ``(N, C, H, W)`` from ``--min/--opt/--max-shape``.

    Raises:
        InputError: (one line) channels differ from the ONNX's, spatial size differs from a
            fixed ONNX input, a symbolic size that is not a multiple of ``spec.size_multiple``,
            a batch other than a fixed ONNX batch, or not ``min <= opt <= max``.
    """
    h, w = spec.default_size
    c = spec.channels

    def default(batch: int, size: tuple[int, int] = (h, w)) -> Shape:
        return (spec.batch or batch, c, *size)

    sizes = {"--min-shape": (h, w), "--opt-shape": (h, w), "--max-shape": (h, w)}
    if spec.aspect:
        short = min(h, w)
        longest = aspect_size(short, int(short * MAX_ASPECT), short, spec.size_multiple)[1]
        sizes = {"--min-shape": (short, short), "--opt-shape": aspect_size(9, 16, short, spec.size_multiple),
                 "--max-shape": (longest, longest)}
    given = {"--min-shape": min_shape, "--opt-shape": opt_shape, "--max-shape": max_shape}
    shapes = {
        "--min-shape": min_shape or default(DEFAULT_MIN_BATCH, sizes["--min-shape"]),
        "--opt-shape": opt_shape or default(DEFAULT_OPT_BATCH, sizes["--opt-shape"]),
        "--max-shape": max_shape or default(DEFAULT_MAX_BATCH, sizes["--max-shape"]),
    }
    for option, shape in shapes.items():
        text = format_shape(shape)
        if shape[1] != c:
            raise InputError(f"{option} {text}: the model takes {c} channels, so the shape must be Nx{c}xHxW")
        if spec.batch is not None and shape[0] != spec.batch:
            raise InputError(f"{option} {text}: this ONNX has a fixed batch of {spec.batch}; export with a dynamic batch for others")
        if not spec.dynamic_hw and shape[2:] != (spec.height, spec.width):
            raise InputError(
                f"{option} {text}: this ONNX has a fixed {spec.height}x{spec.width} input; "
                "use that size, or export with --dynamic-hw for other sizes"
            )
        if spec.dynamic_hw and (shape[2] % spec.size_multiple or shape[3] % spec.size_multiple):
            raise InputError(f"{option} {text}: height and width must be multiples of {spec.size_multiple} (the model's pooling stages)")
    lo, mid, hi = shapes.values()
    if not all(a <= b <= d for a, b, d in zip(lo, mid, hi)):
        named = ", ".join(f"{k} {format_shape(v)}" + ("" if given[k] else " (default)") for k, v in shapes.items())
        raise InputError(f"need min <= opt <= max in every dimension, got {named}")
    return Profile(lo, mid, hi)
