"""ONNX files and the deployment contract they carry in ``metadata_props`` (``segedge.*`` keys).

Written by ``segedge export`` and kept by every later step (FP16, INT8, engine sidecars):

- ``preprocess``: :class:`~segedge.data.transforms.PreprocessConfig` as JSON
- ``classes``, ``palette``: class names and their BGR overlay colours (JSON lists)
- ``input_size``: ``[H, W]`` the model was trained at; ``dynamic``: which input axes are symbolic
- ``model``, ``precision`` (fp32 | fp16 | int8), ``target`` (tensorrt | onnxruntime: the unpool form)
- ``training_data``, ``checkpoint_sha256``, ``segedge_version``
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator

import onnx

from segedge.errors import ModelFormatError

PREFIX = "segedge."


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """segedge entries of ``model.metadata_props``, without the ``segedge.`` prefix."""
    return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Write ``metadata`` (keys without prefix) into ``model.metadata_props``, replacing
    existing segedge entries of the same keys."""
    prefixed = {PREFIX + k: v for k, v in metadata.items()}
    keep = [p for p in model.metadata_props if p.key not in prefixed]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in prefixed.items():
        model.metadata_props.add(key=key, value=value)


def metadata_json(model: onnx.ModelProto, key: str, default=None):
    """A JSON-valued metadata entry, or ``default`` if absent."""
    value = read_metadata(model).get(key)
    return default if value is None else json.loads(value)


def load_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX file.

    Raises:
        ModelFormatError: missing, truncated or not an ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception:  # protobuf DecodeError, OSError, ...
        raise ModelFormatError(f"{path} is not a readable ONNX model (truncated or corrupt?)") from None
    if not model.graph.node:
        raise ModelFormatError(f"{path} is not a readable ONNX model: its graph has no nodes")
    return model


@contextlib.contextmanager
def quiet_exporter() -> Iterator[io.StringIO]:
    """Capture exporter and quantizer chatter (prints, warnings, log records) unless
    SEGEDGE_DEBUG=1; yields the buffer so a failure can show it."""
    buffer = io.StringIO()
    if os.environ.get("SEGEDGE_DEBUG") == "1":
        yield buffer
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
