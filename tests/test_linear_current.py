"""The linear layer's current in one compiled call (tbnn.kernels.current) against torch and the dense engine."""

import dataclasses

import pytest
import torch

import tbnn
from tbnn.engine import integer as engine
from tbnn.kernels import current, packed

HAS_KERNEL = packed.kernel() is not None
PATHS = list(range(packed.kernel().tb_best_path() + 1)) if HAS_KERNEL else []
pytestmark = pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")


def _problem(k, o, block, m, gen, bias=True):
    """Packed spikes (T = 4), ternary weights, float32 gains of both signs and offsets, the rest's operands."""
    pw = packed.pack_weights(torch.randint(-1, 2, (o, k), generator=gen), block)
    nb = packed.words_per_block(block, k)[1]
    planes = packed.step_planes(torch.rand(4, m, k, generator=gen) < 0.3, [8, 4, 2, 1])
    x = packed.pack_bits(planes.bits.reshape(-1, k), block).reshape(4, m, -1)
    gain, offset = torch.randn(m, nb, 1, generator=gen), torch.randn(m, nb, 1, generator=gen)
    rhs = torch.randn(nb + 1, o, generator=gen, dtype=torch.float64) * 100
    alpha = torch.rand(o, generator=gen, dtype=torch.float64)
    b = torch.randn(o, generator=gen, dtype=torch.float64) if bias else None
    return x, planes.coefs, pw, gain, offset, rhs, b, alpha


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("k, o, block, m", [(100, 5, None, 3), (256, 21, 128, 37), (1000, 8, 128, 1),
                                            (1100, 9, 128, 5), (1900, 16, 128, 2), (700, 3, 100, 1)])
def test_one_call_equals_the_current_made_in_torch(path, k, o, block, m):
    """The one-call current = torch's read-out (byte look-up popcounts), operands and addcmul, bit for bit."""
    gen = torch.Generator().manual_seed(k + m)
    for bias in (True, False):
        x, coefs, pw, gain, offset, rhs, b, alpha = _problem(k, o, block, m, gen, bias)
        ct = packed.coef_tensor(coefs)
        cur, s = packed.block_readout(x, ct, pw, current.lhs_reference(gain, offset, packed.block_sums(x, ct, pw))[0],
                                      impl="torch")
        _, lhs = current.lhs_reference(gain, offset, s)
        want = torch.addcmul(packed.rest_reference(lhs, rhs, b), cur[:, :o], alpha, out=torch.empty(m, o))
        assert torch.equal(current.linear_current(x, coefs, pw, gain, offset, rhs, b, alpha, path=path), want)


def test_the_blocks_row_sum_is_added_from_zero_in_order():
    """``lhs``'s last column against Python floats (IEEE doubles), one product and one sum at a time."""
    gen = torch.Generator().manual_seed(3)
    gain = (torch.randn(4, 12, 1, generator=gen) * 1e3).float()
    s = torch.randint(0, 2000, (12, 4), generator=gen, dtype=torch.int32)
    _, lhs = current.lhs_reference(gain, torch.zeros(4, 12, 1), s)
    for m in range(4):
        acc = 0.0
        for b in range(12):
            acc = acc + float(gain[m, b, 0]) * float(s[b, m])
        assert lhs[m, -1].item() == acc


def test_it_declines_what_it_does_not_take():
    gen = torch.Generator().manual_seed(4)
    x, coefs, pw, gain, offset, rhs, b, alpha = _problem(2048, 8, 128, 3, gen)  # 16 blocks: torch cascades
    assert current.linear_current(x, coefs, pw, gain, offset, rhs, b, alpha) is None
    x, coefs, pw, gain, offset, rhs, b, alpha = _problem(256, 8, 128, 3, gen)
    assert current.linear_current(x, coefs, pw, gain.double(), offset, rhs, b, alpha) is None
    assert current.linear_current(x, coefs, pw, gain, offset, rhs.float(), b, alpha) is None
    assert current.linear_current(x[:, :0], coefs, pw, gain[:0], offset[:0], rhs, b, alpha) is None  # no rows
    assert current.linear_current(x, coefs, pw, gain, offset, rhs, b, alpha) is not None


@pytest.mark.parametrize("features, block", [(256, 128), (1024, 128), (300, 96), (2048, 128), (70, None)])
def test_the_engine_current_is_the_same_with_and_without_the_one_call(features, block, monkeypatch):
    """step_current by the one call = by block_current with torch's operands = the dense engine; a layer
    with a bias, spikes of a hidden layer (float32 gains and offsets)."""
    torch.manual_seed(features)
    lin = tbnn.TBLinear(features, 24, weight_bits=1, bias=True).eval()
    spikes = torch.rand(4, 17, features) < 0.2
    code = tbnn.SpikeCode.from_spikes(spikes, "binary", block=block)
    nb = -(-features // code.block_size())
    code = dataclasses.replace(code, gain=torch.rand(17, nb, 1) - 0.3, offset=torch.randn(17, nb, 1))
    engine.set_engine("auto")
    wc = engine.weight_codes(lin)
    calls = []
    real = current.LinearCall.__call__
    monkeypatch.setattr(current.LinearCall, "__call__", lambda *a, **k: calls.append(1) or real(*a, **k))
    one_call = engine.step_current(lin, code, wc)
    bound = nb <= current.MAX_BLOCKS  # 16 blocks or more: not bound, the operands made in torch
    assert bool(calls) == bound and engine.engine_path(wc).startswith("packed")
    assert torch.equal(engine.step_current(lin, code, wc), one_call) and len(calls) == 2 * bound  # bound once
    monkeypatch.setattr(current.LinearCall, "__call__", lambda *a, **k: None)
    assert torch.equal(engine.step_current(lin, code, wc), one_call)
    engine.set_engine("dense")
    try:
        assert torch.equal(engine.step_current(lin, code, engine.weight_codes(lin)), one_call)
    finally:
        engine.set_engine("auto")


@pytest.mark.parametrize("features, block", [(256, 128), (70, None), (300, 96)])
def test_a_kept_call_runs_later_batches_with_the_whole_ways_bits(features, block):
    """The words of recorded spikes: the first batch goes the whole way and keeps its bound call
    (where the words lay out as the blocks: not 300 / 96); later batches with codes alike run it at
    once, bit for bit the whole way's and the dense engine's; codes of another kind run the whole way."""
    from tbnn.engine import bound

    torch.manual_seed(features + 1)
    lin = tbnn.TBLinear(features, 24, weight_bits=1, bias=True).eval()
    wc = engine.weight_codes(lin)

    def batch(rows, gain_dtype=torch.float32):
        spikes = torch.rand(4, rows, features) < 0.2
        code = tbnn.SpikeCode.from_spikes(spikes, "binary", block=block)
        nb = -(-features // code.block_size())
        code = dataclasses.replace(code, gain=(torch.rand(rows, nb, 1) - 0.3).to(gain_dtype),
                                   offset=torch.randn(rows, nb, 1).to(gain_dtype))
        return code, packed.pack_bits(spikes, None)

    code, words = batch(17)
    assert bound.current(wc.cache, code, words) is None  # nothing kept yet
    first = engine.step_current(lin, code, wc, words)
    kept = packed.same_words(code.block_size(), features)
    assert (bound.current(wc.cache, code, words) is not None) == kept
    for rows in (17, 5, 1):  # later batches, other sizes
        code, words = batch(rows)
        fast = bound.current(wc.cache, code, words)
        whole = engine.step_current(lin, code, wc)  # no words: the whole way, planes packed afresh
        assert (fast is not None) == kept and torch.equal(engine.step_current(lin, code, wc, words), whole)
        if kept:
            assert torch.equal(fast, whole)
        engine.set_engine("dense")
        try:
            assert torch.equal(engine.step_current(lin, code, engine.weight_codes(lin)), whole)
        finally:
            engine.set_engine("auto")
    code, words = batch(3, torch.float64)  # float64 gains: not the kept call's kind
    assert bound.current(wc.cache, code, words) is None
    assert first.shape == (17, 24)


def test_pack_bits_packs_the_rows_of_every_leading_index():
    """[T, B, K] spikes packed at once = their [T * B, K] rows packed, shaped back (kernel and torch)."""
    spikes = torch.rand(4, 9, 200) < 0.3
    want = packed.pack_bits_reference(spikes.reshape(-1, 200), None).reshape(4, 9, -1)
    assert torch.equal(packed.pack_bits(spikes, None), want)
    assert torch.equal(packed.pack_bits(spikes, None, impl="torch"), want)
