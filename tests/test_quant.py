"""Tests for tbnn.core.quant: the ridge dequantizer (DAT), codes, M:N masks, the matmul shortcut.

Reference: Ye et al., arXiv:2409.09245. Every test compares with an
independent computation (numpy least squares, brute-force loops) or a closed-form fact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbnn.core.quant import (
    fake_quantize,
    nm_mask,
    parse_sparsity,
    quantize,
    quantized_matmul,
    ridge_dequantize,
)

HYP = settings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- reference


def _lstsq_block(x: np.ndarray, q: np.ndarray, lam: float, affine: bool) -> np.ndarray:
    """Fitted values of ``min 1/(2N)||s q + b - x||^2 + lam/2 s^2`` by numpy ``lstsq``.

    Multiplying the objective by ``2N`` gives ``||s q + b - x||^2 + N lam s^2``: the ordinary
    least-squares problem on the system augmented with the row ``sqrt(N lam) [1, 0]``.
    """
    n = x.size
    cols = [q, np.ones(n)] if affine else [q]
    a = np.stack(cols, 1)
    pen = np.zeros((1, a.shape[1]))
    pen[0, 0] = np.sqrt(n * lam)
    a_aug = np.concatenate([a, pen], 0)
    y_aug = np.concatenate([x, [0.0]])
    coef, *_ = np.linalg.lstsq(a_aug, y_aug, rcond=None)
    return a @ coef


def _reference(x: np.ndarray, q: np.ndarray, lam: float, dim: int, affine: bool, block) -> np.ndarray:
    """Blockwise reference: move ``dim`` last, cut each row into blocks, solve each block."""
    xm, qm = np.moveaxis(x, dim, -1), np.moveaxis(q, dim, -1)
    out = np.empty_like(xm)
    k = xm.shape[-1]
    size = k if block is None else block
    for idx in np.ndindex(*xm.shape[:-1]):
        for start in range(0, k, size):
            sl = idx + (slice(start, min(start + size, k)),)
            out[sl] = _lstsq_block(xm[sl], qm[sl], lam, affine)
    return np.moveaxis(out, -1, dim)


@st.composite
def _ridge_case(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    dim = draw(st.integers(-rank, rank - 1))
    block = draw(st.one_of(st.none(), st.integers(1, 9)))
    lam = draw(st.one_of(st.just(0.0), st.floats(1e-4, 10.0)))
    seed = draw(st.integers(0, 2**31 - 1))
    codes = draw(st.sampled_from(["int", "float"]))
    return shape, dim, block, lam, seed, codes


def _data(shape, seed, codes):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * rng.uniform(0.1, 10) + rng.normal()
    if codes == "int":
        q = rng.integers(0, 4, size=shape).astype(np.float64)
    else:
        q = rng.normal(size=shape)
    return x, q


# --------------------------------------------------------------------------- ridge_dequantize


@HYP
@given(_ridge_case(), st.booleans())
def test_ridge_dequantize_equals_direct_lstsq(case, affine):
    shape, dim, block, lam, seed, codes = case
    x, q = _data(shape, seed, codes)
    got = ridge_dequantize(torch.from_numpy(x), torch.from_numpy(q), lam=lam, dim=dim,
                           affine=affine, block=block)
    assert got.dtype == torch.float64 and got.shape == x.shape
    ref = _reference(x, q, lam, dim, affine, block)
    scale = np.abs(x).max() + 1.0
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-8, atol=1e-9 * scale)


def test_ridge_dequantize_closed_form_large_blocks():
    """Non-hypothesis anchor: a 3-D tensor, block 128 along the middle axis (ragged tail)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 300, 2))
    q = rng.integers(0, 16, size=x.shape).astype(np.float64)
    for affine in (True, False):
        got = ridge_dequantize(torch.from_numpy(x), torch.from_numpy(q), lam=0.01, dim=1,
                               affine=affine, block=128)
        np.testing.assert_allclose(got.numpy(), _reference(x, q, 0.01, 1, affine, 128),
                                   rtol=1e-9, atol=1e-12)


def test_ridge_lam_zero_gives_conditional_means_and_lam_inf_gives_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 128, generator=g, dtype=torch.float64)
    q = (torch.rand(4, 128, generator=g, dtype=torch.float64) < 0.3).double()
    out = ridge_dequantize(x, q, lam=0.0)
    out_small = ridge_dequantize(x, q, lam=1e-12)
    for r in range(4):
        for c in (0.0, 1.0):
            sel = q[r] == c
            cond_mean = x[r][sel].mean()
            torch.testing.assert_close(out[r][sel], cond_mean.expand(int(sel.sum())), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(out_small[r][sel], cond_mean.expand(int(sel.sum())), rtol=1e-9, atol=1e-9)
    big = ridge_dequantize(x, q, lam=1e12)
    torch.testing.assert_close(big, x.mean(-1, keepdim=True).expand_as(x), rtol=1e-9, atol=1e-9)
    # linear form: lam -> inf shrinks to 0
    assert ridge_dequantize(x, q, lam=1e12, affine=False).abs().max() < 1e-9


def test_fake_quantize_1bit_lam_zero_gives_lloyd_levels():
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    codes = quantize(x, bits=1, lam=0.0, block=128).codes()
    out = fake_quantize(x, bits=1, lam=0.0, block=128)
    xb, cb, ob = x.reshape(8, 2, 128), codes.reshape(8, 2, 128), out.reshape(8, 2, 128)
    for i in range(8):
        for j in range(2):
            for c in (0.0, 1.0):
                sel = cb[i, j] == c
                assert sel.any()
                torch.testing.assert_close(ob[i, j][sel], xb[i, j][sel].mean().expand(int(sel.sum())))
    inf = fake_quantize(x, bits=1, lam=1e15, block=128)
    torch.testing.assert_close(inf, xb.mean(-1, keepdim=True).expand_as(xb).reshape(8, 256))


def test_constant_codes_give_the_mean_even_at_lam_zero():
    x = torch.randn(3, 40, dtype=torch.float64)
    q = torch.full_like(x, 5.0)
    for affine, expect in ((True, x.mean(-1, keepdim=True).expand_as(x)), (False, None)):
        out = ridge_dequantize(x, q, lam=0.0, affine=affine)
        assert torch.isfinite(out).all()
        if expect is not None:
            torch.testing.assert_close(out, expect)
    zero = ridge_dequantize(x, torch.zeros_like(x), lam=0.0, affine=False)
    assert torch.equal(zero, torch.zeros_like(x))
    # a constant block through fake_quantize, and an all-negative block on the rectifying grid
    const = torch.full((2, 64), 3.25)
    for bits in (1, 2, 4, 1.5):
        out = fake_quantize(const, bits=bits, lam=0.0)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, const)
    # all codes at the top level (rectifying grid, a constant positive block), many of them:
    # the raw code moments round, the variance must still be exactly zero at lam = 0
    from tbnn.core.quant import quantize_reference

    top = torch.full((2, 3000), 3.3, requires_grad=True)
    top_ref = top.detach().clone().requires_grad_(True)
    r = torch.randn(2, 3000)
    out = fake_quantize(top, bits=8, grid="rectify", block=None, lam=0.0)
    torch.testing.assert_close(out, top.detach())
    (out * r).sum().backward()
    (quantize_reference(top_ref, bits=8, grid="rectify", block=None, lam=0.0).dequantize() * r).sum().backward()
    assert torch.isfinite(top.grad).all()
    torch.testing.assert_close(top.grad, top_ref.grad)  # gain exactly 0: the gradient of the mean
    neg = -torch.rand(2, 64) - 0.1
    for target, expect in (("x", neg.mean(-1, keepdim=True)), ("relu", torch.zeros(2, 1))):
        xx = neg.clone().requires_grad_(True)
        out = fake_quantize(xx, bits=2, lam=0.0, grid="rectify", target=target)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, expect.expand_as(neg))
        out.sum().backward()
        assert torch.isfinite(xx.grad).all()


# --------------------------------------------------------------------------- code levels


@pytest.mark.parametrize("method", ["dat", "ste"])
@pytest.mark.parametrize("bits", [1, 1.5, 2, 3, 4, 8])
def test_at_most_2_to_the_k_values_per_block(bits, method):
    block = 1000 if bits == 8 else 128
    k = 2 * block + block // 2 + 3  # two full blocks and a ragged tail
    x = torch.randn(3, k, generator=torch.Generator().manual_seed(2))
    out = fake_quantize(x, bits=bits, method=method, block=block)
    limit = 3 if bits == 1.5 else 2 ** int(bits)
    counts = []
    for r in range(3):
        for start in range(0, k, block):
            vals = out[r, start:start + block].unique().numel()
            counts.append(vals)
            assert vals <= limit, (bits, r, start, vals)
    # the quantizer is not degenerate: most blocks use every level for small k
    if bits <= 3:
        assert max(counts) == limit


def test_code_values_are_integers_in_range():
    x = torch.randn(4, 300)
    for bits in (1, 2, 3, 4, 8):
        c = quantize(x, bits=bits).codes()
        assert torch.equal(c, c.round()) and c.min() >= 0 and c.max() <= 2**bits - 1
    c = quantize(x, bits=1.5).codes()
    assert set(c.unique().tolist()) <= {-1.0, 0.0, 1.0}


# --------------------------------------------------------------------------- lam vs Var(q)


def test_lam_acts_against_code_variance():
    x = torch.rand(16, 128, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g0 = quantize(x, bits=1, lam=0.0).gain
    g1 = quantize(x, bits=1, lam=0.01).gain
    shrink = 1 - (g1 / g0)
    # balanced 1-bit codes: Var(q) ~ 0.25, shrink = lam / (Var + lam) ~ 0.0385
    assert shrink.min() > 0.03 and shrink.max() < 0.05
    assert abs(shrink.mean().item() - 0.01 / 0.26) < 0.004
    codes = quantize(x, bits=1).codes().reshape(16, 1, 128)
    var = codes.var(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(shrink, 0.01 / (var + 0.01))
    # 8-bit codes: Var(q) ~ 256^2 / 12, the shrink is negligible
    g0 = quantize(x, bits=8, lam=0.0).gain
    g1 = quantize(x, bits=8, lam=0.01).gain
    assert (1 - g1 / g0).abs().max() < 1e-5


# --------------------------------------------------------------------------- matmul shortcut


@pytest.mark.parametrize("sparsity", [None, "2:4"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_quantized_matmul_equals_fake_quantized_matmul(bits, sparsity):
    g = torch.Generator().manual_seed(4)
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        x = torch.randn(9, 200, generator=g).to(dtype)
        w = torch.randn(7, 200, generator=g).to(dtype)
        for grid in ("minmax", "rectify"):
            xk = dict(bits=bits, block=64, grid=grid, target="relu" if grid == "rectify" else "x")
            wk = dict(bits=bits, sparsity=sparsity)
            got = quantized_matmul(x, w, xk, wk)
            ref = fake_quantize(x, **xk) @ fake_quantize(w, **wk, block=64).T
            scale = ref.abs().max()
            torch.testing.assert_close(got, ref, rtol=rtol, atol=rtol * scale)


def test_quantized_matmul_differs_from_float_matmul():
    """Sanity: the shortcut is not just ``x @ w.T`` (the comparison above could not fail then)."""
    x, w = torch.randn(5, 64, dtype=torch.float64), torch.randn(3, 64, dtype=torch.float64)
    assert (quantized_matmul(x, w, dict(bits=1), dict(bits=1)) - x @ w.T).abs().max() > 1e-3


# --------------------------------------------------------------------------- M:N masks


@HYP
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 30), st.integers(1, 3), st.integers(0, 10**6))
def test_nm_mask_keeps_m_of_every_n(keep, group, length, rows, seed):
    keep = min(keep, group)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, length, generator=g)
    x[x.abs() < 0.3] = 0.0  # ties must not change the count
    mask = nm_mask(x, keep, group)
    assert mask.dtype == torch.bool and mask.shape == x.shape
    for start in range(0, length, group):
        seg = mask[:, start:start + group]
        assert (seg.sum(-1) == min(keep, seg.shape[-1])).all()
        # the kept ones are the largest in magnitude
        xa = x[:, start:start + group].abs()
        kept_min = torch.where(seg, xa, torch.full_like(xa, float("inf"))).amin(-1)
        drop_max = torch.where(~seg, xa, torch.full_like(xa, -1.0)).amax(-1)
        assert (kept_min >= drop_max).all()


def test_nm_mask_along_other_dim_and_sparse_weights():
    x = torch.randn(10, 3)
    m = nm_mask(x, 2, 4, dim=0)
    assert m[0:4].sum(0).eq(2).all() and m[4:8].sum(0).eq(2).all() and m[8:].sum(0).eq(2).all()
    m = nm_mask(x, 3, 4, dim=0)
    assert m[8:].sum(0).eq(2).all()  # ragged tail of 2 keeps min(3, 2)
    w = torch.randn(6, 64)
    for bits in (1, 2, 1.5):
        wq = fake_quantize(w, bits=bits, sparsity="2:4")
        assert (wq.reshape(6, 16, 4) != 0).sum(-1).le(2).all()


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method", ["dat", "ste", "ste_clip"])
@pytest.mark.parametrize("bits,sparsity", [(1, None), (2, None), (4, None), (1.5, None), (1, "2:4")])
def test_gradients_finite_and_nonzero(method, bits, sparsity):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 200, generator=g, requires_grad=True)
    r = torch.randn(4, 200, generator=g)
    y = fake_quantize(x, bits=bits, method=method, sparsity=sparsity)
    (y * r).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad != 0).float().mean() > 0.5
    assert x.grad.abs().sum() > 0


def test_dat_gradient_is_not_the_straight_through_one():
    """The DAT gradient flows through the statistics: it differs from the STE's."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 128, generator=g)
    r = torch.randn(2, 128, generator=g)
    grads = {}
    for method in ("dat", "ste"):
        xx = x.clone().requires_grad_(True)
        (fake_quantize(xx, bits=1, method=method) * r).sum().backward()
        grads[method] = xx.grad
    assert (grads["dat"] - grads["ste"]).abs().max() > 1e-3


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("block", [None, 3])
def test_ridge_dequantize_gradcheck(affine, block):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 7, generator=g, dtype=torch.float64, requires_grad=True)
    q0 = torch.randn(2, 7, generator=g, dtype=torch.float64, requires_grad=True)
    # q a smooth function of x
    assert torch.autograd.gradcheck(
        lambda t: ridge_dequantize(t, t**2 + t, lam=0.01, affine=affine, block=block), (x,))
    # q independent of x
    assert torch.autograd.gradcheck(
        lambda t, u: ridge_dequantize(t, u, lam=0.01, affine=affine, block=block, dim=0), (x, q0))
    assert torch.autograd.gradgradcheck(
        lambda t, u: ridge_dequantize(t, u, lam=0.5, affine=affine, block=block), (x, q0))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(lam=-0.1), "lam"),
        (dict(lam=float("nan")), "lam"),
        (dict(bits=7), "bits"),
        (dict(bits=0), "bits"),
        (dict(bits=1.7), "bits"),
        (dict(bits=True), "bits"),
        (dict(block=0), "block"),
        (dict(block=-3), "block"),
        (dict(block=2.5), "block"),
        (dict(sparsity="3:2"), "sparsity"),
        (dict(sparsity="a:b"), "sparsity"),
        (dict(sparsity="0:4"), "sparsity"),
        (dict(sparsity=1.5), "sparsity"),
        (dict(method="sgd"), "method"),
        (dict(grid="log"), "grid"),
        (dict(target="y"), "target"),
        (dict(dim=2), "dim"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fake_quantize(torch.randn(3, 8), **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_rejected(bad):
    x = torch.randn(3, 8)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="x"):
        fake_quantize(x)
    with pytest.raises(ValueError, match="x"):
        ridge_dequantize(x, torch.randn(3, 8))
    with pytest.raises(ValueError, match="q"):
        ridge_dequantize(torch.randn(3, 8), x)
    with pytest.raises(ValueError, match="w"):
        quantized_matmul(torch.randn(2, 8), x)
    with pytest.raises(ValueError, match="x"):
        quantized_matmul(x, torch.randn(2, 8))


def test_other_bad_input():
    with pytest.raises(ValueError, match="lam"):
        ridge_dequantize(torch.randn(3), torch.randn(3), lam=-1)
    with pytest.raises(ValueError, match="block"):
        ridge_dequantize(torch.randn(3), torch.randn(3), block=0)
    with pytest.raises(ValueError, match="q"):
        ridge_dequantize(torch.randn(3), torch.randn(4))
    with pytest.raises(ValueError, match="x"):
        fake_quantize(torch.tensor(1.0))
    with pytest.raises(ValueError, match="w"):
        quantized_matmul(torch.randn(2, 8), torch.randn(3, 9))
    for keep, group in ((3, 2), (0, 4), (-1, 4), (2, 0)):
        with pytest.raises(ValueError, match="keep|group"):
            nm_mask(torch.randn(8), keep, group)
    assert parse_sparsity(" 2 : 4 ") == (2, 4) and parse_sparsity(None) is None
    assert parse_sparsity(0.5) == 0.5


def test_empty_axis_is_fine():
    x = torch.randn(3, 0)
    assert fake_quantize(x).shape == (3, 0)


# --------------------------------------------------------------------------- fast path = reference


@HYP
@given(
    st.sampled_from(["minmax", "meanstd", "rectify"]),
    st.sampled_from(["x", "relu"]),
    st.sampled_from(["dat", "ste", "ste_clip"]),
    st.sampled_from([1, 2, 3, 4, 8]),
    st.one_of(st.none(), st.integers(1, 40)),
    st.sampled_from([0.0, 0.01, 3.0]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_fast_affine_path_equals_reference(grid, target, method, bits, block, lam, detach, seed):
    """The one-node fast path (``affine_fast``) agrees with the masked autograd reference."""
    from tbnn.core.quant import quantize_reference

    g = torch.Generator().manual_seed(seed)
    shape, dim = [(3, 37), (2, 5, 9), (50,)][seed % 3], [-1, 1, 0][seed % 3]
    x0 = torch.randn(*shape, generator=g, dtype=torch.float64) * 2 + 0.3
    if seed % 5 == 0:
        x0[..., :4] = 0.7  # ties, and a constant block when block <= 4
    if seed % 7 == 0:
        x0 = -x0.abs()  # all-negative: flat codes on the rectifying grid
    kw = dict(bits=bits, method=method, block=block, lam=lam, dim=dim, grid=grid, target=target,
              detach_stats=detach)
    r = torch.randn(*shape, generator=g, dtype=torch.float64)
    xs = [x0.clone().requires_grad_(True) for _ in range(2)]
    y_fast = fake_quantize(xs[0], **kw)
    y_ref = quantize_reference(xs[1], **kw).dequantize()
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-9, atol=1e-9)
    (y_fast * r).sum().backward()
    (y_ref * r).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-7, atol=1e-7)
    # the (q, gain, offset) outputs, each with its own upstream gradient
    xs = [x0.clone().requires_grad_(True) for _ in range(2)]
    cf, cr = quantize(xs[0], **kw), quantize_reference(xs[1], **kw)
    assert torch.equal(cf.q.detach(), cr.q.detach())
    torch.testing.assert_close(cf.gain, cr.gain, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cf.offset, cr.offset, rtol=1e-9, atol=1e-9)
    rq = torch.randn(cf.q.shape, generator=g, dtype=torch.float64)
    rg = torch.randn(cf.gain.shape, generator=g, dtype=torch.float64)
    ro = torch.randn(cf.gain.shape, generator=g, dtype=torch.float64)
    for c, xx in ((cf, xs[0]), (cr, xs[1])):
        loss = (c.q * rq).sum()
        if c.gain.requires_grad:
            loss = loss + (c.gain * rg).sum() + (c.offset * ro).sum()
        loss.backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-7, atol=1e-7)


def test_rectifying_grid_has_zero_gradient_where_the_neuron_is_silent():
    # the grid map of a rectifying neuron is clip(x / max, 0, 1): its derivative is zero
    # below zero, so with the relu read-out no gradient reaches a silent (x < 0) input
    torch.manual_seed(0)
    x = torch.randn(4, 256, requires_grad=True)
    r = torch.randn(4, 256)
    for bits in (1, 4):
        x.grad = None
        (fake_quantize(x, bits=bits, grid="rectify", target="relu") * r).sum().backward()
        assert torch.all(x.grad[x.detach() < 0] == 0)
        assert torch.count_nonzero(x.grad[x.detach() > 0]) > 0
    from tbnn.core.quant import quantize_reference

    ref = quantize_reference(x, bits=4, grid="rectify", target="relu").dequantize()
    assert torch.allclose(ref, fake_quantize(x, bits=4, grid="rectify", target="relu"), atol=1e-6)


# --------------------------------------------------------------------------- 1-bit codes at the threshold


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_bit_codes_at_the_midpoint_and_its_neighbours(dtype):
    """The fast path's 1-bit codes (one comparison) equal the reference's floor-and-clip
    codes for values exactly at, and one float either side of, the block midpoint."""
    from tbnn.core.quant import quantize_reference

    g = torch.Generator().manual_seed(5)
    rows = []
    for scale in (1.0, 3e-3, 7e5, 1e-30):
        for _ in range(40):
            lo, hi = sorted((torch.randn(2, generator=g, dtype=dtype) * scale).tolist())
            lo_t, hi_t = torch.tensor(lo, dtype=dtype), torch.tensor(hi, dtype=dtype)
            mid = lo_t + (hi_t - lo_t) / 2
            near = [mid, torch.nextafter(mid, hi_t), torch.nextafter(mid, lo_t),
                    torch.nextafter(torch.nextafter(mid, lo_t), lo_t), torch.nextafter(torch.nextafter(mid, hi_t), hi_t)]
            rows.append(torch.stack([lo_t, hi_t, *near, *(torch.rand(1, generator=g, dtype=dtype) * (hi - lo) + lo)]))
    x = torch.stack(rows)  # each row one block holding its min, max and the values near its midpoint
    fast = quantize(x, bits=1, block=None).q.detach()
    ref = quantize_reference(x, bits=1, block=None).q.detach()
    assert torch.equal(fast, ref)
    assert 0 < fast.mean() < 1


# --------------------------------------------------------------------------- torch.compile opt-in


def test_compile_is_opt_in(monkeypatch):
    from tbnn.core.quant import compile_wanted

    monkeypatch.delenv("TBNN_COMPILE", raising=False)
    assert compile_wanted() is False and compile_wanted(True) is True
    for on in ("1", "true", "YES", " on "):
        monkeypatch.setenv("TBNN_COMPILE", on)
        assert compile_wanted() is True and compile_wanted(False) is False
    monkeypatch.setenv("TBNN_COMPILE", "0")
    assert compile_wanted() is False


@pytest.mark.slow
@pytest.mark.parametrize("grid, target, method, bits, block, dtype", [
    ("minmax", "x", "dat", 1, 16, torch.float64),
    ("minmax", "x", "dat", 1, 128, torch.float32),
    ("rectify", "relu", "dat", 4, 16, torch.float64),
    ("meanstd", "x", "ste_clip", 2, None, torch.float64),
    ("minmax", "relu", "dat", 3, 7, torch.float64),
])
def test_compiled_path_equals_reference(grid, target, method, bits, block, dtype):
    """``compile=True`` (torch.compile of the fast path) agrees with the reference: same codes,
    values and gradients to float rounding (compilation takes ~15 s per case)."""
    from tbnn.core.quant import quantize_reference

    g = torch.Generator().manual_seed(bits)
    x0 = torch.randn(6, 300, generator=g, dtype=dtype) * 2 + 0.3
    r = torch.randn(6, 300, generator=g, dtype=dtype)
    kw = dict(bits=bits, method=method, block=block, lam=0.01, grid=grid, target=target)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    xs = [x0.clone().requires_grad_(True) for _ in range(2)]
    y_c = fake_quantize(xs[0], compile=True, **kw)
    y_r = quantize_reference(xs[1], **kw).dequantize()
    torch.testing.assert_close(y_c, y_r, rtol=tol, atol=tol)
    (y_c * r).sum().backward()
    (y_r * r).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=100 * tol, atol=100 * tol)
    from tbnn.core.quant import affine_fast

    q_c, *_ = affine_fast(x0, block, grid, 2 ** bits, 0.01, target, method, fused=False, compile=True)
    q_r = quantize_reference(x0, **kw).codes()
    assert torch.equal(q_c.detach(), q_r)


@pytest.mark.parametrize("bits, lam, grid, target", [(1, 0.01, "minmax", "x"), (4, 0.0, "meanstd", "x"),
                                                     (2, 0.01, "minmax", "relu"), (4, 0.01, "rectify", "relu")])
def test_large_tensor_sliced_path_equals_reference(bits, lam, grid, target):
    """Above a million elements the CPU fast path works a cache-sized slice of rows at a time;
    it agrees with the reference (codes exactly; values and gradients to rounding)."""
    from tbnn.core.quant import quantize_reference

    g = torch.Generator().manual_seed(bits)
    x0 = torch.randn(1300, 1000, generator=g, dtype=torch.float64)  # 1300 x 7 x 128 > 2^20 elements
    r = torch.randn(1300, 1000, generator=g, dtype=torch.float64)
    kw = dict(bits=bits, lam=lam, grid=grid, target=target)
    xs = [x0.clone().requires_grad_(True) for _ in range(2)]
    y_f, y_r = fake_quantize(xs[0], **kw), quantize_reference(xs[1], **kw).dequantize()
    torch.testing.assert_close(y_f, y_r, rtol=1e-9, atol=1e-9)
    (y_f * r).sum().backward()
    (y_r * r).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-7, atol=1e-7)
    cf, cr = quantize(x0, **kw), quantize_reference(x0, **kw)
    assert torch.equal(cf.q.detach(), cr.q.detach())
    torch.testing.assert_close(cf.gain, cr.gain, rtol=1e-9, atol=1e-9)
