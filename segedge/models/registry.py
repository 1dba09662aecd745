"""Model registry: ``create_model(name)`` and ``list_models()`` (the timm pattern)."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Callable

from segedge.contract import PreprocessConfig
from segedge.errors import InputError

if TYPE_CHECKING:  # the registry itself imports no torch: `segedge --help` lists models without it
    from torch import nn

# models shipped trained inside the package (segedge/models/weights/NAME.pt); the first is every command's default
EMBEDDED_MODELS = ("segnet-lite0", "segnet-dsc")
DEFAULT_MODEL = EMBEDDED_MODELS[0]

_REGISTRY: dict[str, Callable[[], nn.Module]] = {}
_PREPROCESS: dict[str, PreprocessConfig] = {}


def register_model(name: str, preprocess: PreprocessConfig | None = None) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator registering a zero-argument model factory under ``name``.

    Args:
        name: the registry name.
        preprocess: the preprocessing the model is trained with by default (an ImageNet
            encoder needs its weights' normalisation); default :class:`PreprocessConfig` (the article's).
    """

    def wrap(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        _PREPROCESS[name] = preprocess or PreprocessConfig()
        return factory

    return wrap


def default_preprocess(name: str) -> PreprocessConfig:
    """The preprocessing ``segedge train --model NAME`` uses unless told otherwise.

    Raises:
        InputError: unknown name; the message lists the valid ones.
    """
    if name not in _PREPROCESS:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    return _PREPROCESS[name]


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str) -> nn.Module:
    """Build a freshly initialised model by registry name.

    Args:
        name: one of :func:`list_models` (``segnet``, ``segnet-dsc``, ``segnet-lite0``, ``segnet-lite0-bilinear``).

    Returns:
        The model in training mode, on the CPU, float32.

    Raises:
        InputError: unknown name; the message lists the valid ones.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(list_models())}") from None
    return factory()


@register_model("segnet")
def segnet() -> nn.Module:
    """SegNet of Matani & Singh, Part 2: 15,274,892 parameters."""
    from segedge.models.segnet import SegNet, SegNetConfig

    return SegNet(SegNetConfig())


@register_model("segnet-dsc")
def segnet_dsc() -> nn.Module:
    """SegNet with depthwise-separable convolutions, Part 3: 1,749,671 parameters."""
    from segedge.models.segnet import SegNet, SegNetConfig

    return SegNet(SegNetConfig(separable=True))


# TensorFlow's EfficientNet-Lite preprocessing (pixels to [-1, 1]); each frame fed at its own aspect, short side 256
LITE_PREPROCESS = PreprocessConfig(320, 320, "linear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize="aspect")


@register_model("segnet-lite0", LITE_PREPROCESS)
def segnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 encoder (ImageNet weights via ``load_imagenet_encoder``) with a SegNet
    decoder that max-unpools with indices of the encoder's features: 3,035,971 parameters."""
    from segedge.models.segnet_lite import SegNetLite, SegNetLiteConfig

    return SegNetLite(SegNetLiteConfig())


@register_model("segnet-lite0-bilinear", LITE_PREPROCESS)
def segnet_lite0_bilinear() -> nn.Module:
    """SegNet-Lite0 with bilinear upsampling instead of max-unpooling (the decoder ablation)."""
    from segedge.models.segnet_lite import SegNetLite, SegNetLiteConfig

    return SegNetLite(SegNetLiteConfig(upsample="bilinear"))


def model_choices() -> type[Enum]:
    """The registered model names as a ``str`` Enum (the CLI offers exactly these)."""
    return Enum("ModelName", {name: name for name in list_models()}, type=str)  # type: ignore[return-value]
