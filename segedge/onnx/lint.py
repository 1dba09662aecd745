"""Check an ONNX graph against the ONNX-TensorRT parser before it goes to TensorRT.

The rules are the published operator support matrix of the ONNX-TensorRT parser
(onnx/onnx-tensorrt ``docs/operators.md`` for TensorRT 10.15: supported operators, the
data types each accepts and its restrictions), plus the pitfalls that make a parse or a
build fail later: MaxPool's ``Indices`` output, ``MaxUnpool``, UINT8 tensors inside the
network, non-zero Q/DQ zero points, restrictions that need build-time constants, and an
opset outside what the targeted TensorRT versions parse (see :data:`OPSET_RANGES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper

# Type groups of the support matrix: F = FP32, FP16, BF16; I = INT32, INT64; B = BOOL;
# U = UINT8; Q = quantized types (INT8, INT4, FP8, FP4).
_F, _I, _B = {"FLOAT", "FLOAT16", "BFLOAT16"}, {"INT32", "INT64"}, {"BOOL"}
_SUPPORTED_GROUPS = {
    "F": """Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv
        ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool
        GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax ImageScaler
        InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax LRN LSTM LpNormalization
        LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus PRelu QuantizeLinear
        RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal Resize RMSNormalization
        RNN Round ScaledTanh Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh
        ThresholdedRelu Upsample Mish BlackmanWindow HammingWindow HannWindow GridSample RoiAlign
        NonMaxSuppression NonZero DeformConv RotaryEmbedding STFT""",
    "FI": """Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual
        Max Mean Min Mod Mul Neg Pad Pow Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
        ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements ScatterND
        Shrink Sign SpaceToDepth Sub Sum TopK Gelu""",
    "FIB": """Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND Identity
        If Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile Transpose Trilu
        Unsqueeze Where""",
    "FIBU": "Cast CastLike",
    "B": "And Not Or Xor",
    "Q": "DequantizeLinear",
}
SUPPORTED: dict[str, set[str]] = {}
for _code, _ops in _SUPPORTED_GROUPS.items():
    _types = set()
    _types |= _F if "F" in _code else set()
    _types |= _I if "I" in _code else set()
    _types |= _B if "B" in _code else set()
    _types |= {"UINT8"} if "U" in _code else set()
    _types |= {"INT8", "INT4", "FLOAT8E4M3FN", "FLOAT4E2M1"} if "Q" in _code else set()
    for _op in _ops.split():
        SUPPORTED[_op] = _types
UNSUPPORTED = set(
    """AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
    ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
    MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
    QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
    SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat
    StringNormalizer StringSplit TfIdfVectorizer Unique""".split()
)
# Ops whose first input is not the data input the type list refers to.
_DATA_INPUT = {"Where": 1}
# Opsets the ONNX-TensorRT parser reads, from the first line of its docs/operators.md: "TensorRT 10.0
# supports operators in the inclusive range of opset 9 to opset 20" (the 10.0 and 10.1 releases), "opset 9
# to opset 24" for 10.15 and 11.2. Releases in between are held to 20, the last range published for them.
# Key: (first, last) TensorRT release of the row, as (major, minor).
OPSET_RANGES: dict[tuple[tuple[int, int], tuple[int, int]], tuple[int, int]] = {
    ((10, 0), (10, 14)): (9, 20),  # includes JetPack 6's TensorRT 10.3
    ((10, 15), (11, 99)): (9, 24),
}


def _release_label(first: tuple[int, int], last: tuple[int, int]) -> str:
    return f"TensorRT {first[0]}.{first[1]}-{last[0]}.{last[1]}" if last[0] == first[0] else f"TensorRT {first[0]}.{first[1]}+"


def opset_issue(opset: int, tensorrt_version: str | None = None) -> str | None:
    """Why ``opset`` will not parse on the targeted TensorRT, or ``None`` if it will.

    Args:
        opset: the model's default-domain opset.
        tensorrt_version: the TensorRT that will build the engine (``"10.3.0"``); ``None``
            targets every release segedge supports (10.0 to 11.x), so the opset must be one
            all of them read (9 to 20).

    Returns:
        One sentence naming the releases that cannot read it, or ``None``.
    """
    if tensorrt_version is not None:
        major, minor = (int(x) for x in (tensorrt_version.split(".") + ["0"])[:2])
        rows = [(k, v) for k, v in OPSET_RANGES.items() if k[0] <= (major, minor) <= k[1]]
        if not rows:
            return f"TensorRT {tensorrt_version} is outside the releases segedge supports (10.0 to 11.x)"
    else:
        rows = list(OPSET_RANGES.items())
    refusing = [(first, last, low, high) for (first, last), (low, high) in rows if not low <= opset <= high]
    if not refusing:
        return None
    readers = [_release_label(f, l) for (f, l), (low, high) in OPSET_RANGES.items() if low <= opset <= high]
    said = ", ".join(f"{_release_label(f, l)} reads {low}..{high}" for f, l, low, high in refusing)
    return f"opset {opset} will not parse: {said}" + (f" (only {', '.join(readers)} reads it)" if readers else "") + "; export with --opset 17"


@dataclass
class LintIssue:
    severity: str  # "error": the parser or builder will fail; "warning": check before relying on it
    node: str  # node name ('' for graph-level issues)
    op: str
    message: str

    def __str__(self) -> str:
        where = f"{self.op} node {self.node!r}" if self.node else "graph"
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class LintReport:
    issues: list[LintIssue] = field(default_factory=list)
    basis: str = "ONNX-TensorRT operator support matrix, TensorRT 10.15"

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.issues:
            return f"TensorRT lint: clean ({self.basis})"
        warnings = len(self.issues) - len(self.errors)
        return f"TensorRT lint: {len(self.errors)} errors, {warnings} warnings ({self.basis})"


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def lint_tensorrt(model: onnx.ModelProto, tensorrt_version: str | None = None) -> LintReport:
    """List every node TensorRT's ONNX parser would reject or restrict.

    Args:
        model: the ONNX model (shape inference is run on a copy to learn tensor types).
        tensorrt_version: the TensorRT that will parse it; ``None``: every release segedge
            supports (see :func:`opset_issue`).

    Returns:
        :class:`LintReport`; ``report.ok`` is False if any node would fail to parse.
    """
    report = LintReport()
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a graph shape inference chokes on still gets the op-level checks
        inferred = model
    types: dict[str, int] = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types[info.name] = info.type.tensor_type.elem_type
    constants = {init.name for init in inferred.graph.initializer}
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
    io_names = {i.name for i in inferred.graph.input} | {o.name for o in inferred.graph.output}

    def add(severity: str, node: onnx.NodeProto | None, message: str) -> None:
        report.issues.append(LintIssue(severity, node.name if node else "", node.op_type if node else "", message))

    opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")), None)
    problem = opset_issue(opset, tensorrt_version) if opset is not None else None
    if problem:
        add("error", None, problem)
    for info in inferred.graph.input:
        dims = info.type.tensor_type.shape.dim
        symbolic = [d.dim_param or "?" for d in dims[1:] if not d.HasField("dim_value")]
        if symbolic:
            add("warning", None, f"input {info.name!r} has symbolic non-batch dims {symbolic}: the engine's optimization "
                "profile must cover every size you will feed")

    for node in inferred.graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            add("error", node, f"custom domain {node.domain!r}: needs a TensorRT plugin")
            continue
        if op in UNSUPPORTED:
            hint = " (rewrite it: `segedge export MODEL.onnx --target tensorrt`)" if op == "MaxUnpool" else ""
            add("error", node, f"{op} is not supported by the ONNX-TensorRT parser{hint}")
            continue
        if op not in SUPPORTED:
            add("warning", node, f"{op} is not in the parser's support matrix")
            continue
        data = node.input[_DATA_INPUT.get(op, 0)] if node.input else ""
        if data in types and types[data]:
            name = _type_name(types[data])
            if name not in SUPPORTED[op]:
                severity = "warning" if name == "DOUBLE" else "error"
                add(severity, node, f"input {data!r} is {name}; TensorRT's {op} takes {', '.join(sorted(SUPPORTED[op]))}")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
            add("error", node, "MaxPool's Indices output is unsupported (rewrite the unpool: `segedge export ... --target tensorrt`)")
        if op in ("MaxPool", "AveragePool", "LpPool") and any(d != 1 for d in attrs.get("dilations", [])):
            add("error", node, f"dilations {attrs['dilations']} must be all ones")
        if op == "ScatterND" and attrs.get("reduction", b"none") not in (b"none", "none"):
            add("error", node, "ScatterND reduction other than 'none' is unsupported")
        if op == "TopK" and attrs.get("sorted", 1) != 1:
            add("error", node, "TopK needs sorted=1")
        if op in ("Squeeze", "Unsqueeze") and len(node.input) > 1 and node.input[1] not in constants:
            add("warning", node, "axes must be resolvable to a constant at build time")
        if op.startswith("Reduce") and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            add("error", node, "axes must be an initializer")
        if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zero = next((i for i in inferred.graph.initializer if i.name == node.input[2]), None)
            if zero is not None and onnx.numpy_helper.to_array(zero).any():
                add("error", node, "zero point must be 0 (TensorRT quantization is symmetric)")
        if op == "Resize":
            mode = attrs.get("mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if mode not in ("nearest", "linear"):
                add("error", node, f"Resize mode {mode!r} is unsupported (nearest, linear)")
            if attrs.get("antialias", 0):
                add("error", node, "Resize antialiasing is unsupported")
        for out in node.output:
            if out and out not in io_names and types.get(out) == TensorProto.UINT8:
                add("error", node, f"output {out!r} is UINT8, which TensorRT allows only as a network input or output")
    return report
