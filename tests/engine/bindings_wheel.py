"""What NVIDIA's compiled TensorRT bindings offer, read from the wheel without importing it.

TensorRT cannot be imported without libnvinfer and a GPU, but NVIDIA publishes its compiled
Python bindings alone on PyPI (``tensorrt-cu12-bindings`` 10.x, ``tensorrt-cu13-bindings``
11.x). The pybind11 module stores every class, method, property, enum member and argument
name as a NUL-terminated string (:func:`binding_names`), and the symbol names of its build
name the owner class of part of them (:func:`class_evidence`). Used by
`tests/engine/conformance.py`.
"""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def binding_names(wheel: str | Path) -> set[str]:
    """Names offered by a TensorRT bindings wheel.

    Reads ``tensorrt_bindings/tensorrt*.so`` (NUL-terminated strings that are identifiers,
    C++ mangled symbols excepted; the linker may store a short name as the tail of a longer
    one, ``INT8`` inside ``UINT8``, so every suffix of such a string counts too) and the
    names the package's ``__init__.py`` defines in Python (``__version__``, ``nptype``).

    Args:
        wheel: a ``tensorrt_cu*_bindings-*.whl`` file.

    Returns:
        Every identifier the release may expose (a superset: suffixes of longer names are
        included, so a check against it reports missing names, never false ones).

    Raises:
        FileNotFoundError, zipfile.BadZipFile: not a readable wheel.
        ValueError: the wheel holds no compiled ``tensorrt`` module.
    """
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        binaries = [m for m in members if re.search(r"/tensorrt[^/]*\.(so|pyd)$", m)]
        if not binaries:
            raise ValueError(f"{wheel} holds no compiled tensorrt module")
        for member in binaries:
            for raw in archive.read(member).split(b"\0"):
                text = raw.decode("latin-1")
                if _IDENT.fullmatch(text) and not text.startswith("_Z"):  # not a C++ mangled symbol
                    names.update(text[i:] for i in range(len(text)) if _IDENT.fullmatch(text[i:]))
        for member in members:
            if member.endswith("/__init__.py") and member.count("/") == 1:
                names.update(_python_defined_names(archive.read(member).decode("utf-8", "replace")))
    return names


def _python_defined_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.FunctionDef):  # argument names: signatures of Python-defined helpers (nptype(trt_type))
            names.update(a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


_MANGLED = re.compile(rb"N8tensorrt[0-9A-Za-z_]+")  # a nested name in namespace tensorrt, anywhere in a symbol


def _idents(text: str, pos: int) -> tuple[list[str], int]:
    """Itanium length-prefixed identifiers from ``pos`` (``7lambdas16execute_async_v3``)."""
    out = []
    while pos < len(text):
        if text[pos] == "L":  # internal linkage marker
            pos += 1
            continue
        digits = re.match(r"\d+", text[pos:])
        if not digits:
            break
        length = int(digits.group())
        start = pos + len(digits.group())
        out.append(text[start : start + length])
        pos = start + length
    return out, pos


def class_evidence(wheel: str | Path) -> dict[str, set[str]]:
    """Which classes the binary itself says own a member name, where it says so.

    Reads the symbol names NVIDIA's build leaves in ``tensorrt*.so``: docstring constants
    ``tensorrt::<Class>Doc::<member>`` and bound lambdas ``tensorrt::lambdas::<member>(
    nvinfer1::<Class>&, ...)`` or ``tensorrt::lambdas::<Class>_<member>``. Partial (only
    what has such a symbol) and never a reason to reject a documented member: it confirms
    owners and names the real owner of a name used on the wrong class.

    Returns:
        ``{member name: {owner classes}}``.
    """
    owners: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if not re.search(r"/tensorrt[^/]*\.(so|pyd)$", member):
                continue
            for raw in set(_MANGLED.findall(archive.read(member))):
                text = raw.decode("ascii")
                names, pos = _idents(text, len("N8tensorrt"))
                if len(names) >= 2 and names[0].endswith("Doc") and len(names[0]) > 3:
                    owners.setdefault(names[1], set()).add(names[0][:-3])
                elif len(names) >= 2 and names[0] == "lambdas":
                    arg = re.match(r"ERN8nvinfer1((?:\d+v_\d+_\d+)?)(\d+)", text[pos:])
                    if arg:
                        start = pos + arg.end()
                        owners.setdefault(names[1], set()).add(text[start : start + int(arg.group(2))])
                    elif "_" in names[1] and names[1][0].isupper():
                        cls, _, name = names[1].partition("_")
                        owners.setdefault(name, set()).add(cls)
    return owners
