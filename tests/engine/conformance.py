"""Which TensorRT names segedge uses, per version path, and which names a TensorRT release has.

TensorRT cannot be imported without libnvinfer and a GPU, but NVIDIA publishes its compiled
Python bindings alone on PyPI (``tensorrt-cu12-bindings`` 10.x, ``tensorrt-cu13-bindings``
11.x). Every class, method, property and enum member name of the pybind11 module is stored
as a NUL-terminated string in the shared object, so the names a release offers can be read
from the wheel (:func:`binding_names`) and compared with the names segedge's source uses
(:func:`collect_usage`). ``tests/engine/test_tensorrt_api_conformance.py`` does this for
TensorRT 10.3 (JetPack 6) and 11.4.

Names are checked class-qualified, with signatures (:func:`check_uses`): every use has the
class of its receiver (``IExecutionContext.execute_async_v3``, ``BuilderFlag.TF32``), which
must be a member of that class in `REFERENCE` (`tests/engine/trt_reference.py`) on the use's
version path, called with arguments its signature accepts, and present in that release's
bindings. A flat set of names is not enough: ``execute_async`` and ``max_batch_size`` are in
both releases' bindings (as ``IPluginV2`` members) although ``IExecutionContext.execute_async``
and ``Builder.max_batch_size`` were removed in TensorRT 10. Where the binary names a member's
owner (:func:`class_evidence`) the table is checked against it too.

How usage is collected (static, from the AST, nothing is imported):

- a *TensorRT value* is the module (a name bound to ``import_tensorrt()``,
  ``require_engine_support()`` or ``import tensorrt``, or a parameter named ``trt``), a
  parameter annotated ``trt.X``, the result of a function annotated ``-> trt.X``, and anything
  assigned from an attribute, call or subscript of a TensorRT value (``builder =
  trt.Builder(logger)``, ``self.engine = runtime.deserialize_cuda_engine(...)``);
- every attribute read, written or called on a TensorRT value is a used name, recorded with
  its dotted chain from ``trt`` where there is one (``BuilderFlag.VERSION_COMPATIBLE``), the
  class of the value it is read from (followed through the reference's ``returns``:
  ``trt.Builder(...)`` is a ``Builder``, its ``create_builder_config()`` an
  ``IBuilderConfig``), and for a call the number of positional arguments and keyword names;
- an attribute declared ``name: trt.X`` in a class body holds an ``X`` wherever it is read
  (``slot.context`` for ``context: trt.IExecutionContext``);
- ``if has_weak_typing(trt):`` (or ``if not ...``, or the conditional expression) splits the
  code: its body is the 10.x path, its ``else`` the 11.x path; everything else is on both.
  ``hasattr(obj, "name")`` probes are feature detection and are not usage.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bindings_wheel import binding_names, class_evidence  # noqa: F401  (public here too)
from trt_reference import MODULE, REFERENCE, Member

PATHS = ("10", "11")  # version paths: "10" = weak typing still present, "11" = removed
_DETECTOR = "has_weak_typing"
_MODULE_GETTERS = ("import_tensorrt", "require_engine_support")  # functions that return the tensorrt module


@dataclass(frozen=True)
class Use:
    """One TensorRT name used in the source."""

    name: str  # the attribute name (``set_flag``)
    qualified: str  # dotted chain from the module where known (``BuilderFlag.GPU_FALLBACK``), else ``name``
    path: str  # "10", "11" or "both"
    where: str  # ``file.py:line``
    cls: str = "?"  # class of the receiver ("IExecutionContext"; "tensorrt" for the module; "?" unknown)
    call: tuple[int, tuple[str, ...]] | None = None  # (positional count, keyword names) when called; -1: *args

    @property
    def member(self) -> str:
        """``Class.name`` (``IExecutionContext.execute_async_v3``; ``tensorrt.Builder``)."""
        return f"{self.cls}.{self.name}"


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


def check_uses(uses: Iterable[Use], available: set[str], path: str, reference: dict[str, dict[str, Member]] = REFERENCE,
               evidence: dict[str, set[str]] | None = None) -> list[str]:
    """Problems of the uses on ``path``, one line each (empty: every use conforms).

    A use conforms when its receiver's class is known, ``Class.name`` is in ``reference`` on
    ``path``, a call passes arguments the signature accepts (no more positionals than it
    has, only its keyword names, every required one), and ``name`` exists in the release's
    bindings (``available``, from :func:`binding_names`).

    Args:
        uses: from :func:`collect_usage`.
        available: :func:`binding_names` of the release.
        path: ``"10"`` or ``"11"``.
        reference: class -> member -> :class:`Member`.
        evidence: :func:`class_evidence` of the release, to name the real owner of a member
            used on the wrong class.
    """
    problems = []
    for use in uses:
        if use.path not in (path, "both"):
            continue
        where = f"{use.member} ({use.where})"
        if use.cls == "?":
            problems.append(f"{where}: cannot tell which TensorRT class {use.name!r} is read from; annotate the value (trt.X)")
            continue
        member = reference.get(use.cls, {}).get(use.name)
        if member is None:
            owners = sorted((evidence or {}).get(use.name, set()) - {use.cls})
            hint = f"; the bindings have it on {', '.join(owners)}" if owners else ""
            problems.append(f"{where}: not a member of {use.cls} in TensorRT's API reference{hint}")
            continue
        if path not in member.paths:
            problems.append(f"{where}: not in TensorRT {path}.x (only {', '.join(member.paths)}.x)")
        if use.name not in available:
            problems.append(f"{where}: missing from the TensorRT {path}.x bindings")
        if use.call is not None and member.kind in ("method", "class", "function"):
            positional, keywords = use.call
            signature = f"{use.member}({', '.join(member.args)})"
            if positional > len(member.args) or any(k not in member.args for k in keywords) or (
                positional >= 0 and positional + len(keywords) < member.required
            ):
                problems.append(f"{where}: called with {positional} positional and keywords {list(keywords)}; the signature is {signature}")
    return problems


def reference_problems(available: set[str], path: str, evidence: dict[str, set[str]] | None = None,
                       reference: dict[str, dict[str, Member]] = REFERENCE) -> list[str]:
    """Where the reference table disagrees with a release's bindings (empty: it agrees).

    Every class, member and argument name on ``path`` must exist in the bindings; a member
    the binary attributes to owners (``evidence``) must be documented on one of them or on a
    class the binary says nothing about for that name.
    """
    problems = []
    for cls, members in reference.items():
        if cls != MODULE and cls not in available:
            problems.append(f"class {cls} is missing from the TensorRT {path}.x bindings")
        for name, member in members.items():
            if path not in member.paths:
                continue
            for word in (name, *member.args):
                if word not in available:
                    problems.append(f"{cls}.{name}: {word!r} is missing from the TensorRT {path}.x bindings")
            owners = (evidence or {}).get(name)
            if owners and cls != MODULE and member.kind == "method" and cls not in owners and not owners & set(reference):
                problems.append(f"{cls}.{name}: the TensorRT {path}.x binary has it only on {', '.join(sorted(owners))}")
    return problems


class _Collector(ast.NodeVisitor):
    """Walks one module; see the module docstring for the rules."""

    def __init__(self, filename: str, uses: list[Use]):
        self.filename = filename
        self.uses = uses
        self.modules: set[str] = set()  # names bound to the tensorrt module
        self.values: dict[str, str] = {}  # names / "self.x" bound to TensorRT objects -> class ("?" unknown)
        self.factories: dict[str, str] = {}  # functions annotated to return a TensorRT object (-> trt.X) -> X
        self.attributes: dict[str, str] = {}  # attributes declared ``name: trt.X`` in a class body -> X
        self.calls: dict[int, tuple[int, tuple[str, ...]]] = {}  # id(call.func) -> (positional count, keywords)
        self.path = "both"

    # --- what is a TensorRT value, and of which class ------------------------------------
    def _annotation_class(self, annotation: ast.AST | None) -> str | None:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):  # trt.X | None
            return self._annotation_class(annotation.left) or self._annotation_class(annotation.right)
        if isinstance(annotation, ast.Attribute) and isinstance(annotation.value, ast.Name) and annotation.value.id in self.modules | {"trt", "tensorrt"}:
            return annotation.attr
        return None

    def _type(self, node: ast.AST) -> str | None:
        """The TensorRT class of an expression (``MODULE`` for the module, "?" unknown), or None."""
        if isinstance(node, ast.Name):
            if node.id in self.modules:
                return MODULE
            return self.values.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and f"self.{node.attr}" in self.values:
                return self.values[f"self.{node.attr}"]
            receiver = self._type(node.value)
            if receiver is None:
                return self.attributes.get(node.attr)
            member = REFERENCE.get(receiver, {}).get(node.attr)
            return member.returns if member is not None and member.returns else "?"
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                if node.func.id in self.factories:
                    return self.factories[node.func.id]
                if node.func.id in _MODULE_GETTERS:
                    return MODULE
                return None
            return self._type(node.func)
        if isinstance(node, ast.Subscript):
            return "?" if self._type(node.value) is not None else None
        return None

    def _chain(self, node: ast.Attribute) -> str | None:
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.modules:
            return ".".join(reversed(parts))
        return None

    def _bind(self, target: ast.AST, cls: str) -> None:
        key = None
        if isinstance(target, ast.Name):
            key = target.id
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            key = f"self.{target.attr}"
        if key is None:
            return
        if cls == MODULE:
            self.modules.add(key)
        else:
            self.values[key] = cls

    # --- visitors -----------------------------------------------------------------------
    def visit_Module(self, node: ast.Module) -> None:
        for item in ast.walk(node):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls = self._annotation_class(item.returns)
                if cls is not None:
                    self.factories[item.name] = cls
            if isinstance(item, ast.ClassDef):
                for statement in item.body:
                    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                        cls = self._annotation_class(statement.annotation)
                        if cls is not None:
                            self.attributes[statement.target.id] = cls
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "tensorrt":
                self.modules.add(alias.asname or "tensorrt")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        saved = dict(self.values)
        for _ in range(2):  # attributes set in one method are used in others (any order)
            for statement in node.body:
                if not isinstance(statement, ast.AnnAssign):  # declarations are read in visit_Module
                    self.visit(statement)
        self.values = saved

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        saved_modules, saved_values = set(self.modules), dict(self.values)
        for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            if arg.arg == "trt":
                self.modules.add("trt")
                continue
            cls = self._annotation_class(arg.annotation)
            if cls is not None:
                self.values[arg.arg] = cls
                self._add(cls, cls, arg.annotation, MODULE)
        cls = self._annotation_class(node.returns)
        if cls is not None and "trt" in self.modules | {"trt"}:
            self._add(cls, cls, node.returns, MODULE)
        for stmt in node.body:
            self.visit(stmt)
        self_attrs = {k: v for k, v in self.values.items() if k.startswith("self.")}
        self.modules, self.values = saved_modules, {**saved_values, **self_attrs}

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        cls = self._type(node.value)
        for target in node.targets:
            self.visit(target)
            if cls is not None:
                self._bind(target, cls)

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
            cls = self._type(target)
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and cls is not None:
                self._add(name.value, name.value, node, cls)
        starred = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
        self.calls[id(func)] = (-1 if starred else len(node.args), tuple(k.arg for k in node.keywords if k.arg))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        is_self_slot = isinstance(value, ast.Name) and value.id == "self"
        receiver = None if is_self_slot else self._type(value)
        if receiver is not None:
            self._add(node.attr, self._chain(node) or node.attr, node, receiver, self.calls.get(id(node)))
        self.generic_visit(node)

    def _add(self, name: str, qualified: str, node: ast.AST, cls: str = "?", call: tuple[int, tuple[str, ...]] | None = None) -> None:
        if name.startswith("__") and name not in ("__version__",):
            return
        self.uses.append(Use(name, qualified, self.path, f"{self.filename}:{getattr(node, 'lineno', 0)}", cls, call))
