"""SegNet-Lite0: the EfficientNet-Lite0 encoder against the reference implementation of its
weights, the ImageNet weight loader's checks, and the decoder's two upsampling forms."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from segedge.errors import CheckpointError
from segedge.models.efficientnet_lite import (
    FEATURE_CHANNELS,
    EfficientNetLite0Encoder,
    imagenet_weights_path,
    load_imagenet_weights,
)
from segedge.models.registry import create_model
from segedge.models.segnet_lite import SegNetLite, SegNetLiteConfig


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def weights():
    try:
        return imagenet_weights_path()
    except CheckpointError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def encoder(weights):
    model = EfficientNetLite0Encoder()
    load_imagenet_weights(model, weights)
    return model.eval()


def test_encoder_matches_the_reference_implementation_tensor_for_tensor(encoder, weights):
    """Every feature map equals lukemelas/workingcoder's EfficientNet-Lite (the code those
    weights were converted for) bit for bit: same names mapped, same SAME padding."""
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_module.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = encoder(x)
        r = reference._swish(reference._bn0(reference._conv_stem(x)))
        outputs = []
        for block in reference._blocks:
            r = block(r)
            outputs.append(r)
    last_of_resolution = [0, 2, 4, 10, 15]  # flat block index of the last block at strides 2, 4, 8, 16, 32
    for feature, index, channels in zip(ours, last_of_resolution, FEATURE_CHANNELS):
        assert feature.shape[1] == channels
        assert torch.equal(feature, outputs[index])


def test_imagenet_weights_classify_a_cat_photo_as_a_cat(weights):
    """The loaded weights and the mean = std = 0.5 preprocessing are the ones TensorFlow
    trained: scikit-image's `chelsea` (a tabby cat) lands in ImageNet's domestic-cat classes."""
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    import cv2
    from skimage import data

    reference = reference_module.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    image = cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = torch.from_numpy((image.transpose(2, 0, 1) - 0.5) / 0.5)[None]
    with torch.no_grad():
        top = int(reference(x).argmax())
    assert 281 <= top <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_an_altered_weights_file_is_refused(weights, tmp_path):
    altered = tmp_path / weights.name
    shutil.copyfile(weights, altered)
    with open(altered, "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_imagenet_weights(EfficientNetLite0Encoder(), altered)


def test_a_missing_weights_file_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_imagenet_weights(EfficientNetLite0Encoder(), tmp_path / "none.pth")


def test_stride_two_layers_pad_as_tensorflow_same():
    """SAME padding of a stride-2 layer on an even side is k - 2 in total, the larger half
    after: a symmetric PyTorch padding would sample other pixels."""
    encoder = EfficientNetLite0Encoder()
    pads = {name: module.padding for name, module in encoder.named_modules() if isinstance(module, torch.nn.ZeroPad2d)}
    assert pads["stem.pad"] == (0, 1, 0, 1)  # 3x3
    assert pads["stages.2.0.depthwise.pad"] == (1, 2, 1, 2)  # 5x5
    assert len(pads) == 5  # the stem and the first block of stages 1, 2, 3, 5


@pytest.mark.parametrize("name, upsample", [("segnet-lite0", "unpool"), ("segnet-lite0-bilinear", "bilinear")])
def test_logits_keep_an_aspect_preserving_input_size(name, upsample):
    model = create_model(name).eval()
    assert model.config.upsample == upsample
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 160))
    assert out.shape == (2, 3, 64, 160) and out.dtype == torch.float32
    assert n_params(model) == 3_035_971  # the two decoders differ only in how they upsample


def test_unpool_decoder_places_values_at_the_encoders_peaks():
    """The unpool form writes each coarse value at the position of its 2x2 window's maximum in
    the encoder's skip feature, and zero elsewhere; the bilinear form fills every position."""
    stage_unpool = SegNetLite(SegNetLiteConfig()).decoder[3].eval()
    skip = torch.rand(1, 16, 8, 8, generator=torch.Generator().manual_seed(3))
    coarse = torch.rand(1, 48, 4, 4)  # stage 3 reads the 48 channels of the stride-4 stage
    projected = stage_unpool.project(coarse)
    _, indices = torch.nn.functional.max_pool2d(skip, 2, return_indices=True)
    expected = torch.nn.functional.max_unpool2d(projected, indices, 2, output_size=skip.shape[-2:])
    captured = {}
    stage_unpool.fuse.register_forward_hook(lambda module, inputs, output: captured.setdefault("x", inputs[0]))
    with torch.no_grad():
        stage_unpool(coarse, skip)
    unpooled = captured["x"][:, :16]
    assert torch.equal(unpooled, expected)
    window_nonzero = (unpooled != 0).reshape(1, 16, 4, 2, 4, 2).sum(dim=(3, 5))
    assert int(window_nonzero.max()) <= 1  # at most one value per 2x2 window
