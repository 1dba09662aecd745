"""Exact rewrite of max-pooling-with-indices + max-unpooling into standard operators.

Why: TensorRT's ONNX parser rejects MaxPool's second output (Indices) and MaxUnpool
(NVIDIA/TensorRT#3761), and PyTorch's exporters cannot emit ``max_unpool2d`` as MaxUnpool.
SegNet-family decoders need both. This module swaps ``nn.MaxPool2d(return_indices=True)``
and ``nn.MaxUnpool2d`` for drop-in modules built from MaxPool (values only), Slice, Equal,
Where, Range, Reshape and Transpose, which every ONNX runtime and TensorRT parse.

Exactness. For non-overlapping windows (kernel == stride == k, padding 0, dilation 1,
``ceil_mode=False``) PyTorch's CPU and CUDA kernels scan each window in row-major order
and keep the *first* maximum (``if (val > maxval || isnan(val))``, ATen
``MaxPoolKernel.cpp``). :class:`ExactMaxPool2d` reproduces that: the window position is
the first ``q`` whose value equals the window maximum, so ties (the all-zero windows that
ReLU produces everywhere) resolve exactly as PyTorch does and the int64 indices it returns
are PyTorch's flat ``row * W + col`` indices, bit for bit. :class:`ExactMaxUnpool2d` places
each value at its index by *selection* (``where``), never by multiplication with a 0/1
mask, so +0.0 stays +0.0, -0.0 stays -0.0 and inf never turns into NaN; rows and columns
beyond ``k * (H // k)`` (odd feature sizes with ``output_size``) are zero, as PyTorch
leaves them. The tests prove bit-identity with hypothesis over shapes, k, dtypes and
tie-heavy inputs. Not covered: NaN inputs (PyTorch keeps the last NaN of a window; an ONNX
runtime's MaxPool decides its own NaN propagation).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from segedge.errors import ExportError


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def check_rewritable_pool(name: str, pool: nn.MaxPool2d) -> int:
    """Return the window size ``k`` of a pool the rewrite expresses exactly.

    Raises:
        ExportError: overlapping windows, padding, dilation, ceil_mode or a non-square
            kernel; the message names the layer.
    """
    kernel, stride = _pair(pool.kernel_size), _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    problems = []
    if kernel[0] != kernel[1]:
        problems.append(f"non-square kernel {kernel}")
    if stride != kernel:
        problems.append(f"stride {stride} != kernel {kernel} (overlapping or gapped windows)")
    if _pair(pool.padding) != (0, 0):
        problems.append(f"padding {pool.padding}")
    if _pair(pool.dilation) != (1, 1):
        problems.append(f"dilation {pool.dilation}")
    if pool.ceil_mode:
        problems.append("ceil_mode=True")
    if problems:
        raise ExportError(
            f"layer {name!r} ({pool}) cannot be rewritten exactly: {', '.join(problems)}; "
            "the max-unpool rewrite needs kernel == stride, no padding, dilation 1 and ceil_mode=False"
        )
    return kernel[0]


def check_rewritable_unpool(name: str, unpool: nn.MaxUnpool2d) -> int:
    """Return the window size ``k`` of an unpool the rewrite expresses exactly.

    Raises:
        ExportError: stride != kernel, padding or a non-square kernel; names the layer.
    """
    kernel, stride = _pair(unpool.kernel_size), _pair(unpool.stride)
    if kernel[0] != kernel[1] or stride != kernel or _pair(unpool.padding) != (0, 0):
        raise ExportError(
            f"layer {name!r} ({unpool}) cannot be rewritten exactly: the max-unpool rewrite needs a square "
            "kernel equal to the stride and no padding"
        )
    return kernel[0]


class ExactMaxPool2d(nn.Module):
    """``nn.MaxPool2d(k, return_indices=True)`` from standard operators.

    Shapes: ``(N, C, H, W)`` -> values ``(N, C, H // k, W // k)`` (input dtype) and indices
    of the same shape (int64, flat ``row * W + col`` in the ``H x W`` plane, first maximum
    of each window), identical to PyTorch's.
    """

    def __init__(self, kernel_size: int):
        super().__init__()
        self.k = kernel_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.k
        height, width = x.shape[-2], x.shape[-1]
        h, w = height // k, width // k
        values = F.max_pool2d(x, k)  # (N, C, h, w); MaxPool without Indices parses everywhere
        # The k*k window positions as strided slices, q = (di, dj) in row-major order.
        slices = [x[:, :, di : h * k : k, dj : w * k : k] for di in range(k) for dj in range(k)]  # (N, C, h, w)
        # The maximum the slices are compared with is computed from the slices themselves, not
        # taken from `values`: INT8 calibration puts a Q/DQ pair on the pooled tensor (it
        # feeds the next convolution), which would re-round it and break the equality.
        window_max = slices[0]
        for window_value in slices[1:]:
            window_max = torch.maximum(window_max, window_value)
        # Offset of position q from the window's top-left corner in the flat plane is
        # di * W + dj. Walk positions backwards so the *first* maximum wins, as in PyTorch.
        last = k * k - 1
        offset = torch.full_like(values, (last // k) * width + last % k, dtype=torch.int64)
        for q in range(last - 1, -1, -1):
            offset = torch.where(slices[q] == window_max, (q // k) * width + q % k, offset)
        rows = torch.arange(h, device=x.device, dtype=torch.int64) * (k * width)  # (h,)
        cols = torch.arange(w, device=x.device, dtype=torch.int64) * k  # (w,)
        return values, offset + rows[:, None] + cols[None, :]


class ExactMaxUnpool2d(nn.Module):
    """``nn.MaxUnpool2d(k)`` from standard operators, for indices of a matching pool.

    Requires the indices to come from a max-pool with the same ``k`` over an input of
    ``output_size`` (each index lies in its own window), which is how SegNet-family
    decoders use it.

    Shapes: values ``(N, C, h, w)`` + int64 indices ``(N, C, h, w)`` + ``output_size``
    ending in ``(H, W)`` with ``H // k == h`` and ``W // k == w`` -> ``(N, C, H, W)``,
    zeros where no index points (``H, W`` default to ``k * h, k * w``).
    """

    def __init__(self, kernel_size: int):
        super().__init__()
        self.k = kernel_size

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size=None) -> torch.Tensor:
        k = self.k
        n, c, h, w = x.shape
        height, width = (output_size[-2], output_size[-1]) if output_size is not None else (h * k, w * k)
        rows = torch.arange(h, device=x.device, dtype=torch.int64) * (k * width)
        cols = torch.arange(w, device=x.device, dtype=torch.int64) * k
        local = indices - (rows[:, None] + cols[None, :])  # di * W + dj of each window's maximum
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        # One (N, C, h, w) plane per window position, selected (not multiplied) so signed
        # zeros and infinities pass through untouched.
        planes = [torch.where(local == (q // k) * width + q % k, x, zero) for q in range(k * k)]
        stacked = torch.stack(planes, dim=2).reshape(n, c * k * k, h, w)  # (N, C*k*k, h, w)
        out = F.pixel_shuffle(stacked, k)  # (N, C, h*k, w*k): plane di*k+dj -> (i*k+di, j*k+dj)
        pad_w, pad_h = width - w * k, height - h * k
        if isinstance(pad_w, int) and isinstance(pad_h, int) and pad_w == 0 and pad_h == 0:
            return out  # static even size: no Pad node in the exported graph
        return F.pad(out, (0, pad_w, 0, pad_h))  # (N, C, H, W): zero rows/cols PyTorch leaves unset


def make_exportable(model: nn.Module) -> nn.Module:
    """Return a deep copy of ``model`` with every index-keeping max-pool and every
    max-unpool swapped for :class:`ExactMaxPool2d` / :class:`ExactMaxUnpool2d`.

    Plain ``nn.MaxPool2d`` without ``return_indices`` is left alone (TensorRT parses it).
    The original model is not modified.

    Raises:
        ExportError: a layer the rewrite cannot express exactly (named in the message).
    """
    exportable = copy.deepcopy(model)
    swaps: list[tuple[str, nn.Module]] = []
    for name, module in exportable.named_modules():
        if isinstance(module, nn.MaxPool2d) and module.return_indices:
            swaps.append((name, ExactMaxPool2d(check_rewritable_pool(name, module))))
        elif isinstance(module, nn.MaxUnpool2d):
            swaps.append((name, ExactMaxUnpool2d(check_rewritable_unpool(name, module))))
    for name, replacement in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = exportable.get_submodule(parent_name) if parent_name else exportable
        setattr(parent, child, replacement)
    return exportable


def tie_heavy_probe(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A probe input full of ties: values drawn from {-1, -0.0, 0, 1} and a few distinct
    values, so nearly every pooling window has several equal maxima. Used to check that a
    rewritten model is bit-identical to the original before it is exported."""
    generator = torch.Generator().manual_seed(seed)
    choices = torch.tensor([-1.0, -0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 2.0], dtype=dtype)
    return choices[torch.randint(len(choices), shape, generator=generator)]
