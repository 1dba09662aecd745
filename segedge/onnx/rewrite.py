"""ONNX in, ONNX out: rewrite max-pool-with-indices + max-unpool at graph level.

For SegNet/ENet-style models exported elsewhere. Two unpool encodings are recognised:

- ``MaxPool`` with an ``Indices`` output feeding ``MaxUnpool`` (ONNX's own form; ONNX
  Runtime runs it, TensorRT's parser rejects both), and
- the form of PyTorch's dynamo exporter: ``MaxPool`` with ``Indices`` whose indices, after
  some index arithmetic, drive a ``ScatterND`` into a zero tensor that is reshaped back to
  ``(N, C, H, W)``.

Each unpool site is replaced by one of two exact forms:

- ``standard`` (for TensorRT): the window argmax found from strided slices of the pooled
  input (first maximum wins, as ONNX's MaxPool and PyTorch define it), values placed by
  ``Where`` selection, windows interleaved with ``DepthToSpace`` (CRD), zero rows/columns
  padded for odd sizes. The pool keeps only its values output.
- ``native`` (for ONNX Runtime): ``MaxUnpool`` fed by the pool's own ``Indices``, the
  cheapest form where the runtime implements it.

:func:`outputs_identical` proves a rewrite by running both graphs in ONNX Runtime (graph
optimisations off, so both execute the same convolution kernels) on a tie-heavy probe and
random inputs: every output value must be identical, infinities and NaN positions included.
Signed zeros are the one exception, and it is ONNX Runtime's: its ``Where`` returns +0.0
when it selects a -0.0 (measured with onnxruntime 1.32), so a -0.0 the unpool should place
arrives as +0.0. No later operation can tell them apart except by the sign of an exact
zero; PyTorch's ``where`` keeps the sign, and the PyTorch-level rewrite is bit-identical.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from segedge.errors import ExportError

FORMS = ("standard", "native")


@dataclass
class UnpoolSite:
    """One pool/unpool pair found in a graph."""

    pool: onnx.NodeProto  # MaxPool with an Indices output
    pooled_input: str  # X, the tensor the pool reads (N, C, H, W)
    values: str  # Y, the tensor placed back at the indices (N, C, h, w)
    output: str  # the unpooled tensor (N, C, H, W) consumers read
    kernel: int  # window size k (kernel == stride)
    kind: str  # "MaxUnpool" or "ScatterND"
    removed: list[onnx.NodeProto]  # nodes that compute the unpool and become dead


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def pool_window(node: onnx.NodeProto) -> int:
    """Window size of a MaxPool the rewrite expresses exactly.

    Raises:
        ExportError: overlapping windows, padding, dilation, ceil_mode, a column-major
            ``storage_order`` or a non-square 2D kernel; the message names the node.
    """
    a = _attrs(node)
    kernel = list(a.get("kernel_shape", []))
    strides = list(a.get("strides", kernel))
    problems = []
    if len(kernel) != 2 or kernel[0] != kernel[1]:
        problems.append(f"kernel {kernel} is not a square 2D window")
    if strides != kernel:
        problems.append(f"strides {strides} != kernel {kernel}")
    if any(a.get("pads", [])) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        problems.append("padding")
    if any(d != 1 for d in a.get("dilations", [])):
        problems.append(f"dilations {a['dilations']}")
    if a.get("ceil_mode", 0):
        problems.append("ceil_mode=1")
    if a.get("storage_order", 0):
        problems.append("storage_order=1 (column-major indices)")
    if problems:
        raise ExportError(f"MaxPool node {node.name!r} cannot be rewritten exactly: {', '.join(problems)}")
    return kernel[0]


def find_unpool_sites(model: onnx.ModelProto) -> list[UnpoolSite]:
    """Find every MaxUnpool / dynamo-ScatterND unpool fed by a MaxPool's Indices.

    Raises:
        ExportError: an unpool whose indices do not come from a MaxPool, or an
            unrecognised ScatterND arrangement around pool indices.
    """
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output if out}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    index_outputs = {n.output[1]: n for n in nodes if n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1]}

    def pool_behind(tensor: str) -> onnx.NodeProto | None:
        """The MaxPool whose Indices reach ``tensor`` through index arithmetic."""
        stack, seen = [tensor], set()
        found = None
        while stack:
            name = stack.pop()
            if name in seen or name not in producer:
                continue
            seen.add(name)
            if name in index_outputs:
                found = index_outputs[name]
                continue
            node = producer[name]
            if node.op_type in ("Conv", "Relu", "MaxPool", "BatchNormalization"):
                continue  # left the index computation
            stack.extend(node.input)
        return found

    sites = []
    for node in nodes:
        if node.op_type == "MaxUnpool":
            pool = index_outputs.get(node.input[1])
            if pool is None:
                raise ExportError(f"MaxUnpool {node.name!r} does not take its indices from a MaxPool")
            sites.append(UnpoolSite(pool, pool.input[0], node.input[0], node.output[0], pool_window(pool), "MaxUnpool", [node]))
        elif node.op_type == "ScatterND":
            pool = pool_behind(node.input[1])
            if pool is None:
                continue  # an unrelated scatter
            updates = producer.get(node.input[2])
            after = consumers.get(node.output[0], [])
            if updates is None or updates.op_type not in ("Reshape", "Flatten") or len(after) != 1 or after[0].op_type != "Reshape":
                raise ExportError(
                    f"ScatterND {node.name!r} takes MaxPool {pool.name!r} indices but is not the flatten/scatter/reshape "
                    "form of an unpool"
                )
            # the index arithmetic and the flattening become dead and go with dead-code elimination
            sites.append(
                UnpoolSite(pool, pool.input[0], updates.input[0], after[0].output[0], pool_window(pool), "ScatterND",
                           [node, after[0]])
            )
    return sites


class _Builder:
    """Appends uniquely named nodes and constants."""

    def __init__(self, prefix: str, taken: set[str]):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = itertools.count()
        self._taken = taken  # names already in the graph (a model rewritten before keeps its names)

    def name(self, stem: str) -> str:
        while True:
            name = f"{self.prefix}/{stem}_{next(self._count)}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def const(self, values, dtype=np.int64) -> str:
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs) -> str | list[str]:
        names = outputs if isinstance(outputs, list) else [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if len(names) == 1 else names


def _static_hw(model: onnx.ModelProto, tensor: str) -> tuple[int, int] | None:
    for info in list(model.graph.value_info) + list(model.graph.input):
        if info.name == tensor:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[2].HasField("dim_value") and dims[3].HasField("dim_value"):
                return dims[2].dim_value, dims[3].dim_value
    return None


def _standard_unpool(b: _Builder, site: UnpoolSite, output: str, static_hw: tuple[int, int] | None) -> None:
    k, x, y = site.kernel, site.pooled_input, site.values
    hw = b.op("Slice", [b.op("Shape", [x]), b.const([2]), b.const([4]), b.const([0])])  # [H, W]
    kk = b.const([k, k])
    crop = b.op("Mul", [b.op("Div", [hw, kk]), kk])  # [k * (H // k), k * (W // k)]
    slices = [
        b.op("Slice", [x, b.const([di, dj]), crop, b.const([2, 3]), kk]) for di in range(k) for dj in range(k)
    ]  # window position (di, dj) of every window: (N, C, h, w)
    window_max = b.op("Max", slices)
    # first maximum wins: position q is chosen if it equals the max and no earlier one did
    chosen, taken = [], None
    for q, s in enumerate(slices[:-1]):
        equal = b.op("Equal", [s, window_max])
        chosen.append(equal if taken is None else b.op("And", [equal, b.op("Not", [taken])]))
        taken = equal if taken is None else b.op("Or", [taken, equal])
    chosen.append(b.op("Not", [taken]))
    zero = b.op("CastLike", [b.const(0.0, np.float32), y])
    planes = [b.op("Unsqueeze", [b.op("Where", [m, y, zero]), b.const([2])]) for m in chosen]  # (N, C, 1, h, w)
    stacked = b.op("Concat", planes, axis=2)  # (N, C, k*k, h, w)
    shape_y = b.op("Shape", [y])
    flat_shape = b.op(
        "Concat",
        [
            b.op("Slice", [shape_y, b.const([0]), b.const([1])]),
            b.op("Mul", [b.op("Slice", [shape_y, b.const([1]), b.const([2])]), b.const([k * k])]),
            b.op("Slice", [shape_y, b.const([2]), b.const([4])]),
        ],
        axis=0,
    )
    flat = b.op("Reshape", [stacked, flat_shape])  # (N, C*k*k, h, w), channel c*k*k + di*k + dj
    if static_hw is not None and static_hw[0] % k == 0 and static_hw[1] % k == 0:
        b.op("DepthToSpace", [flat], [output], blocksize=k, mode="CRD")
        return
    interleaved = b.op("DepthToSpace", [flat], blocksize=k, mode="CRD")  # (N, C, k*h, k*w)
    pads = b.op("Concat", [b.const([0, 0, 0, 0, 0, 0]), b.op("Sub", [hw, crop])], axis=0)
    b.op("Pad", [interleaved, pads], [output])  # zero rows/columns where odd sizes leave them


def _native_unpool(b: _Builder, site: UnpoolSite, output: str) -> None:
    b.op(
        "MaxUnpool", [site.values, site.pool.output[1], b.op("Shape", [site.pooled_input])], [output],
        kernel_shape=[site.kernel, site.kernel], strides=[site.kernel, site.kernel],
    )


def _cleanup(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop dead nodes and unused initialisers, unused Indices outputs, and sort."""
    import onnx_ir as ir
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    ir_model = ir.from_proto(model)
    ir_model = RemoveUnusedNodesPass()(ir_model).model
    ir_model.graph.sort()
    cleaned = ir.to_proto(ir_model)
    used = {name for node in cleaned.graph.node for name in node.input} | {o.name for o in cleaned.graph.output}
    for node in cleaned.graph.node:
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] and node.output[1] not in used:
            del node.output[1]
    return cleaned


def rewrite_unpool(model: onnx.ModelProto, form: str = "standard") -> tuple[onnx.ModelProto, int]:
    """Replace every pool/unpool pair by the ``standard`` or ``native`` exact form.

    Args:
        model: any ONNX model; sites are found with :func:`find_unpool_sites`.
        form: ``standard`` (TensorRT-parseable) or ``native`` (MaxUnpool, ONNX Runtime).

    Returns:
        The rewritten model (a new proto) and the number of sites rewritten.

    Raises:
        ExportError: an unknown form, or a site the rewrite cannot express exactly.
    """
    if form not in FORMS:
        raise ExportError(f"unknown unpool form {form!r}; expected one of {', '.join(FORMS)}")
    model = onnx.shape_inference.infer_shapes(model)
    sites = find_unpool_sites(model)
    if form == "native" and all(site.kind == "MaxUnpool" for site in sites):
        return model, 0
    taken = {name for n in model.graph.node for name in [n.name, *n.output]} | {i.name for i in model.graph.initializer}
    builder = _Builder("segedge_unpool", taken)
    removed: set[int] = set()
    for site in sites:
        if form == "native" and site.kind == "MaxUnpool":
            continue
        removed.update(id(n) for n in site.removed)
        if form == "standard":
            _standard_unpool(builder, site, site.output, _static_hw(model, site.pooled_input))
        else:
            _native_unpool(builder, site, site.output)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    kept = [n for n in model.graph.node if id(n) not in removed]
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(kept + builder.nodes)
    rewritten.graph.initializer.extend(builder.initializers)
    del rewritten.graph.value_info[:]
    cleaned = _cleanup(rewritten)
    onnx.checker.check_model(cleaned)
    return cleaned, len(sites)


def tie_heavy_inputs(model: onnx.ModelProto, batch: int = 2, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """A tie-heavy probe (values from {0, 0.5, 1}) and a uniform random input for the
    model's single float input, at its static sizes (symbolic dims: ``batch`` and 128)."""
    (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    dims = [d.dim_value if d.HasField("dim_value") else (batch if i == 0 else 128) for i, d in enumerate(inp.type.tensor_type.shape.dim)]
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    rng = np.random.default_rng(seed)
    probe = rng.choice(np.array([0.0, 0.0, 0.5, 1.0]), size=dims).astype(dtype)
    return [{inp.name: probe}, {inp.name: rng.random(dims).astype(dtype)}]


def outputs_identical(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> bool:
    """Run both graphs in ONNX Runtime without graph optimisations on :func:`tie_heavy_inputs`
    and compare every output value (NaN positions must match; +0.0 equals -0.0, see the module
    docstring for why)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    a = ort.InferenceSession(original.SerializeToString(), options, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for feed in tie_heavy_inputs(original):
        for x, y in zip(a.run(None, feed), b.run(None, feed)):
            if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                return False
    return True
