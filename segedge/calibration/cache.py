"""Calibration cache: activation ranges saved as JSON, keyed by model and data fingerprints.

Calibration is the slow part of an INT8 build (every calibration image through an
augmented model that outputs every activation). The ranges it computes depend only on

- the float model (its ONNX bytes: graph, weights and metadata),
- the calibration data (the preprocessed input tensor, so a change of image, order, count
  or preprocessing is seen),
- the method and its parameters, the target form (``tensorrt``: symmetric ranges for signed
  INT8; ``onnxruntime``: asymmetric ranges of more tensors for unsigned INT8) and segedge's
  quantization settings,

so segedge stores them with exactly those keys. A rebuild with the same four reuses the
ranges; anything else is reported by name and the ranges are recomputed, never silently
reused (the role TensorRT's calibration cache played for implicit quantization).

File format (``segedge_calibration_cache`` schema 1)::

    {"segedge_calibration_cache": 1,
     "key": {"model_sha256": ..., "data_sha256": ..., "method": ..., "percentile": ..., "settings": ...,
             "target": ...},
     "images": 64, "source": "...", "created": "2026-11-24T18:00:00+00:00",
     "ranges": {...}}   # onnxruntime.quantization TensorsData, as its save_tensors_data writes it
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segedge._io import atomic_path
from segedge.contract import Target
from segedge.errors import DataError

CACHE_SCHEMA = 1


@dataclass(frozen=True)
class CalibrationKey:
    """What calibration ranges depend on.

    Attributes:
        model_sha256: SHA-256 of the float ONNX file.
        data_sha256: SHA-256 of the preprocessed calibration tensor (shape, dtype and bytes).
        method: ``minmax``, ``entropy`` or ``percentile``.
        percentile: the percentile for ``percentile``, else ``None``.
        settings: version tag of segedge's quantizer settings (see ``quantize.SETTINGS``).
        target: the INT8 form, ``tensorrt`` or ``onnxruntime`` (caches written before the
            field existed were TensorRT-form ones, hence the default).
    """

    model_sha256: str
    data_sha256: str
    method: str
    percentile: float | None
    settings: str
    target: str = Target.TENSORRT.value

    def differences(self, other: "CalibrationKey") -> list[str]:
        """Names of the fields that differ, in plain words (``["the model", "the data"]``)."""
        words = {
            "model_sha256": "the model",
            "data_sha256": "the calibration data",
            "method": "the method",
            "percentile": "the percentile",
            "settings": "segedge's quantization settings",
            "target": "the target form",
        }
        mine, theirs = asdict(self), asdict(other)
        return [words[name] for name in words if mine[name] != theirs[name]]


def array_sha256(array: np.ndarray) -> str:
    """Hex SHA-256 of an array's shape, dtype and C-order bytes."""
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


@dataclass
class CacheLookup:
    """Outcome of :func:`read_cache`.

    Attributes:
        ranges: the stored ranges when the key matched, else ``None``.
        status: ``missing``, ``reused`` or ``stale``.
        reason: for ``stale``, what changed (one line).
    """

    ranges: dict[str, Any] | None
    status: str
    reason: str = ""


def read_cache(path: str | os.PathLike[str], key: CalibrationKey) -> CacheLookup:
    """Look up ranges for ``key`` in the cache file ``path``.

    Raises:
        DataError: the file exists but is not a segedge calibration cache (unreadable JSON or
            another schema); it is left untouched.
    """
    path = Path(path)
    if not path.exists():
        return CacheLookup(None, "missing")
    try:
        payload = json.loads(path.read_text())
        if payload.get("segedge_calibration_cache") != CACHE_SCHEMA:
            raise ValueError("not a segedge calibration cache (schema 1)")
        if "key" not in payload or "ranges" not in payload:
            raise ValueError(f"the {'key' if 'key' not in payload else 'ranges'} record is missing")
        stored = CalibrationKey(**payload["key"])
        ranges = payload["ranges"]
        # ONNX Runtime's serialised TensorsData: a tampered record would fail deep inside the quantizer
        if not (isinstance(ranges, dict) and isinstance(ranges.get("data"), dict) and "calibration_method" in ranges):
            raise ValueError("its ranges record is not ONNX Runtime calibration data (tampered or truncated?)")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"calibration cache {path} is unreadable ({str(exc).splitlines()[0][:120]}); delete it or pass another path") from None
    changed = stored.differences(key)
    if changed:
        return CacheLookup(None, "stale", f"{' and '.join(changed)} changed since {path} was computed")
    return CacheLookup(ranges, "reused")


def write_cache(path: str | os.PathLike[str], key: CalibrationKey, ranges: dict[str, Any], images: int, source: str) -> Path:
    """Write (atomically) ranges for ``key`` to ``path``, replacing what was there."""
    payload = {
        "segedge_calibration_cache": CACHE_SCHEMA,
        "key": asdict(key),
        "images": images,
        "source": source,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ranges": ranges,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload))
    return Path(path)
