import pytest
import torch

from segedge.errors import InputError
from segedge.models.registry import create_model, list_models


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_segnet_has_the_articles_parameter_count():
    # Matani & Singh, Part 2: 15.27M parameters; exact count from the architecture.
    assert n_params(create_model("segnet")) == 15_274_892


def test_segnet_dsc_has_the_articles_parameter_count():
    # Part 3: 1.75M parameters.
    assert n_params(create_model("segnet-dsc")) == 1_749_671


@pytest.mark.parametrize("name", ["segnet", "segnet-dsc"])
def test_logits_keep_the_input_size_and_are_non_negative(name):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 3, 64, 96)
    assert out.dtype == torch.float32
    assert (out >= 0).all()  # the last layer is Conv-BN-ReLU, as in the article


def test_odd_sizes_unpool_back_to_the_pre_pool_size():
    model = create_model("segnet-dsc").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 45)).shape == (1, 3, 37, 45)


def test_dsc_convs_are_depthwise_then_pointwise_without_bias():
    model = create_model("segnet-dsc")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 40  # 20 separable convolutions
    for depthwise, pointwise in zip(convs[::2], convs[1::2]):
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
        assert pointwise.kernel_size == (1, 1)
        assert depthwise.bias is None and pointwise.bias is None


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(InputError) as info:
        create_model("unet")
    for name in list_models():
        assert name in str(info.value)
