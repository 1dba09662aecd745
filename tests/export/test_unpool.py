"""The max-unpool rewrite is bit-identical to PyTorch's native MaxPool2d + MaxUnpool2d.

Property-based: hypothesis draws shapes (odd sizes included), window sizes, dtypes and
tie-heavy values (repeated values, +0.0 / -0.0, +-inf), and compares bit patterns, not
values, so a -0.0 where PyTorch has +0.0 fails.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segedge.errors import ExportError
from segedge.onnx.unpool import ExactMaxPool2d, ExactMaxUnpool2d, make_exportable, tie_heavy_probe
from segedge.models.registry import create_model

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TIE_VALUES = [0.0, -0.0, 0.0, 1.0, 1.0, -1.0, 0.5, float("inf"), float("-inf"), 3.0]


def bits(t: torch.Tensor) -> torch.Tensor:
    """Bit pattern of a float tensor (so -0.0 != +0.0)."""
    view = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    return t.contiguous().view(view[t.dtype])


@st.composite
def pooled_inputs(draw):
    k = draw(st.integers(2, 4))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(k, 4 * k + 3)), draw(st.integers(k, 4 * k + 3))
    dtype = draw(st.sampled_from(DTYPES))
    mostly_ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if mostly_ties:
        table = torch.tensor(TIE_VALUES, dtype=torch.float64)
        x = table[torch.randint(len(TIE_VALUES), (n, c, h, w), generator=g)]
    else:
        x = torch.randn((n, c, h, w), generator=g, dtype=torch.float64).round(decimals=1)  # still some ties
    return k, x.to(dtype)


@settings(max_examples=300, deadline=None)
@given(pooled_inputs())
def test_pool_values_and_indices_are_bit_identical(case):
    k, x = case
    values, indices = nn.MaxPool2d(k, return_indices=True)(x)
    got_values, got_indices = ExactMaxPool2d(k)(x)
    assert got_indices.dtype == torch.int64
    assert torch.equal(got_indices, indices)
    assert torch.equal(bits(got_values), bits(values))


@settings(max_examples=300, deadline=None)
@given(pooled_inputs(), st.integers(0, 2**31 - 1))
def test_unpool_is_bit_identical_including_odd_output_sizes(case, seed):
    k, x = case
    _, indices = nn.MaxPool2d(k, return_indices=True)(x)
    g = torch.Generator().manual_seed(seed)
    table = torch.tensor(TIE_VALUES, dtype=torch.float64)
    y = table[torch.randint(len(TIE_VALUES), indices.shape, generator=g)].to(x.dtype)  # signed zeros, infs
    expected = nn.MaxUnpool2d(k)(y, indices, output_size=x.shape)
    got = ExactMaxUnpool2d(k)(y, indices, output_size=x.shape)
    assert got.shape == expected.shape == x.shape
    assert torch.equal(bits(got), bits(expected))


@pytest.mark.parametrize("name", ["segnet", "segnet-dsc"])
@pytest.mark.parametrize("size", [(64, 64), (40, 56), (37, 45)])
def test_rewritten_model_is_bit_identical_to_the_original(name, size):
    torch.manual_seed(0)
    model = create_model(name).eval()
    # Untrained BN statistics make everything tiny; perturb them so ReLUs see real ties and values.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    rewritten = make_exportable(model).eval()
    assert not any(isinstance(m, (nn.MaxUnpool2d,)) for m in rewritten.modules())
    x = torch.cat([tie_heavy_probe((1, 3, *size), seed=3).clamp(0, 1), torch.rand(1, 3, *size)])
    with torch.no_grad():
        assert torch.equal(bits(rewritten(x)), bits(model(x)))
    # the original model is untouched
    assert sum(isinstance(m, nn.MaxUnpool2d) for m in model.modules()) == 4


@pytest.mark.parametrize(
    "pool, reason",
    [
        (nn.MaxPool2d(3, stride=2, return_indices=True), "stride"),
        (nn.MaxPool2d(2, padding=1, return_indices=True), "padding"),
        (nn.MaxPool2d(2, ceil_mode=True, return_indices=True), "ceil_mode"),
        (nn.MaxPool2d(2, dilation=2, return_indices=True), "dilation"),
    ],
)
def test_inexpressible_pools_fail_with_the_layer_name(pool, reason):
    model = nn.Sequential(nn.Conv2d(3, 3, 3), pool)
    with pytest.raises(ExportError) as info:
        make_exportable(model)
    message = str(info.value)
    assert "'1'" in message and reason in message and "\n" not in message


def test_pools_without_indices_are_left_alone():
    model = nn.Sequential(nn.MaxPool2d(3, stride=2))
    assert isinstance(make_exportable(model)[0], nn.MaxPool2d)
