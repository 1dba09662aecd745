"""The JSON sidecar written next to every engine, and the check that refuses an engine this
machine cannot run, before TensorRT tries to deserialise it.

TensorRT's rules (developer guide, "Version Compatibility" and "Hardware Compatibility"
sections of "Advanced Topics"; support matrix 11.4, "Engine Portability"): by default an
engine runs only with the TensorRT release that built it and on GPUs of the compute
capability it was built on; built with ``BuilderFlag.VERSION_COMPATIBLE`` it also runs on
later releases of the same major version, and a TensorRT 10 (or 8) one on TensorRT 11 (or 10);
built with ``HardwareCompatibilityLevel.AMPERE_PLUS`` it runs on any Ampere or newer GPU
(compute capability 8.0 and up).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from segedge._io import atomic_pair, atomic_write_text
from segedge.contract import Contract
from segedge.engine.options import BuildOptions, rebuild_command
from segedge.engine.tensorrt_api import version_tuple
from segedge.errors import InputError, ModelFormatError

SIDECAR_SUFFIX = ".json"


@dataclass
class EngineInfo:
    """The sidecar written next to every engine (``<engine>.json``)."""

    engine: str  # engine file name
    tensorrt_version: str  # trt.__version__ of the builder, "10.3.0"
    gpu: str  # device name, "NVIDIA GeForce RTX 3060"
    compute_capability: str  # "major.minor", "8.6"
    precision: str  # fp32 | fp16 | int8 (from the ONNX)
    input_name: str
    profile: dict[str, list[int]]  # min / opt / max input shapes (N, C, H, W)
    onnx_sha256: str  # of the ONNX the engine was built from
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX segedge.* metadata, unprefixed (preprocess, classes, ...)
    built_at: str = ""  # ISO 8601, UTC
    segedge_version: str = ""
    onnx: str = ""  # path of the ONNX the engine was built from (for the rebuild command)
    builder: dict[str, Any] = field(default_factory=dict)  # BuildOptions.to_dict()
    tf32: bool | None = None  # BuilderFlag.TF32 after configuration: False = FP32 layers in true FP32; None: not recorded (older sidecar)
    engine_sha256: str = ""  # of the engine file this sidecar describes (written with it, see write_engine); "": older sidecar

    def to_json(self) -> str:
        """The sidecar's text."""
        return json.dumps(asdict(self), indent=2)

    def save(self, engine_path: str | os.PathLike[str]) -> Path:
        """Write the sidecar alone, atomically, beside ``engine_path``; return its path (a new
        engine is written with its sidecar by :func:`write_engine`)."""
        return atomic_write_text(sidecar_path(engine_path), self.to_json())

    @property
    def options(self) -> BuildOptions:
        """The builder options recorded in the sidecar (defaults where absent)."""
        return BuildOptions.from_dict(self.builder)

    @property
    def contract(self) -> Contract:
        """The deployment contract of the ONNX the engine was built from.

        Raises:
            ModelFormatError: malformed metadata in the sidecar.
        """
        return Contract.from_metadata(self.metadata, self.engine, fallback_precision=self.precision)

    @property
    def classes(self) -> tuple[str, ...] | None:
        """Class names from the ONNX metadata, or ``None`` when it declared none."""
        return self.contract.classes if self.contract.declared else None


def write_engine(engine_path: str | os.PathLike[str], serialized: bytes | memoryview, info: EngineInfo, overwrite: bool = True) -> EngineInfo:
    """Publish a serialised engine and its sidecar as one pair (:func:`segedge._io.atomic_pair`):
    the engine first, then the sidecar, which records the engine's SHA-256, so a crash between
    the two renames leaves a pair :func:`read_engine` refuses, never one it runs.

    Args:
        engine_path: destination ``.engine`` / ``.plan``.
        serialized: ``IHostMemory`` of ``Builder.build_serialized_network`` (or bytes).
        info: the sidecar; its ``engine`` and ``engine_sha256`` are filled in here.
        overwrite: replace an existing pair.

    Returns:
        The sidecar written.

    Raises:
        InputError: ``overwrite`` is False and either file exists.
        OSError: the folder cannot be written (nothing new is left under either name).
    """
    engine_path = Path(engine_path)
    data = memoryview(serialized)
    info = replace(info, engine=engine_path.name, engine_sha256=hashlib.sha256(data).hexdigest())
    with atomic_pair(engine_path, sidecar_path(engine_path), overwrite=overwrite) as (engine_tmp, sidecar_tmp):
        engine_tmp.write_bytes(data)
        sidecar_tmp.write_text(info.to_json())
    return info


def read_engine(engine_path: str | os.PathLike[str]) -> tuple[bytes, EngineInfo]:
    """Open an engine once: its sidecar and its bytes, checked to belong together.

    Returns:
        ``(serialised engine, sidecar)``; the bytes are what the caller deserialises, the
        same bytes the hash was checked on.

    Raises:
        ModelFormatError: no such engine, or an engine its sidecar was not written with (an
            interrupted or concurrent build; the message gives the rebuild command).
        InputError: missing or malformed sidecar.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise ModelFormatError(f"engine {engine_path} does not exist")
    info = load_engine_info(engine_path)
    data = engine_path.read_bytes()
    if info.engine_sha256 and hashlib.sha256(data).hexdigest() != info.engine_sha256:
        onnx = info.onnx or str(engine_path.with_suffix(".onnx"))
        raise ModelFormatError(
            f"{engine_path} is not the engine its sidecar {sidecar_path(engine_path).name} describes "
            f"(a build interrupted between the two, or two builds at once); rebuild it: {rebuild_command(onnx, engine_path, info.options)}"
        )
    return data, info


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def load_engine_info(engine_path: str | os.PathLike[str]) -> EngineInfo:
    """Read an engine's sidecar.

    Raises:
        InputError: missing or malformed sidecar.
    """
    path = sidecar_path(engine_path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        known = set(EngineInfo.__dataclass_fields__)
        return EngineInfo(**{k: v for k, v in data.items() if k in known})
    except FileNotFoundError:
        raise InputError(f"{engine_path} has no sidecar {path.name}; rebuild it with `segedge build-engine`") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a segedge engine sidecar: {exc}") from None


def version_rule_allows(built: str, here: str, version_compatible: bool) -> tuple[bool, str]:
    """Whether TensorRT ``here`` may run an engine TensorRT ``built`` serialised, and the rule.

    NVIDIA's rules (support matrix 11.4, "Engine Portability"; developer guide, "Version
    Compatibility"): a plain engine runs only with the release that built it; a
    version-compatible engine (``BuilderFlag.VERSION_COMPATIBLE``, built with 8.6 or later)
    runs with the same or a later release of its major version, and across majors exactly
    two combinations are supported: TensorRT 8 engines on a TensorRT 10 runtime and TensorRT
    10 engines on a TensorRT 11 runtime (no other, e.g. not 8 on 11, and never newer on older).

    Args:
        built: ``tensorrt.__version__`` of the builder (``"10.3.0"``).
        here: this machine's ``tensorrt.__version__``.
        version_compatible: whether the engine was built version-compatible.

    Returns:
        ``(allowed, the rule in words)``.
    """
    b, h = version_tuple(built), version_tuple(here)
    if not version_compatible:
        return b == h, "an engine runs only with the TensorRT release that built it (unless built with --version-compatible)"
    rule = (
        f"a version-compatible engine built with {built} runs on TensorRT {b[0]}.x from {built} on"
        + {8: " and on TensorRT 10", 10: " and on TensorRT 11"}.get(b[0], "")
        + " (NVIDIA's support matrix; never on an older release)"
    )
    if b < (8, 6):
        return False, "version compatibility needs an engine built with TensorRT 8.6 or later"
    if h[0] == b[0]:
        return h >= b, rule
    return (b[0], h[0]) in ((8, 10), (10, 11)), rule


def _capability(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major or 0), int(minor or 0)


def check_engine_compatibility(
    info: EngineInfo,
    trt_version: str,
    gpu_name: str,
    capability: str,
    version_compatible: bool | None = None,
    hardware_compatibility: str | None = None,
    engine_path: str | os.PathLike[str] | None = None,
) -> str | None:
    """Whether an engine can run here; ``None`` if it can, else one line saying why.

    Args:
        info: the engine's sidecar.
        trt_version: this machine's ``tensorrt.__version__``.
        gpu_name: this machine's GPU name (informational: a different model of the same
            compute capability runs the engine, possibly slower).
        capability: this machine's compute capability ``"major.minor"``.
        version_compatible: whether the engine was built version-compatible (default: the
            sidecar's builder options).
        hardware_compatibility: ``"none"`` or ``"ampere+"`` (default: the sidecar's).
        engine_path: path for the message and the rebuild command (default: ``info.engine``).

    Returns:
        ``None``, or: what it was built with, what this machine has, and the exact
        ``segedge build-engine ...`` command that rebuilds it here.
    """
    options = info.options
    version_compatible = options.version_compatible if version_compatible is None else version_compatible
    hardware_compatibility = options.hardware_compatibility if hardware_compatibility is None else hardware_compatibility
    version_ok, version_rule = version_rule_allows(info.tensorrt_version, trt_version, version_compatible)
    cc_built, cc_here = _capability(info.compute_capability), _capability(capability)
    if hardware_compatibility == "ampere+":
        gpu_ok = cc_here >= (8, 0)
        gpu_rule = "a hardware-compatible (ampere+) engine needs compute capability 8.0 or newer"
    else:
        gpu_ok = cc_built == cc_here
        gpu_rule = "an engine runs only on GPUs of the compute capability it was built on"
    if version_ok and gpu_ok:
        return None
    engine = Path(engine_path) if engine_path is not None else Path(info.engine)
    onnx = info.onnx or str(engine.with_suffix(".onnx"))
    rules = "; ".join(rule for ok, rule in ((version_ok, version_rule), (gpu_ok, gpu_rule)) if not ok)
    return (
        f"{engine} was built with TensorRT {info.tensorrt_version} on {info.gpu} (sm {info.compute_capability}); "
        f"this machine has TensorRT {trt_version} on {gpu_name} (sm {capability}) and {rules}; "
        f"rebuild it here: {rebuild_command(onnx, engine, options)}"
    )
