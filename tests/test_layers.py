"""Tests for tbnn.nn.layers: quantized-weight layers on spike trains, three execution modes.

Because the DAT read-out is affine (Ye et al., arXiv:2409.09245), a layer can run fused,
time-folded or step by step; all must give the same numbers, forward and backward.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tbnn.core.coding import encode
from tbnn.nn.layers import EVALUATIONS, FakeQuantize, TBConv1d, TBConv2d, TBLinear
from tbnn.nn.neurons import TemporalBinary
from tbnn.core.quant import fake_quantize

WEIGHT_CASES = [(1, None), (1.5, None), (2, None), (4, None), (1, "2:4"), (2, "2:4")]


def _make(kind, wbits, sparsity, dtype, seed=0):
    torch.manual_seed(seed)
    if kind == "linear":
        layer = TBLinear(40, 12, weight_bits=wbits, sparsity=sparsity)
        x = torch.randn(5, 40)
    elif kind == "conv1d":
        layer = TBConv1d(3, 8, 5, stride=2, padding=2, weight_bits=wbits, sparsity=sparsity)
        x = torch.randn(5, 3, 17)
    else:
        layer = TBConv2d(2, 8, 3, stride=1, padding=1, weight_bits=wbits, sparsity=sparsity)
        x = torch.randn(5, 2, 6, 7)
    return layer.to(dtype), x.to(dtype)


def _run(layer, x, mode, r, scheme="binary", T=4, neuron_grid="rectify"):
    layer.zero_grad()
    xx = x.clone().requires_grad_(True)
    code = TemporalBinary(T, scheme=scheme, grid=neuron_grid, block=32)(xx)
    y = layer(code, evaluation=mode)
    (y * r).sum().backward()
    grads = {"x": xx.grad.clone(), "weight": layer.weight.grad.clone()}
    if layer.bias is not None:
        grads["bias"] = layer.bias.grad.clone()
    return y.detach(), grads


@pytest.mark.parametrize("wbits,sparsity", WEIGHT_CASES)
@pytest.mark.parametrize("kind", ["linear", "conv1d", "conv2d"])
def test_modes_agree_forward_and_backward(kind, wbits, sparsity):
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        layer, x = _make(kind, wbits, sparsity, dtype)
        with torch.no_grad():
            r = torch.randn_like(layer(TemporalBinary(4)(x)))
        ref_y, ref_g = _run(layer, x, "fused", r)
        assert ref_g["x"].abs().sum() > 0 and ref_g["weight"].abs().sum() > 0
        for mode in ("folded", "step"):
            y, g = _run(layer, x, mode, r)
            scale = ref_y.abs().max()
            torch.testing.assert_close(y, ref_y, rtol=tol, atol=tol * scale)
            for k in ref_g:
                gs = ref_g[k].abs().max() + 1e-30
                torch.testing.assert_close(g[k], ref_g[k], rtol=tol, atol=tol * gs, msg=f"{mode} {k}")


@pytest.mark.parametrize("scheme", ["sigma_delta", "rate", "thermometer", "latency"])
def test_modes_agree_for_other_codes(scheme):
    layer, x = _make("linear", 1, None, torch.float64)
    r = torch.randn(5, 12, dtype=torch.float64)
    torch.manual_seed(1)
    ref_y, ref_g = _run(layer, x, "fused", r, scheme=scheme, T=6, neuron_grid="minmax")
    for mode in ("folded", "step"):
        torch.manual_seed(1)  # the rate code draws the same spikes
        y, g = _run(layer, x, mode, r, scheme=scheme, T=6, neuron_grid="minmax")
        torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-10)
        for k in ref_g:
            torch.testing.assert_close(g[k], ref_g[k], rtol=1e-10, atol=1e-10)


def test_fused_mode_is_the_layer_on_the_decoded_input():
    layer, x = _make("conv2d", 1, None, torch.float64)
    code = TemporalBinary(4, block=32)(x)
    y = layer(code)
    ref = F.conv2d(code.unflatten(code.decode()), layer.quantized_weight(), layer.bias, padding=1)
    torch.testing.assert_close(y, ref)
    # step mode literally sums per-step contributions of 0/1 spikes
    s = code.spikes.to(x.dtype)
    assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_weights_are_quantized_per_output_channel():
    torch.manual_seed(0)
    for wbits, levels in ((1, 2), (1.5, 3), (2, 4), (4, 16)):
        layer = TBLinear(64, 6, weight_bits=wbits)
        wq = layer.quantized_weight()
        for row in wq:
            assert row.unique().numel() <= levels
        torch.testing.assert_close(wq, fake_quantize(layer.weight, bits=wbits, block=None, grid="meanstd"))
    conv = TBConv2d(3, 4, 3, weight_bits=1)
    assert all(c.unique().numel() <= 2 for c in conv.quantized_weight())
    flt = TBLinear(8, 3, weight_bits=None)
    assert flt.quantized_weight() is flt.weight
    sparse = TBLinear(64, 6, weight_bits=1, sparsity="2:4")
    assert (sparse.quantized_weight().reshape(6, 16, 4) != 0).sum(-1).le(2).all()
    # an analog input runs the plain op on the quantized weight
    x = torch.randn(3, 64)
    torch.testing.assert_close(sparse(x), F.linear(x, sparse.quantized_weight(), sparse.bias))


def _brute_fanout(in_shape, out_channels, kernel, stride, padding):
    _, *spatial = in_shape
    nd = len(spatial)
    counts = torch.zeros(in_shape, dtype=torch.int64)
    outs = [(s + 2 * padding - kernel) // stride + 1 for s in spatial]
    for opos in itertools.product(*[range(o) for o in outs]):
        for koff in itertools.product(range(kernel), repeat=nd):
            ipos = [opos[i] * stride - padding + koff[i] for i in range(nd)]
            if all(0 <= ipos[i] < spatial[i] for i in range(nd)):
                counts[(slice(None), *ipos)] += out_channels
    return counts


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), (5, 2, 2), (4, 3, 0), (2, 2, 0), (3, 3, 2)])
def test_conv_fanout_equals_brute_force(kernel, stride, padding):
    conv1 = TBConv1d(2, 5, kernel, stride=stride, padding=padding)
    for length in (7, 8, 11):
        if length + 2 * padding < kernel:
            continue
        got = conv1.weight_positions((2, length))
        assert torch.equal(got.round().long(), _brute_fanout((2, length), 5, kernel, stride, padding))
    conv2 = TBConv2d(3, 4, kernel, stride=stride, padding=padding)
    for hw in ((7, 9), (8, 8)):
        got = conv2.weight_positions((3, *hw))
        assert got.shape == (3, *hw)
        assert torch.equal(got.round().long(), _brute_fanout((3, *hw), 4, kernel, stride, padding))


def test_fake_quantize_module_and_bad_layer_arguments():
    fq = FakeQuantize(bits=2, block=16)
    x = torch.randn(4, 40)
    assert torch.equal(fq(x), fake_quantize(x, bits=2, block=16))
    assert "bits=2" in repr(fq)
    with pytest.raises(ValueError, match="bits"):
        FakeQuantize(bits=5)
    with pytest.raises(ValueError, match="sparsity"):
        FakeQuantize(sparsity="5:4")
    for kwargs, name in ((dict(weight_bits=7), "weight_bits"), (dict(method="x"), "method"),
                         (dict(weight_grid="x"), "weight_grid"), (dict(evaluation="x"), "evaluation must be one of"),
                         (dict(lam=-1), "lam"), (dict(sparsity="1:0"), "sparsity")):
        with pytest.raises(ValueError, match=name):
            TBLinear(8, 4, **kwargs)
        with pytest.raises(ValueError, match=name):
            TBConv2d(1, 2, 3, **kwargs)
    layer = TBLinear(8, 4)
    with pytest.raises(ValueError, match="evaluation must be one of"):
        layer(encode(torch.randn(2, 8), 2), evaluation="sideways")
    assert set(EVALUATIONS) == {"fused", "folded", "step", "exact"}


def test_exact_integer_mode_matches_float_modes_and_is_used_in_eval():
    from tbnn.nn.neurons import TemporalBinary

    torch.manual_seed(5)
    for layer, x in ((TBLinear(300, 9, weight_bits=2), torch.randn(6, 300)),
                     (TBConv2d(3, 5, 3, stride=2, padding=1, weight_bits=1.5, sparsity="2:4"),
                      torch.randn(4, 3, 9, 9))):
        code = TemporalBinary(4, block=64)(x)
        with torch.no_grad():
            fused = layer(code, evaluation="fused")
            exact = layer(code, evaluation="exact")
            assert torch.allclose(exact, fused, rtol=1e-4, atol=1e-4)
            layer.eval()
            assert torch.equal(layer(code), exact)  # eval mode uses the integer-code path
