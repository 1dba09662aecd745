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

from segedge._io import private_directory
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


def load_onnx(path: str | os.PathLike[str], load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX file (with its external weight data, if any, from beside it).

    Raises:
        ModelFormatError: missing, truncated or not an ONNX model, or its external data
            is missing or lies outside the model's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception:  # protobuf DecodeError, OSError, ...
        raise ModelFormatError(f"{path} is not a readable ONNX model (truncated or corrupt, or its external data is missing?)") from None
    if not model.graph.node:
        raise ModelFormatError(f"{path} is not a readable ONNX model: its graph has no nodes")
    return model


def check_finite_weights(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Refuse an ONNX whose floating-point weights (initializers) hold NaN or infinity, as a
    checkpoint with such weights is refused (:func:`segedge.models.checkpoint.load_checkpoint`):
    every output would be NaN, and NaN's argmax is class 0 everywhere, which a parity check
    between two such graphs cannot tell from agreement.

    Raises:
        ModelFormatError: the first such initializer, by name (one line).
    """
    from onnx import numpy_helper

    import numpy as np

    for initializer in model.graph.initializer:
        if initializer.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            continue
        values = numpy_helper.to_array(initializer)
        if not np.isfinite(values.astype(np.float32, copy=False)).all():
            raise ModelFormatError(
                f"{path}: weight {initializer.name} holds NaN or infinite values (a diverged training run?); it cannot be deployed"
            )


def uses_external_data(model: onnx.ModelProto) -> bool:
    """True when some initializer keeps its bytes in an external file (models over 2 GB, or
    saved with ``save_as_external_data``)."""
    from onnx.external_data_helper import uses_external_data as external

    return any(external(t) for t in model.graph.initializer)


@contextlib.contextmanager
def self_contained(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield ``path`` itself, or, for an ONNX whose weights live in external data files, a
    temporary single-file copy with the weights inside, so tools that read or copy only the
    ``.onnx`` (the quantizer, a copy into an artifact) get the whole model.

    Raises:
        ModelFormatError: unreadable, an external data file is missing or lies outside the
            model's folder, or the weights exceed protobuf's 2 GB single-file limit.
    """
    path = Path(path)
    model = load_onnx(path, load_external_data=False)
    if not uses_external_data(model):
        yield path
        return
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # missing file, a location escaping the folder (refused by onnx)
        raise ModelFormatError(f"{path}: cannot read its external weight data: {str(exc).splitlines()[0][:200]}") from None
    if model.ByteSize() >= 2**31:
        raise ModelFormatError(f"{path}: weights over 2 GB cannot be made single-file; segedge handles models below 2 GB")
    with private_directory("onnx") as work:
        single = Path(work) / path.name
        onnx.save(model, str(single))
        yield single


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
