"""The exact integer-code engine's arithmetic: every product type against a float64 recount.

The per-block terms ``N_b = (q m_b) Q^T`` and ``S_b = sum(q m_b)`` are recomputed here in
float64 (exact for these integers) and must equal the engine's in every product type it
can pick (float32, bfloat16, int8), for codes inside and outside each type's exact range,
spike matrices and codes, ragged blocks and signed weight codes.
"""

import dataclasses
import json

import pytest
import torch

import tbnn
from tbnn.engine import precision as arith
from tbnn.engine import integer as engine
from tbnn.kernels import packed as kernels


def _reference(q, code, wc):
    """``N_b``, ``S_b`` by float64 products of the masked inputs with the weight codes."""
    masks = code.block_masks(torch.float64)  # [nb, F]
    qd = q.to(torch.float64)
    Q = wc.q.reshape(wc.q.shape[0], -1).to(torch.float64)
    n = torch.stack([(qd * m) @ Q.t() for m in masks])
    s = torch.stack([(qd * m).sum(-1, keepdim=True) for m in masks])
    return n, s


@pytest.fixture(autouse=True)
def _auto_after():
    engine.set_engine("dense")  # these tests hold the dense products; the packed engine's are at the end
    yield
    engine.set_matmul_dtype("auto")
    engine.set_engine("auto")


@pytest.mark.parametrize("choice", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("timesteps", [4, 8])  # T = 8: codes up to 255, beyond int8 (and bfloat16's 256)
@pytest.mark.parametrize("bits", [1, 1.5, 3])
def test_integer_terms_equal_a_float64_recount(choice, timesteps, bits):
    if not engine.arithmetic_available(choice):
        pytest.skip(f"no {choice} product here")
    torch.manual_seed(timesteps + int(2 * bits))
    layer = tbnn.TBLinear(200, 12, weight_bits=bits)  # 200 inputs: blocks of 128 and a ragged 72
    layer.eval()
    wc = engine.weight_codes(layer)
    code = tbnn.TemporalBinary(timesteps).encode(torch.randn(37, 200) * 3)
    engine.set_matmul_dtype(choice)
    for q in (code.q, code.spikes, code.spikes[1]):  # a code, every step's spikes, one step's
        n, s = engine.integer_terms(layer, q, code, wc)
        n_ref, s_ref = _reference(q, code, wc)
        # in the term dtype, or int32 from int8 products when that is float32 (sums below 2^24)
        td = engine.term_dtype(code, wc)
        assert n.dtype == td or (n.dtype == s.dtype == torch.int32 and td == torch.float32 and choice == "int8")
        assert torch.equal(n.to(torch.float64), n_ref) and torch.equal(s.to(torch.float64), s_ref)


def test_the_fastest_exact_type_is_picked_per_product(monkeypatch):
    """int8 takes products of codes within 127; a T = 8 code (up to 255) falls back, still exact."""
    if not engine.arithmetic_available("int8"):
        pytest.skip("no int8 product here")
    engine.set_matmul_dtype("int8")
    used = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda *a, **k: used.append(1) or real(*a, **k))
    layer = tbnn.TBLinear(64, 8)
    layer.eval()
    wc = engine.weight_codes(layer)
    x = torch.rand(5, 64)
    engine.exact(layer, tbnn.TemporalBinary(4).encode(x), wc)
    assert used  # codes <= 15: int8
    used.clear()
    engine.exact(layer, tbnn.TemporalBinary(8).encode(x), wc)
    assert not used  # codes up to 255: float32


def test_auto_arithmetic_follows_the_cpu_features_and_times_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TBNN_CACHE", str(tmp_path))  # no stored calibration
    arith._stored.cache_clear()
    monkeypatch.setattr(arith, "_time_product", lambda *a, **k: pytest.fail("auto must not time products"))
    flags = arith._cpu()["flags"]
    info = engine.arithmetic("cpu")
    want = (["int8"] if (flags["vnni"] or flags["amx"]) and engine.arithmetic_available("int8") else []) + \
        (["bfloat16"] if flags["bf16"] else [])
    assert info["order"] == want and info["calibration"] is None
    assert info["low_precision"] == (want[0] if want else "float32")
    assert info["reason"].startswith("CPU features")
    arith._stored.cache_clear()


def test_a_stored_calibration_is_used_only_on_its_cpu_and_versions(monkeypatch, tmp_path):
    monkeypatch.setenv("TBNN_CACHE", str(tmp_path))
    arith._stored.cache_clear()
    data = engine.calibrate("cpu")
    stored = json.loads(engine.calibration_path("cpu").read_text())
    assert stored == data and stored["cpu"] == arith._cpu()["model"] and stored["torch"] == torch.__version__
    timed = stored["timings_ms"]
    assert {"float32", "bfloat16"} <= set(timed) and all(v > 0 for v in timed.values())
    fast = sorted((k for k in timed if k != "float32" and timed[k] < 0.8 * timed["float32"]), key=timed.get)
    assert stored["order"] == fast
    info = engine.arithmetic("cpu")
    assert info["order"] == fast and info["reason"].startswith("stored calibration")
    # another CPU's (or version's) calibration is ignored: back to the CPU features
    engine.calibration_path("cpu").write_text(json.dumps({**stored, "cpu": "another CPU", "order": ["bfloat16"]}))
    arith._stored.cache_clear()
    assert engine.arithmetic("cpu")["reason"].startswith("CPU features")
    arith._stored.cache_clear()


def test_forcing_an_unavailable_type_is_refused(monkeypatch):
    monkeypatch.setattr(arith, "_int8_works", lambda device: False)
    engine.set_matmul_dtype("int8")
    with pytest.raises(ValueError, match="matmul dtype int8 is not available"):
        engine.arithmetic("cpu")
    with pytest.raises(ValueError, match="must be one of"):
        engine.set_matmul_dtype("int4")


# --------------------------------------------------------------------------------------
# the packed engine (AND + popcount of bit planes, tbnn.kernels) against the same recount


def _packed_impls():
    """``packed`` always runs (the torch reference without a compiler); ``auto`` picks the compiled kernel."""
    return ["packed"] + (["auto"] if kernels.kernel() is not None else [])


@pytest.mark.parametrize("timesteps", [1, 2, 4, 8])
@pytest.mark.parametrize("bits", [1, 1.5, 2, 4])
@pytest.mark.parametrize("block", [128, None])
def test_packed_integer_terms_equal_a_float64_recount(timesteps, bits, block):
    torch.manual_seed(timesteps + int(2 * bits))
    layer = tbnn.TBLinear(200, 12, weight_bits=bits).eval()
    code = tbnn.TemporalBinary(timesteps, block=block).encode(torch.randn(37, 200) * 3)
    for choice in _packed_impls():
        engine.set_engine(choice)
        wc = engine.weight_codes(layer)
        for q in (code.q, code.spikes, code.spikes[0]):
            n, s = engine.integer_terms(layer, q, code, wc)
            assert engine.engine_path(wc).startswith("packed")
            n_ref, s_ref = _reference(q, code, wc)
            assert n.dtype == s.dtype == torch.int32
            assert torch.equal(n.to(torch.float64), n_ref) and torch.equal(s.to(torch.float64), s_ref)


@pytest.mark.parametrize("bits", [1, 1.5, 4])
def test_packed_and_dense_currents_are_equal_bit_for_bit(bits):
    """exact and step_current, packed and dense: four ways to one current, equal in every bit."""
    torch.manual_seed(int(2 * bits))
    layer = tbnn.TBLinear(300, 20, weight_bits=bits).eval()
    code = tbnn.TemporalBinary(4).encode(torch.randn(16, 300) * 2)
    got = {}
    for choice in ["dense", *_packed_impls()]:
        engine.set_engine(choice)
        wc = engine.weight_codes(layer)
        got[choice] = (engine.exact(layer, code, wc), engine.step_current(layer, code, wc))
    ref = got["dense"][0]
    for choice, (ex, st) in got.items():
        assert torch.equal(ex, ref) and torch.equal(st, ref), choice


def test_the_packed_engine_leaves_what_it_does_not_run_to_the_dense_one():
    engine.set_engine("auto")
    conv = tbnn.TBConv1d(2, 3, 3, padding="same").eval()
    code = tbnn.TemporalBinary(2).encode(torch.randn(4, 2 * 9) * 2)
    code = dataclasses.replace(code, shape=(4, 2, 9))
    wc = engine.weight_codes(conv)
    engine.exact(conv, code, wc)
    assert engine.engine_path(wc) == "dense (a convolution with string padding, groups or dilation)"
    floaty = tbnn.TBLinear(8, 3, weight_bits=None).eval()
    wc = engine.weight_codes(floaty)
    engine.exact(floaty, tbnn.TemporalBinary(2).encode(torch.randn(4, 8)), wc)
    assert engine.engine_path(wc) == "dense (float weights)"
    engine.set_engine("packed")
    with pytest.raises(ValueError, match="TBNN_ENGINE=packed cannot run this layer \\(float weights\\)"):
        engine.exact(floaty, tbnn.TemporalBinary(2).encode(torch.randn(4, 8)), engine.weight_codes(floaty))
    with pytest.raises(ValueError, match="engine must be one of auto, packed, dense"):
        engine.set_engine("fast")


def test_without_a_kernel_auto_runs_dense(monkeypatch):
    monkeypatch.setattr(kernels, "kernel", lambda: None)
    engine.set_engine("auto")
    layer = tbnn.TBLinear(8, 3).eval()
    wc = engine.weight_codes(layer)
    engine.exact(layer, tbnn.TemporalBinary(2).encode(torch.randn(4, 8)), wc)
    assert engine.engine_path(wc) == "dense (no compiled kernel)"


def test_the_dense_engine_runs_no_compiled_code(monkeypatch):
    """``TBNN_ENGINE=dense``: neither the kernel's current, nor its firing, nor its self-checks run."""
    from tbnn.nn import neurons

    monkeypatch.setattr(neurons, "fire_checked", lambda *a, **k: pytest.fail("the compiled firing ran"))
    monkeypatch.setattr(engine, "_current_fusion_ok", lambda: pytest.fail("the fused current was considered"))
    torch.manual_seed(0)
    net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(16, 8), tbnn.TemporalBinary(4),
                              tbnn.TBLinear(8, 3)).eval()
    res = tbnn.simulate(net, torch.randn(9, 16))
    assert res.summary["forward_agreement"] == 1.0 and res.summary["engine"]["packed_kernel"] is None
    assert set(res.summary["engine"]["layers"].values()) == {"dense (forced)"}


@pytest.mark.skipif(kernels.kernel() is None, reason="no compiled kernel here")
@pytest.mark.parametrize("features, block", [(256, 128), (200, 128), (70, None), (192, 64), (200, 100), (300, 96)])
def test_step_current_from_packed_spikes_equals_packing_them(features, block, monkeypatch):
    """Spikes handed over packed as one block (as a simulation records them) give the current of the
    spikes packed by the engine, bit for bit, whether or not the layer's blocks lay the words alike."""
    torch.manual_seed(features)
    lin = tbnn.TBLinear(features, 40, weight_bits=1).eval()
    spikes = torch.rand(4, 33, features) < 0.2
    code = tbnn.SpikeCode.from_spikes(spikes, "binary", block=block)
    wc = engine.weight_codes(lin)
    words = kernels.pack_bits(spikes.reshape(-1, features), None).view(4, 33, -1)
    want = engine.step_current(lin, code, wc)
    assert torch.equal(engine.step_current(lin, code, wc, words), want)
    assert torch.equal(want, engine.exact(lin, code, wc))
    assert kernels.same_words(block, features) == (block is None or block % 64 == 0)
    if kernels.same_words(block, features):  # the words are used: nothing is packed again
        monkeypatch.setattr(kernels, "pack_bits", lambda *a, **k: pytest.fail("the spikes were packed again"))
        assert torch.equal(engine.step_current(lin, code, wc, words), want)


def _conv_code(layer, shape, block, gen):
    """A binary code of random spikes ``[T=4, B, *shape]`` with float32 gains and offsets, as a hidden layer fires."""
    spikes = torch.rand(4, 7, *shape, generator=gen) < 0.3
    code = tbnn.SpikeCode.from_spikes(spikes.reshape(4, 7, -1), "binary", block=block)
    nb = -(-code.q.shape[-1] // code.block_size())
    gain = torch.rand(7, nb, 1, generator=gen) + 0.5
    offset = torch.randn(7, nb, 1, generator=gen)
    return dataclasses.replace(code, gain=gain, offset=offset, shape=(7, *shape))


@pytest.mark.skipif(kernels.kernel() is None, reason="no compiled kernel here")
@pytest.mark.parametrize("nd, shape, conv", [
    (1, (3, 40), {"kernel_size": 5, "padding": 2}),
    (1, (6, 23), {"kernel_size": 3, "stride": 2, "padding": 1}),
    (2, (2, 9, 9), {"kernel_size": 3, "padding": 1}),
    (2, (3, 8, 7), {"kernel_size": 2, "stride": 2}),
])
@pytest.mark.parametrize("block", [128, 16, None])
def test_packed_convolution_equals_the_dense_engine(nd, shape, conv, block):
    """A convolution's current by the packed engine (receptive fields per read-out block, AND +
    popcount, the read-out fused in) equals the dense engine's bit for bit, step by step and folded."""
    gen = torch.Generator().manual_seed(nd * 100 + shape[-1])
    layer = (tbnn.TBConv1d if nd == 1 else tbnn.TBConv2d)(shape[0], 5, **conv).eval()
    code = _conv_code(layer, shape, block, gen)
    wc = engine.weight_codes(layer)
    try:
        got = {}
        for choice in ("auto", "dense"):
            engine.set_engine(choice)
            got[choice] = (engine.step_current(layer, code, wc), engine.exact(layer, code, wc), engine.engine_path(wc))
    finally:
        engine.set_engine("auto")
    assert got["auto"][2].startswith("packed") and got["dense"][2] == "dense (forced)"
    assert torch.equal(got["auto"][0], got["dense"][0]) and torch.equal(got["auto"][1], got["dense"][1])
    assert torch.equal(got["auto"][0], got["auto"][1])


def test_convolution_the_packed_engine_does_not_run_is_named_and_refused_when_forced(monkeypatch):
    engine.set_engine("auto")
    layer = tbnn.TBConv1d(2, 3, 3, padding="same").eval()
    code = _conv_code(layer, (2, 10), 8, torch.Generator().manual_seed(1))
    wc = engine.weight_codes(layer)
    want = engine.step_current(layer, code, wc)
    assert engine.engine_path(wc) == "dense (a convolution with string padding, groups or dilation)"
    try:
        engine.set_engine("packed")
        with pytest.raises(ValueError, match="TBNN_ENGINE=packed cannot run this layer"):
            engine.step_current(layer, code, wc)
    finally:
        engine.set_engine("auto")
    assert torch.equal(engine.step_current(layer, code, wc), want)
    # an otherwise packable convolution: float64 gains, or no compiled kernel, keep it dense, said so
    layer = tbnn.TBConv1d(2, 3, 3, padding=1).eval()
    code = _conv_code(layer, (2, 10), 8, torch.Generator().manual_seed(2))
    wc = engine.weight_codes(layer)
    want = engine.step_current(layer, dataclasses.replace(code, gain=code.gain.double()), wc)
    assert engine.engine_path(wc) == "dense (a convolution whose read-out gains are not float32)"
    assert torch.equal(want, engine.step_current(layer, code, wc)) and engine.engine_path(wc).startswith("packed")
    monkeypatch.setattr(kernels, "kernel", lambda: None)
    assert torch.equal(engine.exact(layer, code, wc), want)
    assert engine.engine_path(wc) == "dense (no compiled kernel)"
