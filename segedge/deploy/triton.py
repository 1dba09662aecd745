"""Triton Inference Server model repositories written from segedge artifacts, and their check.

Layout (Triton docs, "Model Repository"): ``REPO/<name>/config.pbtxt``,
``REPO/<name>/labels.txt`` and ``REPO/<name>/1/model.onnx`` (``onnxruntime`` backend) or
``1/model.plan`` (``tensorrt_plan`` platform); ``segedge serve`` uses the ``python`` backend
with ``1/model.py``. Every field comes from the artifact: tensor names, dtypes and dims,
``max_batch_size`` from its batch axis (symbolic: batching up to ``max_batch``; an engine:
its optimization profile's maximum), the contract as ``parameters`` (``segedge.preprocess``,
``segedge.classes``, ``segedge.palette``, ``segedge.precision``, ...), class names in the
label file. ONNX models get a second output ``classmap`` (uint8 argmax, see
:mod:`segedge.deploy.variants`) unless ``class_map=False``; engines cannot be edited, so
clients take the argmax of ``logits`` themselves.

The TensorRT execution accelerator of the ``onnxruntime`` backend (Triton onnxruntime_backend
README, "Model Config Options": ``optimization { execution_accelerators {
gpu_execution_accelerator: [{ name: "tensorrt" ... }] } }``) is set to the artifact's
precision (``precision_mode`` FP32 / FP16 / INT8: a Q/DQ model needs INT8 enabled for
TensorRT to take its Q/DQ nodes), with the engine cache on and, for a batched model, one
optimization profile from batch 1 to ``max_batch_size``; the CUDA execution provider
runs whatever TensorRT does not take. The engine cache (``trt_engine_cache_path``, passed to
ONNX Runtime's TensorRT provider as it is) is ``REPO/<name>/trt-cache-<SHA-256 of the served
model.onnx, 16 hex digits>``, an absolute path inside the model's own directory: never shared
by two models or two versions of one, and nowhere another local user can plant an engine
(Triton ignores a model directory's non-numeric subdirectories: "Model Repository", "Model
Versions"). A repository served from another path (a container mount) needs that line edited.
``--device cpu`` writes ``KIND_CPU`` instances and no accelerator.

Every model directory is written into a staged folder beside its final name and checked
there; only when every model of the call has passed is each renamed into place whole, so a
failed check leaves nothing for the next run to trip over.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from segedge._io import atomic_path, atomic_write_bytes, atomic_write_text, check_output, make_staged_directory, replace_directory, resolved
from segedge.contract import Backend, Contract, Precision, Word
from segedge.deploy.artifact import ArtifactInfo, TensorSpec, onnx_info, read_artifact
from segedge.errors import BackendUnavailableError, ExportError, InputError

ONNXRUNTIME = Backend.ONNXRUNTIME.value  # Triton's backend of that name
LOGITS_OUTPUT = "logits_output"  # config parameter: the output holding the logits
SERVE_THREADS = "serve_threads"  # config parameter (python backend): intra-op threads per instance
PRECISION_MODE = {Precision.FP32: "FP32", Precision.FP16: "FP16", Precision.INT8: "INT8"}
LABELS = "labels.txt"


class Device(Word):
    """Where Triton runs a model's instances."""

    GPU = "gpu"  # KIND_GPU, with the TensorRT execution accelerator for ONNX models
    CPU = "cpu"  # KIND_CPU


@dataclass(frozen=True)
class TritonOptions:
    """How a model is served.

    Attributes:
        max_batch: largest batch Triton forms (symbolic batch axis; an engine is capped at its
            profile's maximum). 0 disables batching.
        queue_delay_us: how long the dynamic batcher waits for more requests, microseconds.
        instances: model instances (parallel executions) per device.
        device: ``gpu`` (``KIND_GPU``, TensorRT accelerator) or ``cpu`` (``KIND_CPU``).
        class_map: add the uint8 ``classmap`` output (ONNX only).
        threads: intra-op threads of each instance (``segedge serve``'s python backend; 0: default).
    """

    max_batch: int = 8
    queue_delay_us: int = 2000
    instances: int = 1
    device: Device = Device.GPU
    class_map: bool = True
    threads: int = 0


def model_name(path: Path) -> str:
    """A Triton model name from a file name: letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_") or "model"


def _q(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor(t: TensorSpec, batched: bool, labels: bool = False) -> str:
    dims = t.shape[1:] if batched else t.shape
    extra = f" label_filename: {_q(LABELS)}" if labels else ""
    return f"  {{ name: {_q(t.name)} data_type: {t.dtype} dims: [ {', '.join(str(d) for d in dims)} ]{extra} }}"


def batch_limit(info: ArtifactInfo, options: TritonOptions) -> int:
    """``max_batch_size`` for ``info``: 0 when its batch axis is fixed or batching is off."""
    if options.max_batch <= 0 or info.inputs[0].shape[0] != -1:
        return 0
    if info.max_profile_batch is not None:
        return min(options.max_batch, info.max_profile_batch)
    return options.max_batch


def config_text(name: str, info: ArtifactInfo, options: TritonOptions, backend: str, outputs: tuple[TensorSpec, ...],
                cache_path: str | None = None) -> str:
    """``config.pbtxt`` text (protobuf text format of Triton's ``inference.ModelConfig``).

    Args:
        name: model name (its directory name).
        info: the artifact the model file was written from.
        options: batching, instances, device.
        backend: ``onnxruntime``, ``tensorrt_plan`` (written as ``platform``) or ``python``.
        outputs: the output tensors to declare (the first carries the label file).
        cache_path: the TensorRT accelerator's engine cache folder (an ``onnxruntime`` model on
            the GPU; see the module docstring); ``None``: the cache stays off.
    """
    max_batch = batch_limit(info, options)
    batched = max_batch > 0
    head = 'platform: "tensorrt_plan"' if backend == "tensorrt_plan" else f"backend: {_q(backend)}"
    kind = "KIND_GPU" if options.device == Device.GPU and backend != "python" else "KIND_CPU"
    lines = [
        f"# written by segedge from {info.path.name}; the segedge.* parameters are its deployment contract",
        f"name: {_q(name)}",
        head,
        f"max_batch_size: {max_batch}",
        "input [",
        ",\n".join(_tensor(t, batched) for t in info.inputs),
        "]",
        "output [",
        ",\n".join(_tensor(t, batched, labels=i == 0) for i, t in enumerate(outputs)),
        "]",
    ]
    if batched:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {options.queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {options.instances} kind: {kind} }} ]")
    if backend == ONNXRUNTIME and kind == "KIND_GPU":
        mode = PRECISION_MODE.get(info.precision, "FP32")
        lines += [
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {",
            '  name: "tensorrt"',
            f'  parameters {{ key: "precision_mode" value: "{mode}" }}',
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }',
        ]
        if cache_path is not None:
            lines += [
                '  parameters { key: "trt_engine_cache_enable" value: "1" }',
                f"  parameters {{ key: \"trt_engine_cache_path\" value: {_q(cache_path)} }}",
            ]
        if batched:  # one engine for every batch the batcher forms, instead of a rebuild per new shape
            inp = info.inputs[0]
            dims = "x".join(str(d) for d in inp.shape[1:])
            for key, n in (("min", 1), ("opt", max_batch), ("max", max_batch)):
                lines.append(f'  parameters {{ key: "trt_profile_{key}_shapes" value: "{inp.name}:{n}x{dims}" }}')
        lines.append("} ] } }")
    params = dict(sorted(info.parameters().items()))
    params[LOGITS_OUTPUT] = outputs[0].name
    if backend == "python" and options.threads:
        params[SERVE_THREADS] = str(options.threads)
    for key, value in params.items():
        lines.append(f"parameters {{ key: {_q(key)} value: {{ string_value: {_q(value)} }} }}")
    return "\n".join(lines) + "\n"


def parse_config(path: Path):
    """Parse a ``config.pbtxt`` into Triton's own ``ModelConfig`` protobuf
    (``tritonclient.grpc.model_config_pb2``).

    Raises:
        BackendUnavailableError: tritonclient is not installed.
        ExportError: the text does not parse (unknown field, wrong type).
    """
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise BackendUnavailableError("checking Triton configs needs tritonclient: pip install 'segedge[triton]'") from None
    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ExportError(f"{path} is not a valid Triton ModelConfig: {exc}") from None


def check_config(config, info: ArtifactInfo, model_dir: Path, name: str | None = None) -> None:
    """Check a parsed ``ModelConfig`` against the model it serves.

    Args:
        config: the parsed ``ModelConfig``.
        info: the model it serves.
        model_dir: the folder holding ``config.pbtxt`` and ``1/``.
        name: the model's name (default: ``model_dir``'s; a staged folder has another).

    Checks: name = directory, backend/platform = model file, every model input declared
    with its dtype and dims (the batch axis dropped when ``max_batch_size`` > 0, and then
    symbolic in the model), every declared output in the model with its dtype and dims,
    the label file with one line per class, the contract parameters, batching settings.

    Raises:
        ExportError: every mismatch found, in one line.
    """
    from tritonclient.grpc import model_config_pb2 as pb

    problems = []
    name = name or model_dir.name
    if config.name != name:
        problems.append(f"name {config.name!r} is not the directory name {name!r}")
    files = {ONNXRUNTIME: "model.onnx", "python": "model.py"}
    expected = "model.plan" if config.platform == "tensorrt_plan" else files.get(config.backend)
    if expected is None or not (model_dir / "1" / expected).is_file():
        problems.append(f"backend {config.backend or config.platform!r} has no 1/{expected} beside it")
    batched = config.max_batch_size > 0
    by_name = {t.name: t for t in info.inputs + info.outputs}

    def compare(declared, what: str) -> None:
        spec = by_name.get(declared.name)
        if spec is None:
            problems.append(f"{what} {declared.name!r} is not in the model ({', '.join(by_name)})")
            return
        if pb.DataType.Name(declared.data_type) != spec.dtype:
            problems.append(f"{what} {declared.name!r} is {pb.DataType.Name(declared.data_type)}, the model has {spec.dtype}")
        shape = spec.shape[1:] if batched else spec.shape
        if batched and spec.shape[0] != -1:
            problems.append(f"max_batch_size {config.max_batch_size} but {declared.name!r} has a fixed batch axis {spec.shape[0]}")
        if tuple(declared.dims) != tuple(shape):
            problems.append(f"{what} {declared.name!r} dims {list(declared.dims)}, the model has {list(shape)}")

    for declared in config.input:
        compare(declared, "input")
    for declared in config.output:
        compare(declared, "output")
    missing = {t.name for t in info.inputs} - {t.name for t in config.input}
    if missing:
        problems.append(f"model inputs {sorted(missing)} are not declared")
    if config.HasField("dynamic_batching") and not batched:
        problems.append("dynamic_batching without batching (max_batch_size 0)")
    labelled = [o for o in config.output if o.label_filename]
    declared = Contract.from_props({k: v.string_value for k, v in config.parameters.items()}, f"{model_dir}/config.pbtxt")
    classes = list(declared.classes) if declared.declared else None
    if declared != info.contract or not declared.declared:
        problems.append("the segedge.* parameters do not carry the model's contract")
    if classes is None or len(classes) != info.outputs[0].shape[1]:
        problems.append(f"classes {classes} do not match the {info.outputs[0].shape[1]} logit channels")
    for output in labelled:
        path = model_dir / output.label_filename
        if not path.is_file() or (classes and path.read_text().splitlines() != classes):
            problems.append(f"label file {output.label_filename} is missing or does not list the classes in order")
    if problems:
        raise ExportError(f"{model_dir / 'config.pbtxt'}: " + "; ".join(problems))


def _stage_model(info: ArtifactInfo, final: Path, options: TritonOptions, backend: str | None, python_model: Path | None) -> Path:
    """Write and check one model directory in a staged folder beside ``final``; return it."""
    import onnx

    name = final.name
    stage = make_staged_directory(final)
    try:
        version = stage / "1"
        version.mkdir()
        served, cache = info, None
        if info.kind == "onnx":
            model = onnx.load(str(info.path))
            if options.class_map:
                from segedge.deploy.variants import with_class_map

                model = with_class_map(model, info.outputs[0].name, len(info.classes))
            data = model.SerializeToString()
            atomic_write_bytes(version / "model.onnx", data)
            served = onnx_info(model, info.path)
            if backend is None and options.device == Device.GPU:  # the TensorRT accelerator's cache, keyed by this model
                folder = f"trt-cache-{hashlib.sha256(data).hexdigest()[:16]}"
                (stage / folder).mkdir()
                cache = str(resolved(final) / folder)
        else:
            with atomic_path(version / f"model{info.path.suffix if backend == 'python' else '.plan'}") as tmp:
                shutil.copyfile(info.path, tmp)
        if backend == "python":
            atomic_write_text(version / "model.py", Path(python_model).read_text())
        kind = backend or (ONNXRUNTIME if info.kind == "onnx" else "tensorrt_plan")
        atomic_write_text(stage / LABELS, "\n".join(info.classes) + "\n")
        atomic_write_text(stage / "config.pbtxt", config_text(name, served, options, kind, served.outputs, cache))
        check_config(parse_config(stage / "config.pbtxt"), served, stage, name=name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def _refuse_existing(final: Path) -> None:
    if os.path.lexists(final):
        raise InputError(f"{final} already exists; remove it or choose another output")


def write_model(info: ArtifactInfo, repo: Path, options: TritonOptions, name: str | None = None, backend: str | None = None,
                python_model: Path | None = None) -> Path:
    """Write one model directory into ``repo`` and check its config, in a staged folder that
    becomes ``repo/<name>`` whole only once the check has passed.

    Args:
        info: the artifact (:func:`~segedge.deploy.artifact.read_artifact`).
        repo: repository root (created).
        options: batching, instances, device, class map.
        name: model name (default: from the file name).
        backend: override: ``python`` writes ``python_model`` as ``1/model.py`` and the ONNX
            (or engine, checkpoint) beside it, for ``segedge serve``.
        python_model: the Python-backend model file (with ``backend="python"``).

    Returns:
        The model directory.

    Raises:
        ExportError: the written config does not match the model (should not happen).
        BackendUnavailableError: tritonclient (for the check) is missing.
        InputError: ``name`` is already in ``repo`` (not overwritten).
    """
    final = Path(repo) / (name or model_name(info.path))
    _refuse_existing(final)
    stage = _stage_model(info, final, options, backend, python_model)
    try:
        replace_directory(stage, final, overwrite=False)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone after a successful rename
    return final


def write_repository(artifacts: list[str | os.PathLike[str]], repo: str | os.PathLike[str], options: TritonOptions = TritonOptions()) -> list[Path]:
    """``segedge deploy triton``: one model directory per artifact, every config checked before
    any model directory appears in ``repo``.

    Args:
        artifacts: ``.onnx`` files, or ``.engine``/``.plan`` files with their sidecars.
        repo: repository root (created; its parent must exist).
        options: batching, instances, device, class map.

    Returns:
        The model directories, in the order of ``artifacts``.

    Raises:
        InputError: two artifacts map to one model name, a name already in ``repo``, or
            ``repo`` is a file or one of the artifacts.
        ModelFormatError: an artifact cannot be read.
        ExportError: a written config does not match its model.
        BackendUnavailableError: tritonclient (for the check) is missing.
    """
    repo = check_output(repo, artifacts, directory=True)
    infos = [read_artifact(a) for a in artifacts]
    names = [model_name(i.path) for i in infos]
    if len(set(names)) != len(names):
        raise InputError(f"two artifacts give the same model name: {names}; rename one")
    for name in names:
        _refuse_existing(repo / name)
    stages: list[Path] = []
    try:
        for info, name in zip(infos, names):
            stages.append(_stage_model(info, repo / name, options, None, None))
        for stage, name in zip(stages, names):  # every model checked: publish each whole
            replace_directory(stage, repo / name, overwrite=False)
    finally:
        for stage in stages:
            shutil.rmtree(stage, ignore_errors=True)
    return [repo / name for name in names]
