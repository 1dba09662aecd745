"""Loading ONNX files, hashing artifacts and quieting the exporter.

The deployment contract an ONNX carries in ``metadata_props`` (``segedge.*`` keys) is read
and written by :class:`segedge.contract.Contract` only; :func:`read_metadata` and
:func:`set_metadata` here are thin aliases of its raw readers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator

import onnx

from segedge.contract import read_props, write_props
from segedge.errors import ModelFormatError



def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """segedge entries of ``model.metadata_props``, without the prefix, as stored (for
    display; typed access goes through :meth:`segedge.contract.Contract.from_onnx`)."""
    return read_props(model.metadata_props)


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Write unprefixed entries into ``model.metadata_props`` (see :func:`segedge.contract.write_props`)."""
    write_props(model.metadata_props, metadata)


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
