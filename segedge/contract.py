"""The deployment contract as a type, and the vocabulary every stage shares.

An artifact (checkpoint, ONNX file, TensorRT engine sidecar, OpenVINO IR) carries what a
deployed model must agree with: its preprocessing, class names and overlay palette, input
size, numeric precision, target form and provenance. :class:`Contract` holds it, and this
module is the ONLY reader and writer of that record (the MMDeploy ``deploy.json`` /
Ultralytics metadata pattern): every runner exposes ``runner.contract``; no other module
parses metadata keys.

Storage forms (one writer and one reader each):

- ONNX: ``metadata_props`` with ``segedge.``-prefixed string keys (:meth:`Contract.write_onnx`,
  :meth:`Contract.from_onnx`); ONNX Runtime's ``custom_metadata_map`` and OpenVINO's
  ``rt_info`` hold the same prefixed mapping (:meth:`Contract.to_props`, :meth:`Contract.from_props`).
- engine sidecar: the unprefixed mapping (:meth:`Contract.to_metadata`, :meth:`Contract.from_metadata`).
- checkpoint: plain values in the ``torch.save`` dict (:meth:`Contract.to_checkpoint`,
  :meth:`Contract.from_checkpoint`).

Ground floor: imports only the standard library and :mod:`segedge.errors`.
"""

from __future__ import annotations

import colorsys
import json
import math
import logging
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Iterable, Mapping, MutableSequence

from segedge.errors import InputError, ModelFormatError

log = logging.getLogger(__name__)

PREFIX = "segedge."  # ONNX metadata_props / ORT custom_metadata_map / OpenVINO rt_info key prefix


class Word(str, Enum):
    """Base of segedge's vocabularies: a ``str`` Enum that prints as its value (``str(Precision.INT8)``
    is ``int8``, as on the command line and in metadata); ``enum.StrEnum`` once Python 3.10 is dropped."""

    def __str__(self) -> str:
        return self.value


class Precision(Word):
    """Numeric precision of a deployed model."""

    FP32 = "fp32"
    FP16 = "fp16"  # FP16 weights and activations, float32 input and output
    INT8 = "int8"  # explicit quantization (Q/DQ), signed INT8


class Target(Word):
    """Form of an exported ONNX (how max-unpooling is expressed)."""

    TENSORRT = "tensorrt"  # standard ops only: what TensorRT's ONNX parser takes
    ONNXRUNTIME = "onnxruntime"  # MaxPool Indices + MaxUnpool: about 2x faster in ONNX Runtime on a CPU


class Backend(Word):
    """Inference backend a runner uses."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"
    TRITON = "triton"  # a model on a Triton Inference Server (triton://HOST:PORT/MODEL)
    AUTO = "auto"  # a choice (``--backend auto``), never a runner's: chosen by the artifact, see segedge.runtime.factory.resolve_backend


class CalibrationMethod(Word):
    """INT8 activation-range calibration (ONNX Runtime ``CalibrationMethod``)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"  # KL divergence, TensorRT's classic entropy calibrator
    PERCENTILE = "percentile"  # clip rare outliers


class Recipe(Word):
    """Training recipe (:mod:`segedge.training`)."""

    ARTICLE = "article"  # Matani & Singh's augmentation: reproduces the article
    ROBUST = "robust"  # adds copy-paste, zoom-out, colour jitter and blur, for real video


class Amp(Word):
    """Mixed precision (autocast dtype) of a training step."""

    AUTO = "auto"  # FP16 on CUDA, BF16 on CPUs with AVX-512 BF16 / AMX, else OFF
    BF16 = "bf16"
    FP16 = "fp16"
    OFF = "off"


class Provider(Word):
    """ONNX Runtime execution provider."""

    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"


class Interpolation(Word):
    """Image resize of the preprocessing (OpenCV ``INTER_*``)."""

    NEAREST = "nearest"  # the article's choice (torchvision InterpolationMode.NEAREST)
    LINEAR = "linear"
    AREA = "area"
    CUBIC = "cubic"


class Resize(Word):
    """How a frame becomes the model input (:func:`segedge.data.transforms.preprocess`)."""

    STRETCH = "stretch"  # every frame resized to height x width, aspect ignored (the article)
    ASPECT = "aspect"  # the frame's aspect kept: short side min(height, width), long side to the nearest size multiple


class Upsample(Word):
    """How a model-resolution result is brought to the frame (``segedge run --upsample``; see
    :class:`~segedge.runtime.overlay.Overlay`)."""

    LINEAR = "linear"  # class scores resized bilinearly, then the argmax at full resolution: smooth edges
    NEAREST = "nearest"  # the class map resized with nearest neighbour: blocky at 854x480, cheaper


class HardwareCompatibility(Word):
    """TensorRT engine hardware compatibility (``HardwareCompatibilityLevel``)."""

    NONE = "none"  # runs only on GPUs of the compute capability it was built on
    AMPERE_PLUS = "ampere+"  # runs on any Ampere or newer GPU (compute capability 8.0+)


INTERPOLATION_NAMES = tuple(i.value for i in Interpolation)
RESIZE_NAMES = tuple(r.value for r in Resize)
MAX_ASPECT = 3.0  # aspect-preserving inputs stop at 3:1; a wider frame is squeezed to 3:1 (TensorRT profiles cover up to it)

# Oxford-IIIT Pet trimap classes, the default of every segedge artifact (class index = trimap value - 1).
PET_CLASSES: tuple[str, ...] = ("pet", "background", "border")
# BGR overlay colour per class (None: not drawn): pet orange, background clear, border yellow.
PET_PALETTE: tuple[tuple[int, int, int] | None, ...] = ((0, 140, 255), None, (0, 255, 255))

Color = tuple[int, int, int]


def default_palette(classes: Iterable[str]) -> tuple[Color | None, ...]:
    """Overlay colours for ``classes``: the Pet palette for the Pet classes; otherwise class
    0 (conventionally background) undrawn and the others evenly spaced hues (BGR)."""
    classes = tuple(classes)
    if classes == PET_CLASSES:
        return PET_PALETTE
    n = len(classes)
    palette: list[Color | None] = [None]
    for i in range(1, n):
        r, g, b = colorsys.hsv_to_rgb((i - 1) / max(n - 1, 1), 0.9, 1.0)
        palette.append((int(255 * b), int(255 * g), int(255 * r)))
    return tuple(palette[:n])


def _triple(name: str, value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be three numbers (one per input channel), got {value!r}") from None
    if len(values) != 3:
        raise InputError(f"{name} must be three numbers (one per input channel), got {len(values)}")
    return values  # type: ignore[return-value]


MAX_INPUT_PIXELS = 16 * 2**20  # a model input of 4096x4096 is far beyond any segmentation network on an edge device


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of :func:`segedge.data.transforms.preprocess`; stored with every artifact.

    ``x = (pixel * scale - mean) / std`` per channel, in the model's channel order; without
    mean/std (the default, and every artifact written before they existed) ``x = pixel * scale``.
    """

    height: int = 128  # model input height in pixels
    width: int = 128  # model input width in pixels
    interpolation: str = "nearest"  # image resize: nearest | linear | area | cubic (article: nearest)
    channel_order: str = "RGB"  # channel order the model expects (frames arrive BGR from OpenCV)
    scale: float = 1.0 / 255.0  # uint8 -> float multiplier: [0, 255] -> [0, 1]
    mean: tuple[float, float, float] | None = None  # per channel, subtracted after scaling (ImageNet: 0.485, 0.456, 0.406)
    std: tuple[float, float, float] | None = None  # per channel, divides after the mean (ImageNet: 0.229, 0.224, 0.225)
    resize: str = "stretch"  # stretch: every frame to height x width | aspect: keep the frame's aspect (see aspect_size)

    def __post_init__(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.height, self.width)):
            raise InputError(f"input size must be whole pixels, got {self.height!r}x{self.width!r}")
        if self.height <= 0 or self.width <= 0:
            raise InputError(f"input size must be positive, got {self.height}x{self.width}")
        if self.height * self.width > MAX_INPUT_PIXELS:  # a tampered record would allocate GBs per frame
            raise InputError(f"input size {self.height}x{self.width} is over the {MAX_INPUT_PIXELS // 2**20} Mpixel limit of a model input")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)):
            raise InputError(f"scale must be a finite number, got {self.scale!r}")
        object.__setattr__(self, "interpolation", str(self.interpolation))  # an Interpolation member is stored as its value
        if self.interpolation not in INTERPOLATION_NAMES:
            raise InputError(
                f"unknown interpolation {self.interpolation!r}; expected one of {', '.join(INTERPOLATION_NAMES)}"
            )
        object.__setattr__(self, "resize", str(self.resize))
        if self.resize not in RESIZE_NAMES:
            raise InputError(f"unknown resize {self.resize!r}; expected one of {', '.join(RESIZE_NAMES)}")
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        object.__setattr__(self, "mean", _triple("mean", self.mean))
        object.__setattr__(self, "std", _triple("std", self.std))
        if self.std is not None and min(self.std) <= 0:
            raise InputError(f"std must be positive, got {self.std}")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input."""
        return self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        """Plain values; ``mean``/``std`` only when set and ``resize`` only when not ``stretch``
        (older readers and hashes stay valid)."""
        data = asdict(self)
        for key in ("mean", "std"):
            if data[key] is None:
                del data[key]
            else:
                data[key] = list(data[key])
        if data["resize"] == Resize.STRETCH.value:
            del data["resize"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        """Rebuild from :meth:`to_dict` output (with or without mean/std).

        Raises:
            InputError: unknown keys or invalid values (an artifact from another tool).
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown preprocessing parameters {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"preprocessing metadata is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError("preprocessing metadata must be a JSON object")
        return cls.from_dict(data)


def aspect_size(frame_height: int, frame_width: int, short_side: int, multiple: int = 1) -> tuple[int, int]:
    """The model input size that keeps a frame's aspect ratio.

    The frame's shorter side becomes ``short_side``; the longer one follows the aspect ratio
    (capped at :data:`MAX_ASPECT`) and is rounded to the nearest multiple of ``multiple``
    (at least ``short_side``). A 854x480 (16:9) frame at short side 256, multiple 32 gives
    ``(256, 448)``; 640x480 (4:3) gives ``(256, 352)``; a portrait frame the transpose.

    Args:
        frame_height, frame_width: the frame's size in pixels (> 0).
        short_side: the model input's shorter side in pixels, a multiple of ``multiple``.
        multiple: input sides must be multiples of this (``2 ** pooling stages``).

    Returns:
        ``(height, width)`` of the model input in pixels.

    Raises:
        InputError: a non-positive size, or a ``short_side`` that is not a multiple of ``multiple``.
    """
    if frame_height <= 0 or frame_width <= 0 or short_side <= 0 or multiple <= 0:
        raise InputError(f"sizes must be positive, got frame {frame_height}x{frame_width}, short side {short_side}, multiple {multiple}")
    if short_side % multiple:
        raise InputError(f"short side {short_side} is not a multiple of {multiple}")
    ratio = min(max(frame_height, frame_width) / min(frame_height, frame_width), MAX_ASPECT)
    long_side = max(short_side, int(round(short_side * ratio / multiple)) * multiple)
    return (short_side, long_side) if frame_height <= frame_width else (long_side, short_side)


def read_props(props: Iterable[Any] | Mapping[str, str]) -> dict[str, str]:
    """The ``segedge.*`` entries of ONNX ``metadata_props`` (or of a prefixed mapping such as
    ONNX Runtime's ``custom_metadata_map``), without the prefix."""
    items = props.items() if isinstance(props, Mapping) else ((p.key, p.value) for p in props)
    return {k[len(PREFIX) :]: v for k, v in items if k.startswith(PREFIX)}


def write_props(props: MutableSequence[Any], metadata: Mapping[str, str]) -> None:
    """Write ``metadata`` (unprefixed keys) into ONNX ``metadata_props``, replacing existing
    entries of the same keys and keeping all others."""
    prefixed = {PREFIX + k: v for k, v in metadata.items()}
    keep = [(p.key, p.value) for p in props if p.key not in prefixed]
    del props[:]
    for key, value in [*keep, *prefixed.items()]:
        props.add(key=key, value=value)


RT_INFO_SECTION = "segedge"  # OpenVINO IR rt_info section holding the contract (unprefixed keys)
IR_WEIGHTS_KEY = "weights_sha256"  # in that section: hex SHA-256 of the IR's .bin, beside the contract


def _openvino_section(model: Any) -> dict[str, str]:
    if not model.has_rt_info([RT_INFO_SECTION]):
        return {}
    return {key: model.get_rt_info([RT_INFO_SECTION, key]).astype(str) for key in model.get_rt_info()[RT_INFO_SECTION]}


def openvino_weights_sha256(model: Any) -> str | None:
    """The ``.bin`` SHA-256 an IR's ``.xml`` records (``None``: an IR written before segedge
    recorded it, or by another tool)."""
    return _openvino_section(model).get(IR_WEIGHTS_KEY)


def onnx_input_size(model: Any) -> tuple[int | None, int | None]:
    """``(H, W)`` of an ``onnx.ModelProto``'s first graph input in pixels, ``None`` where
    symbolic or when the input is not rank 4."""
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if len(dims) != 4:
        return None, None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims[2:4])  # type: ignore[return-value]


# the entries without which a record declares no contract: what a model is fed and what its outputs mean
# (every segedge version wrote both; a foreign model a step stamped with ``precision`` alone has neither)
DECLARING_KEYS = ("preprocess", "classes")
# keys the Contract fields own; anything else in an artifact's record rides along in ``extra``
_OWN_KEYS = (
    "model", "classes", "palette", "preprocess", "input_size", "size_multiple", "dynamic", "precision", "target",
    "training_data", "segedge_version", "checkpoint_sha256",
)


@dataclass(frozen=True)
class Contract:
    """What a deployed model must agree with; carried by every artifact.

    Attributes:
        preprocess: resize, channel order, scale and optional mean/std (see :class:`PreprocessConfig`).
        classes: class names in logit order.
        palette: BGR overlay colour per class (``None``: not drawn); default :func:`default_palette`.
        precision: numeric precision of the artifact.
        target: unpool form of an ONNX (``None`` for a checkpoint or a foreign model).
        model: registry name or a user's label (``unknown`` for a foreign ONNX).
        training_data: what it was trained on (``unknown`` when not recorded).
        checkpoint_sha256: hex SHA-256 of the checkpoint it came from ("" when none).
        segedge_version: the segedge that wrote the artifact ("" for a foreign one).
        dynamic: symbolic input axes of an ONNX (``batch``, ``height``, ``width``).
        size_multiple: input height/width must be multiples of this (``2 ** pooling stages``).
        extra: other ``segedge.*`` entries (``fp32_nodes``, ``calibration``, ...), kept verbatim.
        declared: whether the artifact carried a complete segedge record (every key of
            :data:`DECLARING_KEYS`); ``False``: no record, or a partial one (a foreign model a
            conversion step stamped with its ``precision``), completed with defaults.
    """

    preprocess: PreprocessConfig = PreprocessConfig()
    classes: tuple[str, ...] = PET_CLASSES
    palette: tuple[Color | None, ...] | None = None
    precision: Precision = Precision.FP32
    target: Target | None = None
    model: str = "unknown"
    training_data: str = "unknown"
    checkpoint_sha256: str = ""
    segedge_version: str = ""
    dynamic: tuple[str, ...] = ()
    size_multiple: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    declared: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if not self.classes:
            raise InputError("a model needs at least one class")
        palette = default_palette(self.classes) if self.palette is None else tuple(
            None if c is None else tuple(int(v) for v in c) for c in self.palette
        )
        if len(palette) != len(self.classes):
            raise InputError(f"palette has {len(palette)} colours for {len(self.classes)} classes")
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "precision", Precision(self.precision))
        if self.target is not None:
            object.__setattr__(self, "target", Target(self.target))
        object.__setattr__(self, "dynamic", tuple(self.dynamic))
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the model was trained at, in pixels."""
        return self.preprocess.size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def any_size(self) -> bool:
        """Whether the artifact takes inputs of other sizes than :attr:`input_size` (symbolic
        height and width, in multiples of :attr:`size_multiple`)."""
        return "height" in self.dynamic and "width" in self.dynamic

    def accepts(self, height: int, width: int) -> bool:
        """Whether a ``(N, 3, height, width)`` input fits the artifact: the trained size, or
        with :attr:`any_size` any multiple of :attr:`size_multiple`."""
        if (height, width) == self.input_size:
            return True
        multiple = self.size_multiple or 1
        return self.any_size and height > 0 and width > 0 and height % multiple == 0 and width % multiple == 0

    def input_size_for(self, frame_height: int, frame_width: int) -> tuple[int, int]:
        """The input size a frame of ``frame_height x frame_width`` pixels is fed at.

        With ``preprocess.resize == "aspect"`` and an artifact of :attr:`any_size`: the
        aspect-preserving size of :func:`aspect_size` at the short side
        ``min(input_size)``; otherwise :attr:`input_size` (every frame stretched to it).
        """
        if self.preprocess.resize != Resize.ASPECT.value or not self.any_size:
            return self.input_size
        return aspect_size(frame_height, frame_width, min(self.input_size), self.size_multiple or 1)

    @property
    def calibration(self) -> dict[str, Any]:
        """The INT8 calibration record an artifact carries (``calibration`` entry, written by
        :func:`segedge.calibration.quantize.quantize_int8`: method, images, target form, FP16
        base, ...); ``{}`` when absent or unreadable."""
        try:
            record = json.loads(self.extra.get("calibration", "{}"))
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def defaults_note(self, source: str) -> str:
        """One line for an artifact that declares no contract: what is assumed in its place."""
        h, w = self.input_size
        classes = "the Oxford-IIIT Pet classes" if self.classes == PET_CLASSES else f"{self.num_classes} classes"
        return (f"{source} declares no segedge contract (preprocess and classes); assuming {classes} and the default "
                f"preprocessing at {h}x{w} (declare them with `segedge export --classes/--mean/--std`)")

    def replace(self, **changes: Any) -> "Contract":
        """A copy with ``changes`` applied (the dataclass is frozen)."""
        return replace(self, **changes)

    def override(
        self,
        classes: Iterable[str] | None = None,
        mean: Iterable[float] | None = None,
        std: Iterable[float] | None = None,
    ) -> "Contract":
        """A copy declaring what a foreign model's file does not say (``segedge export
        --classes/--mean/--std``): new classes get the default palette for them; mean and
        std must come together unless the preprocessing already has the other.

        Raises:
            InputError: an empty class list, mean/std not three numbers, std not positive.
        """
        changes: dict[str, Any] = {"declared": True}
        if classes is not None:
            names = tuple(classes)
            if not names:
                raise InputError("--classes needs at least one class name")
            changes.update(classes=names, palette=None)
        if mean is not None or std is not None:
            preprocess = replace(
                self.preprocess,
                mean=tuple(mean) if mean is not None else self.preprocess.mean or (0.0, 0.0, 0.0),
                std=tuple(std) if std is not None else self.preprocess.std or (1.0, 1.0, 1.0),
            )
            changes["preprocess"] = preprocess
        return replace(self, **changes)

    # -- unprefixed string mapping: the engine sidecar, and the core of every other form --
    def to_metadata(self) -> dict[str, str]:
        """The contract as unprefixed string entries (the order ``segedge export`` writes)."""
        meta = {
            "model": self.model,
            "classes": json.dumps(list(self.classes)),
            "palette": json.dumps([list(c) if c else None for c in self.palette or ()]),
            "preprocess": self.preprocess.to_json(),
            "input_size": json.dumps(list(self.input_size)),
        }
        if self.size_multiple is not None:
            meta["size_multiple"] = str(self.size_multiple)
        meta["dynamic"] = json.dumps(list(self.dynamic))
        meta["precision"] = self.precision.value
        if self.target is not None:
            meta["target"] = self.target.value
        meta["training_data"] = self.training_data
        meta["segedge_version"] = self.segedge_version
        if self.checkpoint_sha256:
            meta["checkpoint_sha256"] = self.checkpoint_sha256
        meta.update({k: v for k, v in self.extra.items() if k not in meta})
        return meta

    @classmethod
    def from_metadata(
        cls,
        meta: Mapping[str, str],
        source: str = "artifact",
        fallback_size: tuple[int | None, int | None] | None = None,
        fallback_precision: Precision | str = Precision.FP32,
    ) -> "Contract":
        """Read the unprefixed mapping written by :meth:`to_metadata` (any subset of it).

        Only a complete record (every key of :data:`DECLARING_KEYS`) is a declared contract;
        a partial one keeps what it says and takes defaults for the rest, with
        ``declared=False``, so no later step stamps those defaults into the artifact.

        Args:
            meta: unprefixed entries.
            source: artifact path, for messages.
            fallback_size: ``(H, W)`` of the model input in pixels when there is no
                ``preprocess`` entry (a foreign ONNX's static input size); ``None``: the
                record's ``input_size``, else the default 128x128; a symbolic dimension
                (``None`` inside): the record's ``input_size``, else an error.
            fallback_precision: precision when there is no ``precision`` entry.

        Raises:
            ModelFormatError: malformed entries, or no preprocessing record and neither an
                ``input_size`` entry nor a static input size.
        """
        try:
            missing = [key for key in DECLARING_KEYS if key not in meta]
            what = "no segedge metadata" if not meta else f"an incomplete segedge record (no {', '.join(missing)})"
            if "preprocess" in meta:
                preprocess = PreprocessConfig.from_json(meta["preprocess"])
            elif "input_size" in meta:
                height, width = json.loads(meta["input_size"])
                preprocess = PreprocessConfig(height=height, width=width)
            elif fallback_size is not None and None not in fallback_size:  # the loader says so once (defaults_note)
                preprocess = PreprocessConfig(height=int(fallback_size[0]), width=int(fallback_size[1]))  # type: ignore[arg-type]
            elif fallback_size is not None:
                raise ModelFormatError(f"{source} has {what} and a dynamic input size")
            else:
                preprocess = PreprocessConfig()
            classes = tuple(json.loads(meta["classes"])) if "classes" in meta else PET_CLASSES
            palette = json.loads(meta["palette"]) if "palette" in meta else None
            if palette is not None and len(palette) != len(classes):  # older exports cut the Pet palette
                palette = None
            return cls(
                preprocess=preprocess,
                classes=classes,
                palette=palette,
                precision=Precision(meta.get("precision", Precision(fallback_precision).value)),
                target=Target(meta["target"]) if meta.get("target") else None,
                model=meta.get("model", "unknown"),
                training_data=meta.get("training_data", "unknown"),
                checkpoint_sha256=meta.get("checkpoint_sha256", ""),
                segedge_version=meta.get("segedge_version", ""),
                dynamic=tuple(json.loads(meta["dynamic"])) if "dynamic" in meta else (),
                size_multiple=int(meta["size_multiple"]) if "size_multiple" in meta else None,
                extra={k: v for k, v in meta.items() if k not in _OWN_KEYS},
                declared=not missing,
            )
        except ModelFormatError:
            raise
        except (InputError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ModelFormatError(f"{source}: bad segedge metadata: {exc}") from None

    # -- prefixed string mapping: ONNX metadata_props, ORT custom_metadata_map, OpenVINO rt_info --
    def to_props(self) -> dict[str, str]:
        """The contract as ``segedge.``-prefixed entries (OpenVINO ``rt_info`` can store these)."""
        return {PREFIX + k: v for k, v in self.to_metadata().items()}

    @classmethod
    def from_props(cls, props: Iterable[Any] | Mapping[str, str], source: str = "artifact", **fallbacks: Any) -> "Contract":
        """Read a prefixed mapping or ONNX ``metadata_props`` (see :meth:`from_metadata` for
        ``fallbacks`` and errors)."""
        return cls.from_metadata(read_props(props), source, **fallbacks)

    @classmethod
    def from_onnx(cls, model: Any, source: str = "ONNX model", **fallbacks: Any) -> "Contract":
        """Read the contract of an ``onnx.ModelProto`` (see :meth:`from_metadata`).

        Without a ``fallback_size``, the graph's own input height and width (``None`` where
        symbolic) stand in for a missing preprocessing record, never the Pet default.

        Raises:
            ModelFormatError: see :meth:`from_metadata`.
        """
        if "fallback_size" not in fallbacks:
            fallbacks["fallback_size"] = onnx_input_size(model)
        return cls.from_props(model.metadata_props, source, **fallbacks)

    def write_onnx(self, model: Any, keys: Iterable[str] | None = None) -> None:
        """Write the contract into an ``onnx.ModelProto``'s ``metadata_props`` (in place),
        keeping entries of other tools.

        Args:
            model: the ``onnx.ModelProto``.
            keys: write only these entries (a foreign model that declared no contract gets
                only what a step knows for sure, such as ``precision``); default all.
        """
        meta = self.to_metadata()
        if keys is not None:
            wanted = set(keys)
            meta = {k: v for k, v in meta.items() if k in wanted}
        write_props(model.metadata_props, meta)

    def write_onnx_step(self, model: Any, *keys: str) -> None:
        """Write after a conversion step (FP16, INT8, rewrite): the whole contract when the
        source declared one, else only the ``keys`` the step set."""
        self.write_onnx(model, None if self.declared else keys)

    # -- OpenVINO IR rt_info: <rt_info><segedge><KEY value="..."/>...</segedge></rt_info> --
    def write_openvino(self, model: Any, weights_sha256: str | None = None) -> None:
        """Write the contract into an ``openvino.Model``'s ``rt_info`` section
        :data:`RT_INFO_SECTION` (``Model.set_rt_info(value, [section, key])``), and the SHA-256
        of the IR's ``.bin`` when known (the ``.xml`` is the manifest of the pair, see
        :func:`segedge._io.atomic_pair`)."""
        for key, value in self.to_metadata().items():
            model.set_rt_info(value, [RT_INFO_SECTION, key])
        if weights_sha256:
            model.set_rt_info(weights_sha256, [RT_INFO_SECTION, IR_WEIGHTS_KEY])

    @classmethod
    def from_openvino(cls, model: Any, source: str = "OpenVINO IR", **fallbacks: Any) -> "Contract":
        """Read the contract from an ``openvino.Model``'s ``rt_info`` (see :meth:`from_metadata`
        for ``fallbacks`` and errors); an IR without the section is a foreign model."""
        meta = {k: v for k, v in _openvino_section(model).items() if k != IR_WEIGHTS_KEY}
        return cls.from_metadata(meta, source, **fallbacks)

    # -- checkpoint --
    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint entries (``model``, ``preprocess``, ``classes``; ``palette`` when
        not the default)."""
        entries: dict[str, Any] = {"model": self.model, "preprocess": self.preprocess.to_dict(), "classes": list(self.classes)}
        if self.palette != default_palette(self.classes):
            entries["palette"] = [list(c) if c else None for c in self.palette or ()]
        return entries

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any], source: str = "checkpoint") -> "Contract":
        """Read the contract from a checkpoint dict (see :mod:`segedge.models.checkpoint`).

        Raises:
            InputError: a malformed preprocessing record or class list (the caller names the
                checkpoint).
        """
        meta = data.get("meta") or {}
        training = meta.get("data") or (meta.get("recipe") or {}).get("train_split", "unknown")
        try:
            preprocess = PreprocessConfig.from_dict(dict(data.get("preprocess") or {}))
        except TypeError as exc:
            raise InputError(f"bad preprocessing record: {exc}") from None
        return cls(
            preprocess=preprocess,
            classes=tuple(data.get("classes", PET_CLASSES)),
            palette=data.get("palette"),
            model=str(data.get("model", "unknown")),
            training_data=str(training),
        )
