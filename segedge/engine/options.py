"""Builder options of ``segedge build-engine``: typed, validated without TensorRT, and
written to the engine's sidecar so the exact build can be repeated.

Each option maps to one ``IBuilderConfig`` setting of the TensorRT Python API reference
(docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/BuilderConfig.html):
``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``, ``builder_optimization_level``,
``create_timing_cache`` / ``set_timing_cache`` / ``get_timing_cache``,
``BuilderFlag.VERSION_COMPATIBLE``, ``hardware_compatibility_level``, ``default_device_type``
/ ``DLA_core`` / ``BuilderFlag.GPU_FALLBACK`` for the Jetson DLA, and one
``IBuilderConfig.add_optimization_profile`` per ``--profiles`` (``IExecutionContext`` reference:
each execution context in concurrent use on a dynamic-shape engine must use a separate
optimization profile).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segedge.contract import HardwareCompatibility, Precision
from segedge.engine.profiles import Shape, format_shape, parse_shape
from segedge.errors import InputError

HARDWARE_COMPATIBILITY = tuple(h.value for h in HardwareCompatibility)  # ampere+: HardwareCompatibilityLevel.AMPERE_PLUS (sm 8.0 and newer)
OPTIMIZATION_LEVELS = range(0, 6)  # TensorRT's builder_optimization_level: 0 (fastest build) .. 5, default 3


@dataclass(frozen=True)
class BuildOptions:
    """How an engine is built (the precision is not here: it comes from the ONNX)."""

    min_shape: Shape | None = None  # (N, C, H, W) smallest input; None: batch 1 at the model size
    opt_shape: Shape | None = None  # shape TensorRT tunes kernels for; None: batch 1
    max_shape: Shape | None = None  # largest input; None: batch 8
    workspace_mib: int = 1024  # builder scratch memory limit, MiB
    optimization_level: int | None = None  # 0..5; None: TensorRT's default (3)
    timing_cache: Path | None = None  # loaded if present, saved back after the build
    version_compatible: bool = False  # runs on later TensorRT releases of the same major version
    hardware_compatibility: str = "none"  # "ampere+": runs on any Ampere or newer GPU
    dla_core: int | None = None  # run on this DLA core (Jetson), unsupported layers fall back to the GPU
    profiles: int = 1  # identical optimization profiles: execution contexts that may run at once on a dynamic engine

    def __post_init__(self) -> None:
        if self.workspace_mib <= 0:
            raise InputError(f"--workspace must be a positive number of MiB, got {self.workspace_mib}")
        if self.optimization_level is not None and self.optimization_level not in OPTIMIZATION_LEVELS:
            raise InputError(f"--builder-optimization-level must be 0..5 (TensorRT's default is 3), got {self.optimization_level}")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise InputError(f"--hardware-compatibility must be one of {', '.join(HARDWARE_COMPATIBILITY)}, got {self.hardware_compatibility!r}")
        if self.dla_core is not None and self.dla_core < 0:
            raise InputError(f"--dla-core must be 0 or more, got {self.dla_core}")
        if self.profiles < 1:
            raise InputError(f"--profiles must be 1 or more (one per execution context that runs at once), got {self.profiles}")
        if self.dla_core is not None and self.hardware_compatibility != "none":
            raise InputError("--hardware-compatibility applies to discrete Ampere+ GPUs, not to DLA engines; drop one of --dla-core and --hardware-compatibility")

    @classmethod
    def from_strings(cls, min_shape: str | None = None, opt_shape: str | None = None, max_shape: str | None = None, **kwargs: Any) -> "BuildOptions":
        """Build from command-line strings (``"1x3x128x128"``); other fields as keywords.

        Raises:
            InputError: a malformed shape or an invalid option.
        """
        return cls(
            min_shape=parse_shape(min_shape, "--min-shape") if min_shape else None,
            opt_shape=parse_shape(opt_shape, "--opt-shape") if opt_shape else None,
            max_shape=parse_shape(max_shape, "--max-shape") if max_shape else None,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the sidecar (shapes as lists, the cache path as a string)."""
        return {
            "min_shape": list(self.min_shape) if self.min_shape else None,
            "opt_shape": list(self.opt_shape) if self.opt_shape else None,
            "max_shape": list(self.max_shape) if self.max_shape else None,
            "workspace_mib": self.workspace_mib,
            "optimization_level": self.optimization_level,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "version_compatible": self.version_compatible,
            "hardware_compatibility": self.hardware_compatibility,
            "dla_core": self.dla_core,
            "profiles": self.profiles,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildOptions":
        """Inverse of :meth:`to_dict` (unknown keys ignored, missing keys default).

        Raises:
            InputError: invalid values.
        """
        fields = dict(data)
        for key in ("min_shape", "opt_shape", "max_shape"):
            if fields.get(key):
                fields[key] = tuple(fields[key])
        if fields.get("timing_cache"):
            fields["timing_cache"] = Path(fields["timing_cache"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})

    def cli_args(self) -> list[str]:
        """The ``segedge build-engine`` options that reproduce these settings."""
        args: list[str] = []
        for flag, shape in (("--min-shape", self.min_shape), ("--opt-shape", self.opt_shape), ("--max-shape", self.max_shape)):
            if shape:
                args += [flag, format_shape(shape)]
        if self.workspace_mib != 1024:
            args += ["--workspace", str(self.workspace_mib)]
        if self.optimization_level is not None:
            args += ["--builder-optimization-level", str(self.optimization_level)]
        if self.timing_cache:
            args += ["--timing-cache", str(self.timing_cache)]
        if self.version_compatible:
            args.append("--version-compatible")
        if self.hardware_compatibility != "none":
            args += ["--hardware-compatibility", self.hardware_compatibility]
        if self.dla_core is not None:
            args += ["--dla-core", str(self.dla_core)]
        if self.profiles != 1:
            args += ["--profiles", str(self.profiles)]
        return args


def check_dla(options: BuildOptions, precision: Precision | str, profile: Any) -> None:
    """Refuse a DLA build TensorRT would silently move to the GPU, before anything is written.

    The DLA runs FP16 and INT8 layers only, and only static shapes ("Working with DLA" in the
    TensorRT developer guide: "DLA supports only FP16 and INT8"; dynamic dimensions are not
    supported): with ``BuilderFlag.GPU_FALLBACK`` an FP32 or dynamic-shape engine would run
    wholly on the GPU while its sidecar said DLA.

    Args:
        options: the builder options (nothing to check without ``dla_core``).
        precision: ``fp32``, ``fp16`` or ``int8`` (from the ONNX the engine is built from).
        profile: the resolved :class:`~segedge.engine.profiles.Profile`.

    Raises:
        InputError: ``--dla-core`` with FP32, or with a profile whose min and max differ.
    """
    if options.dla_core is None:
        return
    if Precision(precision) is Precision.FP32:
        raise InputError(f"--dla-core {options.dla_core}: the DLA runs FP16 and INT8 only, so an FP32 engine would run entirely on the GPU; use --precision fp16 or int8")
    if tuple(profile.min) != tuple(profile.max):
        raise InputError(
            f"--dla-core {options.dla_core}: the DLA needs a static shape but the profile is dynamic ({profile.describe()}); "
            f"pass --min-shape, --opt-shape and --max-shape all equal (e.g. {format_shape(profile.min)})"
        )


def check_timing_cache(options: BuildOptions, onnx_path: str | Path, engine_path: str | Path) -> None:
    """Refuse a ``--timing-cache`` that is the ONNX, the engine or its sidecar: the build saves
    the cache back, over whichever file it names (before TensorRT is even looked for).

    Raises:
        InputError: one line naming the file.
    """
    from segedge._io import same_file

    cache = options.timing_cache
    if cache is None:
        return
    for other, what in ((onnx_path, "the input ONNX"), (engine_path, "the engine"), (str(engine_path) + ".json", "the engine's sidecar")):
        if same_file(cache, other):
            raise InputError(f"--timing-cache {cache} is {what}; the build saves the cache there, so name another file (e.g. {Path(engine_path).with_suffix('.timing.cache')})")


def rebuild_command(onnx: str | Path, engine: str | Path, options: BuildOptions) -> str:
    """The shell command that builds ``engine`` again from ``onnx`` with ``options``.

    ``onnx`` is the precision-specific ONNX the engine was built from (FP16 or Q/DQ INT8
    already inside), so no conversion or calibration is repeated (``--precision`` fp32 is
    the default and converts nothing).
    """
    return shlex.join(["segedge", "build-engine", str(onnx), "-o", str(engine), *options.cli_args()])
