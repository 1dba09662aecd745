"""Which TensorRT names segedge uses, per version path, and which names a TensorRT release has.

TensorRT cannot be imported without libnvinfer and a GPU, but NVIDIA publishes its compiled
Python bindings alone on PyPI (``tensorrt-cu12-bindings`` 10.x, ``tensorrt-cu13-bindings``
11.x). Every class, method, property and enum member name of the pybind11 module is stored
as a NUL-terminated string in the shared object, so the names a release offers can be read
from the wheel (:func:`binding_names`) and compared with the names segedge's source uses
(:func:`collect_usage`). ``tests/engine/test_tensorrt_api_conformance.py`` does this for
TensorRT 10.3 (JetPack 6) and 11.4.

How usage is collected (static, from the AST, nothing is imported):

- a *TensorRT value* is the module (a name bound to ``import_tensorrt()``,
  ``require_engine_support()`` or ``import tensorrt``, or a parameter named ``trt``), a
  parameter annotated ``trt.X``, the result of a function annotated ``-> trt.X``, and anything
  assigned from an attribute, call or subscript of a TensorRT value (``builder =
  trt.Builder(logger)``, ``self.engine = runtime.deserialize_cuda_engine(...)``);
- every attribute read, written or called on a TensorRT value is a used name, recorded with
  its dotted chain from ``trt`` where there is one (``BuilderFlag.VERSION_COMPATIBLE``);
- ``if has_weak_typing(trt):`` (or ``if not ...``, or the conditional expression) splits the
  code: its body is the 10.x path, its ``else`` the 11.x path; everything else is on both.
  ``hasattr(obj, "name")`` probes are feature detection and are not usage.
"""

from __future__ import annotations

import ast
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

PATHS = ("10", "11")  # version paths: "10" = weak typing still present, "11" = removed
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DETECTOR = "has_weak_typing"
_MODULE_GETTERS = ("import_tensorrt", "require_engine_support")  # functions that return the tensorrt module


@dataclass(frozen=True)
class Use:
    """One TensorRT name used in the source."""

    name: str  # the attribute name (``set_flag``)
    qualified: str  # dotted chain from the module where known (``BuilderFlag.GPU_FALLBACK``), else ``name``
    path: str  # "10", "11" or "both"
    where: str  # ``file.py:line``


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
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def collect_usage(files: Iterable[str | Path]) -> list[Use]:
    """Every TensorRT name the given Python files use, with its version path.

    Args:
        files: source files (segedge's ``engine/*.py`` and ``runtime/tensorrt_runner.py``).

    Returns:
        One :class:`Use` per attribute access on a TensorRT value.
    """
    uses: list[Use] = []
    for file in files:
        file = Path(file)
        _Collector(file.name, uses).visit(ast.parse(file.read_text(), str(file)))
    return uses


def missing_names(uses: Iterable[Use], available: set[str], path: str) -> list[Use]:
    """The uses on ``path`` (``"10"`` or ``"11"``) whose name ``available`` lacks."""
    return [u for u in uses if u.path in (path, "both") and u.name not in available]


def removed_names_used(uses: Iterable[Use], removed: Iterable[str], path: str = "11") -> list[Use]:
    """The uses on ``path`` that name an API in ``removed`` (bare or ``Enum.MEMBER``)."""
    removed = set(removed)
    return [u for u in uses if u.path in (path, "both") and (u.name in removed or u.qualified in removed)]


class _Collector(ast.NodeVisitor):
    """Walks one module; see the module docstring for the rules."""

    def __init__(self, filename: str, uses: list[Use]):
        self.filename = filename
        self.uses = uses
        self.modules: set[str] = set()  # names bound to the tensorrt module
        self.values: set[str] = set()  # names / "self.x" bound to TensorRT objects
        self.factories: set[str] = set()  # functions annotated to return a TensorRT object (-> trt.X)
        self.path = "both"

    # --- what is a TensorRT value -------------------------------------------------------
    def _root(self, node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            if isinstance(node, ast.Attribute):
                if isinstance(node.value, ast.Name) and node.value.id == "self" and f"self.{node.attr}" in self.values:
                    return f"self.{node.attr}"
                node = node.value
            elif isinstance(node, ast.Call):
                node = node.func
            else:
                node = node.value
        if isinstance(node, ast.Name) and (node.id in self.modules or node.id in self.values):
            return node.id
        return None

    def _is_trt_value(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.factories:
            return True
        return isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)) and self._root(node) is not None

    def _chain(self, node: ast.Attribute) -> str | None:
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.modules:
            return ".".join(reversed(parts))
        return None

    def _bind(self, target: ast.AST, trt_module: bool) -> None:
        key = None
        if isinstance(target, ast.Name):
            key = target.id
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            key = f"self.{target.attr}"
        if key is not None:
            (self.modules if trt_module else self.values).add(key)

    # --- visitors -----------------------------------------------------------------------
    def visit_Module(self, node: ast.Module) -> None:
        for item in ast.walk(node):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and isinstance(item.returns, ast.Attribute):
                root = item.returns.value
                if isinstance(root, ast.Name) and root.id in ("trt", "tensorrt"):
                    self.factories.add(item.name)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "tensorrt":
                self.modules.add(alias.asname or "tensorrt")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        saved = set(self.values)
        for _ in range(2):  # attributes set in one method are used in others (any order)
            self.generic_visit(node)
        self.values = saved

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        saved_modules, saved_values = set(self.modules), set(self.values)
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for arg in args:
            if arg.arg == "trt":
                self.modules.add("trt")
            elif arg.annotation is not None:
                annotation = arg.annotation
                if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                    annotation = ast.parse(annotation.value, mode="eval").body
                if isinstance(annotation, ast.Attribute) and isinstance(annotation.value, ast.Name) and annotation.value.id in self.modules | {"trt"}:
                    self.values.add(arg.arg)
                    self._record(annotation, "trt")
        returns = node.returns
        if isinstance(returns, ast.Attribute) and isinstance(returns.value, ast.Name) and returns.value.id in self.modules:
            self._record(returns, returns.value.id)
        for stmt in node.body:
            self.visit(stmt)
        self_attrs = {v for v in self.values if v.startswith("self.")}
        self.modules, self.values = saved_modules, saved_values | self_attrs

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        is_module = isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and node.value.func.id in _MODULE_GETTERS
        is_value = self._is_trt_value(node.value)
        for target in node.targets:
            self.visit(target)
            if is_module or (isinstance(node.value, ast.Name) and node.value.id in self.modules):
                self._bind(target, trt_module=True)
            elif is_value:
                self._bind(target, trt_module=False)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit_Assign(ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno))

    def visit_If(self, node: ast.If) -> None:
        self._branch(node.test, node.body, node.orelse)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._branch(node.test, [node.body], [node.orelse])

    def _branch(self, test: ast.AST, body: list, orelse: list) -> None:
        weak = self._detector(test)
        self.visit(test)
        if weak is None:
            for item in body + orelse:
                self.visit(item)
            return
        saved = self.path
        for items, path in ((body, "10" if weak else "11"), (orelse, "11" if weak else "10")):
            self.path = path
            for item in items:
                self.visit(item)
        self.path = saved

    def _detector(self, test: ast.AST) -> bool | None:
        """True for ``has_weak_typing(...)``, False for ``not has_weak_typing(...)``."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self._detector(test.operand)
            return None if inner is None else not inner
        if isinstance(test, ast.Call):
            func = test.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name == _DETECTOR:
                return True
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "hasattr":
            if node.args:  # the probed object is used; the probed name may be missing (feature detection)
                self.visit(node.args[0])
            return
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr") and len(node.args) >= 2:
            target, name = node.args[0], node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and (
                (isinstance(target, ast.Name) and target.id in self.modules) or self._is_trt_value(target)
            ):
                self._add(name.value, name.value, node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in self.modules:
            self._record(node, value.id)
        elif self._is_trt_value(value) or (isinstance(value, ast.Name) and value.id in self.values):
            self._record(node, None)
        elif isinstance(value, ast.Name) and value.id == "self" and f"self.{node.attr}" in self.values:
            pass  # reading the attribute that holds a TensorRT object is not a TensorRT name
        self.generic_visit(node)

    def _record(self, node: ast.Attribute, module: str | None) -> None:
        qualified = self._chain(node) or node.attr
        self._add(node.attr, qualified, node)

    def _add(self, name: str, qualified: str, node: ast.AST) -> None:
        if name.startswith("__") and name not in ("__version__",):
            return
        self.uses.append(Use(name, qualified, self.path, f"{self.filename}:{getattr(node, 'lineno', 0)}"))
