"""The compiled binary neuron (tbnn.kernels.neuron) against torch's passes.

Codes, spikes, gains and offsets must be the same bits as the torch path (the closed-form
codes of ``tbnn.core.quant.affine_fast``, the grid values of ``grid_values`` fired by
``integrate_and_fire``), on every dispatch path this CPU runs, for every grid it supports,
ragged blocks and edge values; where it cannot run (not finite, not float32) the torch path
runs instead.
"""

import pytest
import torch

import tbnn
from tbnn.core.firing import binary_thresholds, integrate_and_fire
from tbnn.core.quant.fast import affine_fast, grid_values, rectifies
from tbnn.engine.precision import set_engine
from tbnn.kernels import neuron as kneuron
from tbnn.kernels import packed
from tbnn.nn import neurons

HAS_KERNEL = packed.kernel() is not None
PATHS = list(range(packed.kernel().tb_best_path() + 1)) if HAS_KERNEL else []
pytestmark = pytest.mark.skipif(not HAS_KERNEL, reason="no compiled kernel here")


def _edgy(rows, k, seed):
    """Random values with the cases that break a careless kernel: grid levels and one ulp below
    them, zeros and negative zeros, constant and all-negative rows, a subnormal."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=gen) * 3
    n = min(k, 33)
    lv = torch.arange(n, dtype=torch.float32) / 32
    x[0, :n], x[1, :n] = lv, torch.nextafter(lv, torch.zeros(n))
    x[2], x[3], x[4, : k // 2] = 0.0, -1.0, 2.5
    x[5, : min(k, 9)] = -0.0
    x[6, 0] = torch.finfo(torch.float32).tiny / 4
    x[6, -1] = -torch.finfo(torch.float32).tiny / 4  # a negative subnormal: relu gives +0.0
    return x


def _dense(fn, *args):
    """``fn(*args)`` with the engine forced dense (no compiled code at all)."""
    set_engine("dense")
    try:
        return fn(*args)
    finally:
        set_engine("auto")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("grid,target", [("rectify", "relu"), ("rectify", "x"), ("unit", "relu"), ("minmax", "x"),
                                         ("minmax", "relu")])
@pytest.mark.parametrize("timesteps", [1, 4, 7, 9])
@pytest.mark.parametrize("block,k", [(32, 100), (128, 256), (None, 37), (16, 16)])
def test_the_compiled_neuron_makes_torchs_codes_and_spikes(path, grid, target, timesteps, block, k):
    x = _edgy(9, k, timesteps + k)
    q, spikes, differ, sums, counts, relu, words = kneuron.fire_codes(x, block, grid, timesteps, rectifies(grid, target),
                                                                      path=path, target=True, words=True)
    assert torch.equal(counts.long(), spikes.sum((0, 1)))
    if path == 3 and (block or k) % 16 == 0:  # packed in the same pass: as pack_bits packs them, padding 0
        assert torch.equal(words, packed.pack_bits_reference(spikes.reshape(-1, k), None).reshape(timesteps, 9, -1))
    else:
        assert words is None
    assert torch.equal(relu.view(torch.int32), torch.relu(x).view(torch.int32))  # the same bits: -0.0 kept
    assert kneuron.fire_codes(x, block, grid, timesteps, rectifies(grid, target), path=path).target is None
    want_q = affine_fast(x, block, grid, 2**timesteps, 0.01, target, fused=False)[0]
    want_spikes = integrate_and_fire(grid_values(x, block, grid, 2**timesteps), binary_thresholds(timesteps))
    assert differ == 0 and torch.equal(q, want_q) and torch.equal(spikes, want_spikes)
    assert q.dtype == torch.float32 and spikes.dtype == torch.bool
    bs = k if block is None else block
    if (2**timesteps - 1) ** 2 * bs < 2**24:  # exact in float32: the block sums of q and q^2, recounted in int64
        qi = want_q.to(torch.int64)
        blocks = range(0, k, bs)
        assert torch.equal(sums[0], torch.stack([qi[:, b:b + bs].sum(-1) for b in blocks], -1).float())
        assert torch.equal(sums[1], torch.stack([(qi[:, b:b + bs] ** 2).sum(-1) for b in blocks], -1).float())
    else:
        assert sums is None


@pytest.mark.parametrize("path", PATHS)
def test_what_the_kernel_cannot_take_goes_to_torch(path):
    x = _edgy(8, 64, 0)
    assert kneuron.fire_codes(x, None, "rectify", 24, True, path=path).code_sums is None  # beyond float32's integers
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[2, 7] = bad
        assert kneuron.fire_codes(y, 32, "rectify", 4, True, path=path) is None
    assert kneuron.fire_codes(x.double(), 32, "rectify", 4, True, path=path) is None
    assert kneuron.fire_codes(x, 32, "meanstd", 4, True, path=path) is None  # a grid of its own
    assert kneuron.fire_codes(x.reshape(8, 8, 8), 32, "rectify", 4, True, path=path) is None


_CONFIGS = [
    dict(timesteps=4),
    dict(timesteps=4, grid="minmax", target="x"),
    dict(timesteps=3, block=100),
    dict(timesteps=4, grid="running", features=256),
    dict(timesteps=4, grid="running", readout="running", features=256),
    dict(timesteps=4, adaptive_threshold="layer", features=256),
    dict(timesteps=5, block=None, target="x"),
]


@pytest.mark.parametrize("cfg", _CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_a_neuron_fires_the_same_code_through_the_kernel_and_in_torch(cfg, monkeypatch):
    torch.manual_seed(1)
    n = tbnn.TemporalBinary(**cfg).eval()
    if cfg.get("readout") == "running":
        n.running_gain.uniform_(0.5, 1.5)
        n.running_offset.uniform_(-0.1, 0.1)
    if cfg.get("adaptive_threshold"):
        n.threshold.fill_(0.3)
    x = _edgy(33, 256, 3).reshape(33, 4, 64)  # a conv layer's [B, C, L] flattens to 256 features
    with torch.no_grad():
        assert n._fire_compiled(x) is not None  # the kernel runs this neuron
        fast = n.fire(x)
        monkeypatch.setattr(neurons.TemporalBinary, "_fire_compiled", lambda self, x: None)
        torch_loop = n.fire(x)
        dense = _dense(n.fire, x)
    for other in (torch_loop, dense):
        for field in ("q", "gain", "offset", "raw", "target"):
            assert torch.equal(getattr(fast, field), getattr(other, field)), field
        assert fast.shape == other.shape == (33, 4, 64)
    monkeypatch.undo()
    with torch.no_grad():
        code, counts = n.fire_counted(x)  # counted as it fired: each neuron's spikes over samples and steps
    per_neuron = code.spikes.reshape(code.timesteps, 33, -1).sum((0, 1))
    assert counts.dtype == torch.int32 and torch.equal(counts.long(), per_neuron)


def test_a_path_that_fails_the_neuron_self_test_is_not_used(monkeypatch, capsys):
    real = kneuron.fire_codes

    def corrupt(*a, **k):
        fired = real(*a, **k)
        q = fired.q.clone()
        q[1, 5] += 1
        return fired._replace(q=q)

    monkeypatch.setattr(kneuron, "fire_codes", corrupt)
    assert kneuron.path_agrees.__wrapped__(PATHS[-1]) is False
    assert "failed its self-test" in capsys.readouterr().err
    monkeypatch.undo()
    assert kneuron.path_agrees.__wrapped__(PATHS[-1]) is True


def test_simulate_runs_the_compiled_neuron_and_agrees_exactly(monkeypatch):
    from tbnn.nn.models import ModelConfig, build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(in_features=20, hidden=64, layers=2, block=32)).eval()
    x = torch.randn(50, 20)
    ran = []
    real = neurons.TemporalBinary._fire_compiled
    monkeypatch.setattr(neurons.TemporalBinary, "_fire_compiled", lambda self, x: ran.append(real(self, x)) or ran[-1])
    s = tbnn.simulate(net, x).summary
    assert ran and all(r is not None for r in ran)
    assert s["forward_agreement"] == 1.0 and s["max_logit_difference"] == 0.0
    assert set(s["engine"]["neurons"].values()) == {"compiled (tbnn.kernels.neuron)"}  # simulation.json says what ran
    dense = _dense(tbnn.simulate, net, x).summary
    assert set(dense["engine"]["neurons"].values()) == {"torch"}
    assert dense["spikes_per_sample"] == s["spikes_per_sample"]  # counted as fired = counted after
    assert [d["spikes"] for d in dense["layers"]] == [d["spikes"] for d in s["layers"]]


@pytest.mark.parametrize("block", [8, 15, 33, 100, 128, 513, 2048])
@pytest.mark.parametrize("timesteps", [1, 4, 6])
def test_the_compiled_fit_gives_torchs_gains_and_offsets(block, timesteps):
    """The read-out's sums in torch's order and its fused multiply-adds: the same bits as
    dat_readout for blocks with leftover vectors, scalar tails and the sum's cascade."""
    from tbnn.core.quant.fast import dat_readout

    if not kneuron.fit_agrees(torch.get_num_threads()):
        pytest.skip("torch adds in another order on this machine: the fit stays in torch (tested below)")
    gen = torch.Generator().manual_seed(block + timesteps)
    k = 2 * block + max(8, block // 3)
    x = torch.randn(11, k, generator=gen) * torch.exp(2 * torch.randn(11, k, generator=gen))
    for grid, relu in (("rectify", True), ("rectify", False), ("minmax", False), ("minmax", True)):
        rect = rectifies(grid, "relu" if relu else "x")
        fired = kneuron.fire_codes(x, block, grid, timesteps, rect, path=PATHS[-1])
        got = kneuron.dat_fit(x, fired, block, relu, 0.01)
        if fired.code_sums is None:
            assert got is None
            continue
        want = dat_readout(torch.relu(x) if rect else x, fired.q, block, 2**timesteps, 0.01, relu and not rect)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (grid, relu)


def test_the_fit_stays_in_torch_where_it_cannot_be_compiled(monkeypatch, capsys):
    x = _edgy(9, 64, 0)
    fired = kneuron.fire_codes(x, 32, "rectify", 4, True, path=PATHS[-1])
    assert kneuron.dat_fit(x, fired, 32, True, 0.0) is None  # lam = 0: all-equal blocks are special
    assert kneuron.dat_fit(x, fired, 4, True, 0.01) is None  # blocks under one vector
    y = _edgy(9, 203, 1)  # blocks of 100, 100 and a last one of 3: torch sums that one another way
    ragged = kneuron.fire_codes(y, 100, "rectify", 4, True, path=PATHS[-1])
    assert kneuron.dat_fit(y, ragged, 100, True, 0.01) is None
    n = tbnn.TemporalBinary(4, block=100).eval()
    with torch.no_grad():
        a, b = n.fire(y), _dense(n.fire, y)
    assert torch.equal(a.gain, b.gain) and torch.equal(a.offset, b.offset)
    assert kneuron.dat_fit(x, fired._replace(code_sums=None), 32, True, 0.01) is None
    real = kneuron._fit
    monkeypatch.setattr(kneuron, "_fit", lambda *a: tuple(v + 1e-3 for v in real(*a)))
    assert kneuron.fit_agrees.__wrapped__(1) is False
    assert "stays in torch" in capsys.readouterr().err
    # a neuron whose compiled fit is refused still fires torch's code
    monkeypatch.setattr(neurons, "dat_fit", lambda *a: None)
    n = tbnn.TemporalBinary(4).eval()
    with torch.no_grad():
        a, b = n.fire(x), _dense(n.fire, x)
    assert torch.equal(a.gain, b.gain) and torch.equal(a.offset, b.offset) and torch.equal(a.raw, b.raw)
