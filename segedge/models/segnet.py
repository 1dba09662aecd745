"""SegNet and SegNet-DSC as in Matani & Singh, "Efficient Image Segmentation Using PyTorch".

Part 2 (2023) gives the SegNet trained on Oxford-IIIT Pet trimaps at 128x128 (15,274,892
parameters, 88.28% validation pixel accuracy); Part 3 replaces every convolution with a
depthwise-separable one (1,749,671 parameters, 86.96%). Both follow Badrinarayanan et al.,
"SegNet" (TPAMI 2017): the decoder upsamples with the encoder's max-pooling indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from segedge.models.blocks import DownConv, UpConv


@dataclass(frozen=True)
class SegNetConfig:
    """Architecture of a SegNet-family model."""

    in_channels: int = 3  # RGB input, raw [0, 1] (an input BatchNorm does the normalisation)
    num_classes: int = 3  # 0 pet, 1 background, 2 border (Oxford-IIIT Pet trimap order)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # encoder stage widths
    encoder_depths: tuple[int, ...] = (2, 2, 3, 3)  # Conv-BN-ReLU layers per encoder stage
    kernel_size: int = 3  # spatial kernel of every convolution
    separable: bool = False  # depthwise-separable convolutions (SegNet-DSC, Part 3)

    @property
    def stages(self) -> int:
        """Number of pool/unpool stages; input sides must be multiples of ``2 ** stages``
        for the output to keep the input size without zero rows."""
        return len(self.widths)


class SegNet(nn.Module):
    """SegNet with max-unpooling decoder (article layout).

    Encoder stage ``i`` has ``encoder_depths[i]`` Conv-BN-ReLU layers and ends in a 2x2
    max-pool that keeps indices; the decoder mirrors it (depths reversed), each stage
    unpooling to the matching pre-pool size before its convolutions. The last decoder
    layer is Conv(64 -> num_classes)-BN-ReLU: there is no separate classifier, so the
    logits are non-negative, exactly as in the article.

    Shapes: input ``(N, 3, H, W)`` float32 RGB in [0, 1]; output logits
    ``(N, num_classes, H, W)`` float32.
    """

    def __init__(self, config: SegNetConfig = SegNetConfig()):
        super().__init__()
        self.config = config
        c, k, sep = config, config.kernel_size, config.separable
        self.bn_input = nn.BatchNorm2d(c.in_channels)
        ins = (c.in_channels,) + c.widths[:-1]
        # Attribute names dc1..dc4 / uc4..uc1 as in the article, so its state_dicts load.
        for i, (cin, cout, depth) in enumerate(zip(ins, c.widths, c.encoder_depths), start=1):
            self.add_module(f"dc{i}", DownConv(cin, cout, depth, k, sep))
        outs = (c.num_classes,) + c.widths[:-1]
        for i in range(c.stages, 0, -1):
            self.add_module(f"uc{i}", UpConv(c.widths[i - 1], outs[i - 1], c.encoder_depths[i - 1], k, sep))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.bn_input(batch)  # (N, 3, H, W)
        skips = []
        for i in range(1, self.config.stages + 1):
            x, indices, size = getattr(self, f"dc{i}")(x)  # (N, C_i, H/2^i, W/2^i)
            skips.append((indices, size))
        for i in range(self.config.stages, 0, -1):
            indices, size = skips[i - 1]
            x = getattr(self, f"uc{i}")(x, indices, size)  # (N, C_{i-1}, H/2^(i-1), W/2^(i-1))
        return x  # (N, num_classes, H, W)
