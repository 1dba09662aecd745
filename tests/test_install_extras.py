"""The extras in pyproject.toml, resolved against PyPI by pip (``pip install --dry-run --report``).

What can go wrong at install time, and is checked here on the real index:

- two distributions that install the same import package: ``onnxruntime`` and
  ``onnxruntime-gpu`` both install ``onnxruntime/`` (whichever pip installs last wins;
  onnxruntime issue 26996), ``tensorrt-cu12-bindings`` and ``tensorrt-cu13-bindings`` both
  install ``tensorrt/``;
- cuda-python of another CUDA major than TensorRT: cuda-python 13 links the CUDA 13 runtime,
  which a CUDA 12 driver (JetPack 6) cannot run;
- an extra that adds a second TensorRT next to one already installed (the bare ``tensorrt``
  package follows NVIDIA's newest CUDA major: ``tensorrt>=10`` is 11.4 for CUDA 13, whatever
  is installed).

pip resolves each requirement set with ``--no-deps`` level by level (it merges the
specifiers of a name), because NVIDIA's ``tensorrt-cuXX-libs`` are wheel stubs whose metadata
step downloads from pypi.nvidia.com: they are kept as leaves (they install ``tensorrt_libs``,
not ``tensorrt``). ``torch`` is left out of the core set: its CUDA wheels' tree is large and
installs neither package. Needs PyPI; skips with the reason where it cannot be reached.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")
requirements = pytest.importorskip("packaging.requirements", reason="needs the packaging library")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
STUB = re.compile(r"^tensorrt-cu\d+-libs$")
# NVIDIA's TensorRT distributions of one CUDA major: tensorrt-cuNN (older releases, e.g. 10.3.0, declare no
# dependencies and fetch -libs and -bindings at install time), tensorrt-cuNN-bindings (installs `tensorrt/`)
# and tensorrt-cuNN-libs. Two CUDA majors among them are two `tensorrt/` packages.
TENSORRT_PACKAGE = re.compile(r"^tensorrt-cu(\d+)(-bindings|-libs)?$")
ONNXRUNTIME_PACKAGE = {  # distributions that install `onnxruntime/`
    "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml", "onnxruntime-qnn",
    "onnxruntime-training", "ort-nightly", "ort-nightly-gpu",
}
CUDA_BINDINGS = ("cuda-python", "cuda-bindings")

pytestmark = [pytest.mark.slow]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _needs_pypi():
    if not pypi_reachable():
        pytest.skip("PyPI (pypi.org:443) cannot be reached: the extras cannot be resolved here")


def _pip_level(reqs: list[str]) -> list[dict]:
    """One ``pip install --dry-run --no-deps`` over ``reqs``: the chosen distributions."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--report", "-", *reqs]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
        if any(s in done.stderr for s in ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution")):
            pytest.skip(f"PyPI unreachable from pip: {lines[-1] if lines else done.returncode}")
        raise AssertionError(f"pip could not resolve {reqs}: {' | '.join(lines[-4:])}")
    return json.loads(done.stdout)["install"]


@functools.lru_cache(maxsize=None)
def resolve(roots: tuple[str, ...]) -> dict[str, str]:
    """Every distribution ``pip install roots`` would install: ``{normalized name: version}``
    (wheel stubs: their specifier). Each level asks pip only for the names not chosen yet, with
    every specifier seen for them; a choice a later specifier excludes is asked again."""
    reqs: dict[str, list] = {}  # name -> every requirement seen for it
    chosen: dict[str, str] = {}

    def add(text: str, extra_of: str | None = None) -> None:
        req = requirements.Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *(extras_of(extra_of))}):
            return
        req.marker = None
        reqs.setdefault(normalize(req.name), []).append(req)

    def extras_of(name: str | None) -> set[str]:
        return {e for r in reqs.get(name, []) for e in r.extras} if name else set()

    for text in roots:
        add(text)
    while True:
        todo = [n for n, rs in reqs.items() if n not in chosen or not all(r.specifier.contains(chosen[n], prereleases=True) for r in rs)]
        for name in [n for n in todo if STUB.match(n)]:
            chosen[name] = ",".join(str(r.specifier) for r in reqs[name]) or "*"
        todo = [n for n in todo if not STUB.match(n)]
        if not todo:
            return chosen
        for item in _pip_level([str(r) for n in todo for r in reqs[n]]):
            meta = item["metadata"]
            name = normalize(meta["name"])
            chosen[name] = meta["version"]
            for text in meta.get("requires_dist") or []:
                add(text, name)


def core() -> tuple[str, ...]:
    return tuple(r for r in PYPROJECT["dependencies"] if normalize(requirements.Requirement(r).name) != "torch")


def install_set(*extras: str, installed: tuple[str, ...] = ()) -> dict[str, str]:
    """What ``pip install segedge[extras]`` puts in an environment that already has ``installed``."""
    found = dict(resolve(core()))
    for extra in extras:
        found.update(resolve(tuple(PYPROJECT["optional-dependencies"][extra])))
    if installed:
        found.update(resolve(installed + tuple(r for e in extras for r in PYPROJECT["optional-dependencies"][e])))
    return found


def tensorrt_packages(found: dict[str, str]) -> dict[str, str]:
    """``{CUDA major: distribution}`` of the TensorRT distributions in ``found``."""
    names = sorted((n for n in found if TENSORRT_PACKAGE.match(n)), key=lambda n: (not n.endswith("-libs"), n))
    return {TENSORRT_PACKAGE.match(n).group(1): n for n in names}  # -libs only where nothing else names the major


def problems(found: dict[str, str]) -> list[str]:
    """What is wrong with one environment's distributions (empty: nothing)."""
    out = []
    ort = sorted(n for n in found if n in ONNXRUNTIME_PACKAGE)
    if len(ort) > 1:
        out.append(f"{' and '.join(ort)} install the same onnxruntime package")
    trt = tensorrt_packages(found)
    if len(trt) > 1:
        out.append(f"{' and '.join(trt.values())} install the same tensorrt package (CUDA {' and '.join(sorted(trt))})")
    for cuda, name in trt.items():
        for bindings in CUDA_BINDINGS:
            if bindings in found and found[bindings].split(".")[0] != cuda:
                out.append(f"{name} is built for CUDA {cuda} but {bindings} {found[bindings]} is CUDA {found[bindings].split('.')[0]}")
        if not any(b in found for b in CUDA_BINDINGS):
            out.append(f"{name} comes without cuda-python (segedge drives TensorRT through cuda.bindings)")
    return out


EXTRAS = sorted(e for e in PYPROJECT["optional-dependencies"] if e != "test")
INSTALLED = ("tensorrt-cu12==10.3.0", "tensorrt-cu13==11.4.0.106")  # 10.3: JetPack 6's TensorRT


@pytest.fixture(scope="module", autouse=True)
def _resolve_in_parallel():
    """Every resolution the tests below ask for, three pip processes at a time (pip mostly waits
    on the index); later calls hit :func:`resolve`'s cache."""
    if not pypi_reachable():
        return
    extra = PYPROJECT["optional-dependencies"]
    jobs = [core()] + [tuple(extra[e]) for e in EXTRAS]
    jobs += [(i, *extra[e]) for i in INSTALLED for e in EXTRAS if any("tensorrt" in r for r in extra[e])]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda roots: _quiet(resolve, roots), jobs))


def _quiet(function, *args):
    try:
        return function(*args)
    except BaseException:  # the test that needs it calls it again and reports the failure
        return None


@pytest.mark.parametrize("extra", EXTRAS)
def test_each_extra_installs_one_onnxruntime_and_one_tensorrt_of_one_cuda_major(extra):
    found = install_set(extra)
    assert problems(found) == [], f"segedge[{extra}]: {problems(found)}"


def test_cpu_and_gpu_are_the_onnx_runtime_alternatives():
    """Exactly one ONNX Runtime build in each; the GPU one never lands beside the CPU one."""
    assert sorted(n for n in install_set("cpu") if n in ONNXRUNTIME_PACKAGE) == ["onnxruntime"]
    assert sorted(n for n in install_set("gpu") if n in ONNXRUNTIME_PACKAGE) == ["onnxruntime-gpu"]


@pytest.mark.parametrize("installed", INSTALLED)
def test_an_installed_tensorrt_wheel_has_an_extra_that_adds_no_second_one(installed):
    """A machine that has TensorRT for its CUDA major (10.3 is JetPack 6's release) must have an
    extra that keeps it: same `tensorrt` package, cuda-python of the same major."""
    bringing = [e for e in EXTRAS if tensorrt_packages(install_set(e))]
    assert bringing, "no extra installs TensorRT"
    results = {e: problems(install_set(e, installed=(installed,))) for e in bringing}
    fitting = [e for e, found in results.items() if not found]
    assert fitting, f"every TensorRT extra breaks an environment with {installed}: {results}"
    cuda = re.search(r"cu(\d+)", installed).group(1)
    assert all(f"cu{cuda}" in e for e in fitting), f"{fitting} are not named for CUDA {cuda}"
