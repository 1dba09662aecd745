"""segedge checkpoints: weights plus everything a deployed artifact must agree with.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, loaded with
``weights_only=True`` (no pickled code runs). Keys:

- ``format`` ("segedge-checkpoint"), ``format_version`` (int)
- ``model``: registry name (``segnet``, ``segnet-dsc``, ``segnet-lite0``)
- ``state_dict``: model weights and BatchNorm statistics
- ``preprocess``: :class:`~segedge.data.transforms.PreprocessConfig` as a dict
- ``classes``: class names in logit order
- ``meta``: free-form training record (epochs, recipe, metrics)
- ``optimizer``, ``scheduler``, ``epoch``: optional, for ``segedge train --resume``

A bare ``state_dict`` saved by the articles' notebooks also loads: its model is found by
matching key names and shapes against the registry.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segedge._io import atomic_path
from segedge.contract import PET_CLASSES, Contract, PreprocessConfig
from segedge.errors import CheckpointError, InputError
from segedge.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS, create_model, list_models

FORMAT = "segedge-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = Path(__file__).parent / "weights"
# trained weights shipped inside the package, by registry name: the default, and the article's SegNet-DSC
EMBEDDED = {name: WEIGHTS / f"{name}.pt" for name in EMBEDDED_MODELS}
EMBEDDED_CHECKPOINT = EMBEDDED[DEFAULT_MODEL]


def size_multiple(model: nn.Module) -> int:
    """Input height and width must be multiples of this: ``2 ** stages`` for the SegNet
    family (``config.stages``), a model's own ``size_multiple`` attribute, else 1 (no
    constraint known)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "stages"):
        return 2 ** config.stages
    return int(getattr(model, "size_multiple", 1))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU, float32) and its deployment contract."""

    model: nn.Module
    model_name: str
    preprocess: PreprocessConfig
    classes: tuple[str, ...] = PET_CLASSES
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # optimizer/scheduler state for --resume
    palette: tuple[tuple[int, int, int] | None, ...] | None = None  # BGR overlay colours (None: the default for the classes)

    @property
    def contract(self) -> Contract:
        """The deployment contract this checkpoint hands to every artifact made from it."""
        return Contract.from_checkpoint(
            {"model": self.model_name, "preprocess": self.preprocess.to_dict(), "classes": list(self.classes),
             "palette": self.palette, "meta": self.meta},
            str(self.path or self.model_name),
        ).replace(size_multiple=size_multiple(self.model))

    @classmethod
    def from_module(cls, model: nn.Module, contract: Contract | None = None, name: str | None = None, meta: dict[str, Any] | None = None) -> "Checkpoint":
        """Wrap any segmentation ``nn.Module`` (``(N, 3, H, W)`` float32 in, ``(N, C, H, W)``
        logits out) with its deployment contract, so it can be exported, quantized and run
        like a segedge checkpoint.

        Args:
            model: the network (put in eval mode).
            contract: its preprocessing, classes, palette (default: the Pet defaults).
            name: a label for artifacts (default: ``contract.model``, else the class name).
            meta: training record (``data``: what it was trained on).
        """
        contract = contract or Contract()
        label = name or (contract.model if contract.model != "unknown" else type(model).__name__.lower())
        record = dict(meta or {})
        if contract.training_data != "unknown":
            record.setdefault("data", contract.training_data)
        return cls(model.eval(), label, contract.preprocess, contract.classes, record, None, {}, contract.palette)


def default_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    """Path of an embedded checkpoint shipped inside the package: the default ``segnet-lite0``
    (see its model card, ``segedge/models/weights/MODEL_CARD.md``) or the article's ``segnet-dsc``.

    Raises:
        CheckpointError: an unknown name, or the package was installed without its weights.
    """
    if name not in EMBEDDED:
        raise CheckpointError(f"no embedded model {name!r}; embedded: {', '.join(EMBEDDED)}")
    if not EMBEDDED[name].is_file():
        raise CheckpointError(f"the embedded checkpoint {EMBEDDED[name]} is missing; reinstall segedge")
    return EMBEDDED[name]


def resolve_checkpoint(spec: str | os.PathLike[str] | None) -> Path:
    """A checkpoint path from what a user typed: ``None`` is the default embedded model, the
    name of an embedded model (``segnet-dsc``) that is not also a file here is that model, and
    anything else is a path."""
    if spec is None:
        return default_checkpoint()
    if str(spec) in EMBEDDED and not Path(spec).exists():
        return default_checkpoint(str(spec))
    return Path(spec)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_name: str,
    preprocess: PreprocessConfig,
    classes: tuple[str, ...] = PET_CLASSES,
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
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **Contract(preprocess=preprocess, classes=tuple(classes), model=model_name).to_checkpoint(),
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


def load_checkpoint(path: str | os.PathLike[str] | None = None, model: nn.Module | None = None) -> Checkpoint:
    """Load a segedge checkpoint (or a bare article ``state_dict``) into an eval-mode model.

    Args:
        path: ``.pt`` file; ``None`` loads the embedded default ``segnet-lite0``, an embedded
            model's name (``segnet-dsc``) that model (see :func:`resolve_checkpoint`).
        model: the architecture to load the weights into, for a model that is not in the
            registry (default: the registry model the checkpoint names).

    Returns:
        :class:`Checkpoint` with the model in eval mode on the CPU.

    Raises:
        CheckpointError: missing, truncated or not a checkpoint; unknown model; weights
            that do not fit the named model (the first mismatching tensor is named), are not
            tensors, or hold NaN or infinity; an input size over the model-input limit.
    """
    path = resolve_checkpoint(path)
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
            contract = Contract.from_checkpoint(data, str(path))
        except (InputError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad preprocessing record: {exc}") from None
        preprocess, classes = contract.preprocess, contract.classes
        palette = data.get("palette") and contract.palette
        try:
            meta = dict(data.get("meta", {}))
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: the meta record is malformed") from None
    elif all(isinstance(v, torch.Tensor) for v in data.values()) and data:
        state_dict, name = data, _match_bare_state_dict(data)
        if name is None:
            raise CheckpointError(
                f"{path} is a bare state_dict that matches none of the models ({', '.join(list_models())})"
            )
        preprocess, classes, meta, palette = PreprocessConfig(), PET_CLASSES, {"source": "bare state_dict"}, None
    else:
        raise CheckpointError(f"{path} is not a segedge checkpoint (no 'format' key) nor a bare state_dict")

    if model is None and name not in list_models():
        raise CheckpointError(f"{path} names model {name!r}; known models: {', '.join(list_models())} (or pass model=)")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} has no state_dict")
    model = copy.deepcopy(model) if model is not None else create_model(name)
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
    predicted = getattr(getattr(model, "config", None), "num_classes", len(classes))
    if len(classes) != predicted:
        raise CheckpointError(f"{path} lists {len(classes)} classes but the model predicts {predicted}")
    model.load_state_dict(state_dict)
    model.eval()
    return Checkpoint(model, name, preprocess, classes, meta, path, data, palette)
