"""SegNet-Lite0: an ImageNet-pretrained EfficientNet-Lite0 encoder with a SegNet decoder.

The encoder (:mod:`segedge.models.efficientnet_lite`) downsamples with strided depthwise
convolutions, so it has no max-pooling indices of its own. The decoder takes them the way
IndexNet does (Lu et al., "Indices Matter: Learning to Index for Deep Image Matting", ICCV
2019, which derives SegNet's unpooling indices from feature maps): at each stride ``s`` of
16, 8, 4 and 2, a 2x2 max-pool of the encoder's feature map keeps only its indices, and the
decoder's coarser features are max-unpooled with them (Badrinarayanan et al., "SegNet",
TPAMI 2017), so every upsampling places values where the encoder's strongest responses were.
The unpooled map is concatenated with the encoder's features at that stride (the U-Net skip,
Ronneberger et al., MICCAI 2015) and fused by a depthwise-separable block; a 1x1 classifier at
stride 2 is upsampled bilinearly to the input size. ``upsample="bilinear"`` replaces each
unpool by bilinear upsampling (the ablation the model card reports).

Every ``nn.MaxPool2d(return_indices=True)`` / ``nn.MaxUnpool2d`` pair is one segedge's exact
unpool rewrite (:mod:`segedge.onnx.unpool`, :mod:`segedge.onnx.rewrite`) turns into
standard operators for TensorRT or into ONNX ``MaxUnpool`` for ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segedge.contract import Word
from segedge.models.efficientnet_lite import FEATURE_CHANNELS, EfficientNetLite0Encoder, load_imagenet_weights

class DecoderUpsample(Word):
    """How a SegNet-Lite decoder stage doubles the resolution."""

    UNPOOL = "unpool"  # max-unpooling with indices of the encoder's features (SegNet / IndexNet)
    BILINEAR = "bilinear"  # bilinear interpolation (the ablation)


@dataclass(frozen=True)
class SegNetLiteConfig:
    """Architecture of a SegNet-Lite0 model."""

    num_classes: int = 3  # 0 pet, 1 background, 2 border (Oxford-IIIT Pet trimap order)
    decoder_widths: tuple[int, int, int, int] = (96, 64, 48, 32)  # decoder channels at strides 16, 8, 4, 2
    upsample: str = DecoderUpsample.UNPOOL.value  # unpool | bilinear
    stages: int = 5  # the encoder halves the resolution 5 times: input sides must be multiples of 2 ** 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "upsample", DecoderUpsample(self.upsample).value)


class SeparableBlock(nn.Sequential):
    """3x3 depthwise - BN - ReLU6 - 1x1 pointwise - BN - ReLU6 (MobileNet, Howard et al. 2017).

    Shapes: ``(N, cin, H, W)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(),
        )


class DecoderStage(nn.Module):
    """Double the resolution of the decoder's features and fuse the encoder's skip.

    ``unpool``: project the coarse features to the skip's channels (1x1 - BN - ReLU6), take
    the indices of a 2x2 max-pool of the skip, max-unpool with them; ``bilinear``: project
    the same way and upsample bilinearly. Then concatenate with the skip and fuse with a
    :class:`SeparableBlock`.

    Shapes: coarse ``(N, cin, h, w)`` + skip ``(N, cskip, 2h, 2w)`` -> ``(N, cout, 2h, 2w)``.
    """

    def __init__(self, cin: int, cskip: int, cout: int, upsample: str):
        super().__init__()
        self.upsample = DecoderUpsample(upsample)
        self.project = nn.Sequential(nn.Conv2d(cin, cskip, 1, bias=False), nn.BatchNorm2d(cskip), nn.ReLU6())
        if self.upsample is DecoderUpsample.UNPOOL:
            self.index_pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)
        self.fuse = SeparableBlock(2 * cskip, cout)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.project(coarse)  # (N, cskip, h, w)
        if self.upsample is DecoderUpsample.UNPOOL:
            _, indices = self.index_pool(skip)  # (N, cskip, h, w) int64: where each 2x2 window of the skip peaks
            x = self.unpool(x, indices, output_size=skip.shape)  # (N, cskip, 2h, 2w), zero off the peaks
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))  # (N, cout, 2h, 2w)


class SegNetLite(nn.Module):
    """EfficientNet-Lite0 encoder + SegNet (index-unpooling) decoder.

    Shapes: input ``(N, 3, H, W)`` float32, pixels scaled to [-1, 1] (the contract's mean =
    std = 0.5, :data:`segedge.models.registry.LITE_PREPROCESS`), ``H`` and ``W`` multiples of
    32; output logits ``(N, num_classes, H, W)`` float32.
    """

    def __init__(self, config: SegNetLiteConfig = SegNetLiteConfig()):
        super().__init__()
        self.config = config
        self.encoder = EfficientNetLite0Encoder()
        skips = FEATURE_CHANNELS[:-1][::-1]  # (112, 40, 24, 16) at strides 16, 8, 4, 2
        ins = (FEATURE_CHANNELS[-1],) + config.decoder_widths[:-1]
        self.decoder = nn.ModuleList(
            DecoderStage(cin, cskip, cout, config.upsample) for cin, cskip, cout in zip(ins, skips, config.decoder_widths)
        )
        self.classifier = nn.Conv2d(config.decoder_widths[-1], config.num_classes, 1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        features = self.encoder(batch)  # strides 2, 4, 8, 16, 32
        x = features[-1]  # (N, 320, H/32, W/32)
        for stage, skip in zip(self.decoder, features[-2::-1]):
            x = stage(x, skip)  # (N, width, H/16 .. H/2, ...)
        logits = self.classifier(x)  # (N, num_classes, H/2, W/2)
        return F.interpolate(logits, size=batch.shape[-2:], mode="bilinear", align_corners=False)  # (N, num_classes, H, W)

    def pretrained_modules(self) -> list[nn.Module]:
        """The modules :meth:`load_imagenet_encoder` fills (fine-tuned at a lower learning rate)."""
        return [self.encoder]

    def load_imagenet_encoder(self, path: str | None = None) -> None:
        """Fill the encoder with TensorFlow's ImageNet weights (see
        :func:`segedge.models.efficientnet_lite.load_imagenet_weights`, which raises
        :class:`~segedge.errors.CheckpointError` when they are missing or altered)."""
        load_imagenet_weights(self.encoder, path)
