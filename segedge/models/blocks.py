"""Building blocks of the SegNet family.

Module and attribute names follow the code of Matani & Singh, "Efficient Image
Segmentation Using PyTorch", Part 2 (SegNet: ``DownConv2/3``, ``UpConv2/3`` with ``seq``,
``mp`` and ``mup``) and Part 3 (``DepthwiseSeparableConv2d`` with ``depthwise_conv`` and
``pointwise_conv``), so a ``state_dict`` trained with the articles' notebooks loads as is.
"""

from __future__ import annotations

import torch
from torch import nn


class DepthwiseSeparableConv2d(nn.Module):
    """A depthwise ``k x k`` convolution followed by a pointwise ``1 x 1`` convolution.

    Nothing sits between the two (no BatchNorm, no activation), as in Part 3 of the
    article series. Parameters: ``in_channels * k * k + in_channels * out_channels``
    (+ biases when ``bias``).

    Shapes: input ``(N, in_channels, H, W)`` -> output ``(N, out_channels, H, W)``
    (for ``padding = k // 2`` and stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, bias=bias
        )
        self.pointwise_conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def conv_bn_relu_stack(channels: list[int], kernel_size: int, separable: bool) -> nn.Sequential:
    """``len(channels) - 1`` layers of Conv(no bias, same padding) - BatchNorm2d - ReLU.

    Args:
        channels: widths ``[c_in, c_1, ..., c_out]``; layer ``i`` maps ``channels[i]`` to
            ``channels[i + 1]``.
        kernel_size: odd spatial kernel size ``k``; padding is ``k // 2``.
        separable: use :class:`DepthwiseSeparableConv2d` instead of ``nn.Conv2d``.

    Returns:
        ``nn.Sequential`` laid out ``[conv, bn, relu, conv, bn, relu, ...]`` (indices match
        the article's ``seq``).
    """
    layers: list[nn.Module] = []
    for cin, cout in zip(channels[:-1], channels[1:]):
        if separable:
            conv: nn.Module = DepthwiseSeparableConv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False)
        else:
            conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False)
        layers += [conv, nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class DownConv(nn.Module):
    """Encoder stage: ``depth`` Conv-BN-ReLU layers, then 2x2 max-pooling that keeps indices.

    Shapes: ``(N, cin, H, W)`` -> pooled ``(N, cout, H//2, W//2)``, indices (int64, same
    shape, flat positions in the ``H x W`` plane as ``nn.MaxPool2d(return_indices=True)``
    gives) and the pre-pool size ``(H, W)`` the decoder unpools back to.
    """

    def __init__(self, cin: int, cout: int, depth: int, kernel_size: int, separable: bool):
        super().__init__()
        self.seq = conv_bn_relu_stack([cin] + [cout] * depth, kernel_size, separable)
        self.mp = nn.MaxPool2d(kernel_size=2, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        y = self.seq(x)  # (N, cout, H, W)
        pool_shape = y.shape
        y, indices = self.mp(y)  # (N, cout, H/2, W/2) twice
        return y, indices, pool_shape


class UpConv(nn.Module):
    """Decoder stage: 2x2 max-unpooling with the matching encoder's indices, then ``depth``
    Conv-BN-ReLU layers that keep ``cin`` channels except the last, which maps to ``cout``.

    Shapes: ``(N, cin, h, w)`` + indices ``(N, cin, h, w)`` + ``output_size`` ``(.., H, W)``
    -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, cout: int, depth: int, kernel_size: int, separable: bool):
        super().__init__()
        self.mup = nn.MaxUnpool2d(kernel_size=2)
        self.seq = conv_bn_relu_stack([cin] * depth + [cout], kernel_size, separable)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size: torch.Size) -> torch.Tensor:
        y = self.mup(x, indices, output_size=output_size)  # (N, cin, H, W)
        return self.seq(y)  # (N, cout, H, W)
