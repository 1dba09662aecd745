"""segedge checkpoints: weights plus everything a deployed artifact must agree with.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, loaded with
``weights_only=True`` (no pickled code runs). Keys:

- ``format`` ("segedge-checkpoint"), ``format_version`` (int)
- ``model``: registry name (``segnet``, ``segnet-dsc``)
- ``state_dict``: model weights and BatchNorm statistics
- ``preprocess``: :class:`~segedge.data.transforms.PreprocessConfig` as a dict
- ``classes``: class names in logit order
- ``meta``: free-form training record (epochs, recipe, metrics)
- ``optimizer``, ``scheduler``, ``epoch``: optional, for ``segedge train --resume``

A bare ``state_dict`` saved by the articles' notebooks also loads: its model is found by
matching key names and shapes against the registry.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segedge._io import atomic_path
from segedge.data.oxford_pet import CLASS_NAMES
from segedge.data.transforms import PreprocessConfig
from segedge.errors import CheckpointError, InputError
from segedge.models.registry import create_model, list_models

FORMAT = "segedge-checkpoint"
FORMAT_VERSION = 1
EMBEDDED_CHECKPOINT = Path(__file__).parent / "weights" / "segnet-dsc.pt"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU, float32) and its deployment contract."""

    model: nn.Module
    model_name: str
    preprocess: PreprocessConfig
    classes: tuple[str, ...] = CLASS_NAMES
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # optimizer/scheduler state for --resume


def default_checkpoint() -> Path:
    """Path of the embedded ``segnet-dsc`` checkpoint shipped inside the package.

    Raises:
        CheckpointError: the package was installed without its weights.
    """
    if not EMBEDDED_CHECKPOINT.is_file():
        raise CheckpointError(f"the embedded checkpoint {EMBEDDED_CHECKPOINT} is missing; reinstall segedge")
    return EMBEDDED_CHECKPOINT


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_name: str,
    preprocess: PreprocessConfig,
    classes: tuple[str, ...] = CLASS_NAMES,
    meta: dict[str, Any] | None = None,
    **training_state: Any,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: destination ``.pt`` file.
        model: the network; its ``state_dict`` is saved.
        model_name: registry name that rebuilds it.
        preprocess: the preprocessing it was trained with.
        classes: class names in logit order.
        meta: JSON-like training record.
        **training_state: extra entries (``optimizer``, ``scheduler``, ``epoch``) for resuming.

    Returns:
        The final path.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocess": preprocess.to_dict(),
        "classes": list(classes),
        "meta": meta or {},
        **training_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _match_bare_state_dict(state_dict: dict[str, Any]) -> str | None:
    for name in list_models():
        expected = create_model(name).state_dict()
        if set(expected) == set(state_dict) and all(
            tuple(expected[k].shape) == tuple(getattr(state_dict[k], "shape", ())) for k in expected
        ):
            return name
    return None


def load_checkpoint(path: str | os.PathLike[str] | None = None) -> Checkpoint:
    """Load a segedge checkpoint (or a bare article ``state_dict``) into an eval-mode model.

    Args:
        path: ``.pt`` file; ``None`` loads the embedded ``segnet-dsc``.

    Returns:
        :class:`Checkpoint` with the model in eval mode on the CPU.

    Raises:
        CheckpointError: missing, truncated or not a checkpoint; unknown model; weights
            that do not fit the named model (the first mismatching tensor is named), are not
            tensors, or hold NaN or infinity; an input size over the model-input limit.
    """
    path = Path(path) if path is not None else default_checkpoint()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. pickle-protocol notes on foreign files
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: corrupt, truncated, "
            "or not written by torch.save with tensors and plain values only)"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")

    if data.get("format") == FORMAT:
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} is checkpoint format {data['format_version']}; this segedge reads up to "
                f"{FORMAT_VERSION} (upgrade segedge)"
            )
        name, state_dict = data.get("model"), data.get("state_dict")
        try:
            preprocess = PreprocessConfig.from_dict(data.get("preprocess", {}))
        except (InputError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: bad preprocessing record: {exc}") from None
        try:
            classes = tuple(str(c) for c in data.get("classes", CLASS_NAMES))
            meta = dict(data.get("meta", {}))
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: the classes or meta record is malformed") from None
    elif all(isinstance(v, torch.Tensor) for v in data.values()) and data:
        state_dict, name = data, _match_bare_state_dict(data)
        if name is None:
            raise CheckpointError(
                f"{path} is a bare state_dict that matches none of the models ({', '.join(list_models())})"
            )
        preprocess, classes, meta = PreprocessConfig(), CLASS_NAMES, {"source": "bare state_dict"}
    else:
        raise CheckpointError(f"{path} is not a segedge checkpoint (no 'format' key) nor a bare state_dict")

    if name not in list_models():
        raise CheckpointError(f"{path} names model {name!r}; known models: {', '.join(list_models())}")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} has no state_dict")
    model = create_model(name)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CheckpointError(
            f"{path} does not fit model {name!r}: {len(missing)} missing and {len(unexpected)} unexpected "
            f"tensors ({detail})"
        )
    for key, tensor in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path} does not fit model {name!r}: {key} is {tuple(state_dict[key].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    for key, value in state_dict.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite weights (a diverged training run?); it cannot be deployed")
    if len(classes) != model.config.num_classes:
        raise CheckpointError(f"{path} lists {len(classes)} classes but the model predicts {model.config.num_classes}")
    model.load_state_dict(state_dict)
    model.eval()
    return Checkpoint(model, name, preprocess, classes, meta, path, data)
