"""What this CPU can do for INT8 and FP16/BF16 inference: its model name and the instruction
set extensions that decide which kernels ONNX Runtime, OpenVINO and PyTorch pick.

Printed next to every CPU timing (``segedge doctor``, ``benchmarks/``), because an INT8
speed-up on one CPU says little about another: integer dot-product instructions (x86 VNNI,
Arm's SDOT/UDOT) are what make 8-bit convolutions faster than 32-bit float ones.

Sources: Linux ``/proc/cpuinfo`` flag names (``arch/x86/include/asm/cpufeatures.h``; Arm
``Documentation/arch/arm64/elf_hwcaps.rst``): ``avx512_vnni`` / ``avx_vnni`` (x86 8-bit dot
products), ``amx_int8`` / ``amx_bf16`` (Intel AMX tiles), ``avx512_bf16``, ``avx512_fp16``;
``asimddp`` (Armv8.2 dot product), ``i8mm`` (Armv8.6 int8 matrix multiply), ``sve``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache

# Flags worth naming, in the order they are printed (most basic first).
_X86 = ("sse4_2", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
        "amx_int8", "amx_bf16")
_ARM = ("asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")
# Which of them give 8-bit integer dot products (the INT8 speed-up on a CPU).
_INT8_DOT = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as it matters for inference speed.

    Attributes:
        model: marketing name (``Intel(R) Xeon(R) ...``, ``AMD EPYC ...``) or the machine
            architecture when the kernel does not say.
        arch: ``platform.machine()``: ``x86_64``, ``aarch64``, ...
        cores: logical CPUs this process may run on.
        flags: the named extensions present, in a fixed order (see module docstring).
    """

    model: str
    arch: str
    cores: int
    flags: tuple[str, ...]

    @property
    def int8_dot_product(self) -> bool:
        """True where the CPU has 8-bit integer dot-product instructions (VNNI, AMX, SDOT)."""
        return bool(_INT8_DOT & set(self.flags))

    @property
    def isa(self) -> str:
        """One short line for tables, e.g. ``x86_64 AVX2 AVX-512 VNNI AMX``."""
        flags = set(self.flags)
        parts = [self.arch]
        if self.arch in ("x86_64", "AMD64"):
            parts += [name for name, present in (
                ("AVX2", "avx2" in flags),
                ("AVX-512", "avx512f" in flags),
                ("VNNI", bool({"avx512_vnni", "avx_vnni"} & flags)),
                ("BF16", "avx512_bf16" in flags),
                ("AMX", bool({"amx_int8", "amx_bf16"} & flags)),
            ) if present]
        else:
            parts += [name for name, present in (
                ("NEON", "asimd" in flags), ("dot product", "asimddp" in flags), ("I8MM", "i8mm" in flags),
                ("SVE", "sve" in flags),
            ) if present]
        return " ".join(parts)

    def describe(self) -> str:
        """``<model>, <cores> cores, <isa>`` for a header line."""
        return f"{self.model}, {self.cores} cores, {self.isa}"


def parse_cpuinfo(text: str, arch: str, cores: int = 1) -> CpuInfo:
    """Build a :class:`CpuInfo` from the text of a Linux ``/proc/cpuinfo``.

    Args:
        text: the file's contents (x86 ``model name``/``flags`` or Arm ``Features`` lines).
        arch: ``platform.machine()`` of that machine; it decides which flag names count.
        cores: logical CPUs to report.
    """
    model, present = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not present:
            present = set(value.split())
    known = _ARM if arch in ("aarch64", "arm64") else _X86
    return CpuInfo(model=model or arch, arch=arch, cores=cores, flags=tuple(f for f in known if f in present))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, from ``/proc/cpuinfo`` (Linux); elsewhere the architecture alone."""
    arch = platform.machine() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        text = ""
    info = parse_cpuinfo(text, arch, cores)
    if info.model == arch and platform.processor():
        info = CpuInfo(platform.processor(), arch, cores, info.flags)
    return info
