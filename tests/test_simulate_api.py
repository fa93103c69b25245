"""tbnn.simulate on the user's own networks: skip connections, convolutions, pooling, BatchNorm.

Checks: agreement with the eval forward pass (logits equal bit for bit, in step and folded
mode, in every arithmetic type), an independent recount of spikes and synaptic operations,
the archive written by ``res.save`` analysed and rastered by the CLI, refusals.
"""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

import tbnn
from tbnn.engine import integer as engine
from tbnn.cli import main
from tbnn.core.coding import SpikeTrainError


class SkipNet(nn.Module):
    """h1 -> h2 -> h3, with h3's neurons receiving the currents of fc3(h2) + skip(h1)."""

    def __init__(self, f=16, h=24, c=3):
        super().__init__()
        self.enc = tbnn.TemporalBinary(4, grid="minmax")
        self.fc1, self.bn1, self.n1 = tbnn.TBLinear(f, h), nn.BatchNorm1d(h), tbnn.TemporalBinary(4)
        self.fc2, self.n2 = tbnn.TBLinear(h, h), tbnn.TemporalBinary(4)
        self.fc3, self.skip, self.n3 = tbnn.TBLinear(h, h), tbnn.TBLinear(h, h, bias=False), tbnn.TemporalBinary(4)
        self.out = tbnn.TBLinear(h, c)

    def forward(self, x):
        h1 = self.n1(self.bn1(self.fc1(self.enc(x))))
        h2 = self.n2(self.fc2(h1))
        h3 = self.n3(self.fc3(h2) + self.skip(h1))
        return self.out(h3)


class ConvNet(nn.Module):
    """TBConv2d -> BatchNorm2d -> neurons -> TBConv2d (stride 2) -> avg-pool on currents -> neurons -> TBLinear."""

    def __init__(self, c=3):
        super().__init__()
        self.enc = tbnn.TemporalBinary(4, grid="minmax")
        self.conv1, self.bn1, self.n1 = tbnn.TBConv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), tbnn.TemporalBinary(4)
        self.conv2, self.n2 = tbnn.TBConv2d(4, 6, 3, stride=2, padding=1), tbnn.TemporalBinary(4)
        self.pool = nn.AvgPool2d(2)
        self.out = tbnn.TBLinear(6 * 2 * 2, c)

    def forward(self, x):
        h = self.n1(self.bn1(self.conv1(self.enc(x.reshape(-1, 1, 8, 8)))))
        h = self.n2(self.pool(self.conv2(h)))
        return self.out(h)


def _data(n=96, f=64, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    x = torch.randn(c, f, generator=g)[y] * 1.5 + torch.randn(n, f, generator=g)
    return x, y


def _trained(cls, f):
    torch.manual_seed(0)
    net = cls() if cls is ConvNet else cls(f=f)
    x, y = _data(f=f)
    tbnn.fit(net, (x, y), epochs=1, batch=32, progress=False)
    return net, x, y


@pytest.fixture(scope="module")
def skipnet():
    return _trained(SkipNet, 16)


@pytest.fixture(scope="module")
def convnet():
    return _trained(ConvNet, 64)


@pytest.mark.parametrize("mode", ["step", "folded"])
@pytest.mark.parametrize("which", ["skipnet", "convnet"])
def test_simulation_equals_eval_forward(which, mode, request):
    net, x, y = request.getfixturevalue(which)
    net.train()
    res = tbnn.simulate(net, x, labels=y, schedule=mode, batch=40)
    assert net.training  # the train/eval state is restored
    net.eval()
    with torch.no_grad():
        ref = net(x)
    net.train()
    assert torch.equal(res.logits, ref)
    assert res.summary["forward_agreement"] == 1.0 and res.summary["max_logit_difference"] == 0.0
    assert res.summary["accuracy"] == float((ref.argmax(1) == y).double().mean())
    names = list(res.spikes)
    assert names == (["enc", "n1", "n2", "n3"] if which == "skipnet" else ["enc", "n1", "n2"])
    for k, s in res.spikes.items():
        assert s.dtype == bool and s.shape[:2] == (len(x), 4)


@pytest.mark.parametrize("mode", ["step", "folded"])
@pytest.mark.parametrize("choice", ["float32", "bfloat16", "int8"])
def test_every_arithmetic_type_gives_the_same_spikes(skipnet, choice, mode):
    """Each forced type against the eval forward in float32 products (the reference)."""
    net, x, y = skipnet
    if not engine.arithmetic_available(choice):
        pytest.skip(f"this torch has no {choice} product on the CPU")
    engine.set_matmul_dtype("float32")
    try:
        base = tbnn.simulate(net, x, schedule=mode)
        was = net.training
        net.eval()
        with torch.no_grad():
            assert torch.equal(net(x), base.logits)
        net.train(was)
        engine.set_matmul_dtype(choice)
        res = tbnn.simulate(net, x, schedule=mode)
        assert engine.arithmetic()["low_precision"] == choice
        assert res.summary["engine"]["reason"] == f"forced ({choice})"
    finally:
        engine.set_matmul_dtype("auto")
    assert torch.equal(res.logits, base.logits)
    for k in base.spikes:
        assert np.array_equal(res.spikes[k], base.spikes[k])


def _linear_fanout(layer):
    return np.full(layer.in_features, layer.out_features, dtype=float)


def _conv_fanout_bruteforce(conv, in_shape):
    """Outputs each input pixel reaches, by enumerating every output position's receptive field."""
    C, H, W = in_shape
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    fan = np.zeros((C, H, W))
    for i in range(Ho):
        for j in range(Wo):
            for di in range(k):
                for dj in range(k):
                    r, c = i * s - p + di, j * s - p + dj
                    if 0 <= r < H and 0 <= c < W:
                        fan[:, r, c] += conv.out_channels
    return fan.reshape(-1)


def test_independent_recount_skip_connection(skipnet):
    net, x, y = skipnet
    res = tbnn.simulate(net, x)
    n = len(x)
    fan = {"enc": _linear_fanout(net.fc1), "n1": _linear_fanout(net.fc2) + _linear_fanout(net.skip),
           "n2": _linear_fanout(net.fc3), "n3": _linear_fanout(net.out)}
    spikes = sum(int(s.sum()) for s in res.spikes.values())
    ops = sum(float((res.spikes[k].sum((0, 1)) * fan[k]).sum()) for k in fan)
    assert res.summary["spikes_per_sample"] == pytest.approx(spikes / n, rel=1e-12)
    assert res.summary["synaptic_ops_per_sample"] == pytest.approx(ops / n, rel=1e-12)
    by = {d["name"]: d for d in res.summary["layers"]}
    assert by["n1"]["fanout"] == 2 * 24  # read by fc2 and by the skip layer


def test_independent_recount_conv(convnet):
    net, x, y = convnet
    res = tbnn.simulate(net, x, schedule="folded")
    fan = {"enc": _conv_fanout_bruteforce(net.conv1, (1, 8, 8)),
           "n1": _conv_fanout_bruteforce(net.conv2, (4, 8, 8)), "n2": _linear_fanout(net.out)}
    ops = sum(float((res.spikes[k].sum((0, 1)) * fan[k]).sum()) for k in fan)
    assert res.summary["synaptic_ops_per_sample"] == pytest.approx(ops / len(x), rel=1e-12)


def test_sparse_layers_count_existing_synapses():
    torch.manual_seed(0)
    net = nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(16, 8, sparsity="2:4"))
    x = torch.randn(10, 16)
    res = tbnn.simulate(net, x)
    s = res.spikes["0"].sum((0, 1))
    exists = (net[1].weight_codes().q != 0).sum(0).numpy()
    assert exists.sum() == 8 * 8  # each of the 8 outputs keeps 2 of every 4 of its 16 inputs
    assert res.summary["synaptic_ops_per_sample"] == pytest.approx(float((s * exists).sum()) / 10)
    assert res.summary["dense_synaptic_ops_per_sample"] == pytest.approx(float(s.sum() * 8) / 10)


def test_recording_limits_keep_counts(skipnet):
    net, x, y = skipnet
    full = tbnn.simulate(net, x, batch=40)
    part = tbnn.simulate(net, x, batch=40, record_samples=50, record_layers=["n1", "n3"])
    assert list(part.spikes) == ["n1", "n3"] and part.spikes["n1"].shape[0] == 50
    assert np.array_equal(part.spikes["n1"], full.spikes["n1"][:50])
    for key in ("spikes_per_sample", "synaptic_ops_per_sample"):
        assert part.summary[key] == full.summary[key]
    with pytest.raises(ValueError, match="record_layers names unknown layers"):
        tbnn.simulate(net, x, record_layers=["nope"])


def test_saved_result_is_analysed_and_rastered(skipnet, tmp_path, capsys):
    net, x, y = skipnet
    res = tbnn.simulate(net, x, labels=y)
    res.save(tmp_path / "sim")
    summary = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert summary["format_version"] == 2 and summary["forward_agreement"] == 1.0
    assert main(["analyze", str(tmp_path / "sim"), "--out", str(tmp_path / "an")]) == 0
    assert (tmp_path / "an" / "report.md").is_file()
    assert main(["raster", str(tmp_path / "sim"), "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_operations_on_spike_trains_outside_tbnn_modules_are_refused():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.n, self.fc = tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 2)

        def forward(self, x):
            return self.fc(self.n(x) * 2)

    with pytest.raises(SpikeTrainError, match="the operator 'mul' cannot be applied to a spike train"):
        tbnn.simulate(Bad(), torch.randn(4, 8))
    with pytest.raises(SpikeTrainError, match="torch function cat"):
        torch.cat([tbnn.TemporalBinary(4)(torch.randn(2, 3))])


@pytest.mark.parametrize("kwargs,msg", [
    ({"mode": "fast"}, "mode must be one of step, folded"),  # the deprecated spelling, named as given
    ({"schedule": "fast"}, "schedule must be one of step, folded"),
    ({"batch": 0}, "batch must be an integer >= 1"),
    ({"dt_ms": -1.0}, "dt_ms must be a finite number > 0"),
    ({"labels": [0, 1]}, "labels must be .*one class per sample \\(4\\)"),
    ({"labels": [0, 1, -1, 0]}, "labels must be class indices >= 0"),
    ({"labels": torch.zeros(4)}, "labels must be .*integer.*torch.float32"),
])
def test_simulate_refusals(kwargs, msg):
    net = nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3))
    with pytest.raises(ValueError, match=msg):
        tbnn.simulate(net, torch.randn(4, 8), **kwargs)
    with pytest.raises(ValueError, match="no TemporalBinary neurons"):
        tbnn.simulate(nn.Linear(8, 3), torch.randn(4, 8))
    with pytest.raises(ValueError, match="NaN or infinite"):
        tbnn.simulate(net, torch.full((4, 8), float("nan")))


def test_saved_pair_is_one_set_and_checked(skipnet, tmp_path, capsys):
    net, x, y = skipnet
    res = tbnn.simulate(net, x[:20], labels=y[:20])
    out = tmp_path / "sim"
    res.save(out)
    with pytest.raises(ValueError, match="already"):
        res.save(out)  # an existing output is replaced only with overwrite=True
    res.save(out, overwrite=True)
    summary = json.loads((out / "simulation.json").read_text())
    assert "spikes_sha256" in summary and "sha256" in summary
    # another archive put beside the summary is refused by the readers
    other = tbnn.simulate(net, x[20:40], labels=y[20:40])
    other.save(tmp_path / "other")
    (out / "spikes.npz").write_bytes((tmp_path / "other" / "spikes.npz").read_bytes())
    assert main(["analyze", str(out), "--out", str(tmp_path / "an")]) == 2
    assert "spikes_sha256" in capsys.readouterr().err and not (tmp_path / "an").exists()
    # an edited summary fails its own checksum
    summary["accuracy"] = 1.0
    (out / "simulation.json").write_text(json.dumps(summary))
    assert main(["analyze", str(out), "--out", str(tmp_path / "an")]) == 2
    assert "fails its checksum" in capsys.readouterr().err


def test_recorded_spikes_are_packed_and_read_back_exactly():
    """The session keeps a batch's spikes packed 64 to a word (where the kernel packs them) and
    :meth:`recorded_spikes` gives back the bool array, sample first, for ragged widths and shapes."""
    from tbnn.engine import session as session_mod
    from tbnn.kernels import packed

    gen = torch.Generator().manual_seed(9)
    for shape in ((70,), (3, 5, 7), (64,), (1,)):
        sess = session_mod.SimulationSession({}, "step", record_samples=17)
        batches = [torch.rand(4, 10, *shape, generator=gen) < 0.3 for _ in range(3)]
        for b in batches:
            sess.record_spikes("a", b)
            sess.end_batch(10)
        want = torch.cat(batches, 1)[:, :17].reshape(4, 17, -1).transpose(0, 1).numpy()
        got = sess.recorded_spikes("a")
        assert got.dtype == np.bool_ and got.shape == want.shape and np.array_equal(got, want)
        assert sess.recorded["a"][0].dtype == (np.int64 if packed.kernel() is not None else np.bool_)
    assert session_mod.SimulationSession({}, "step").recorded_spikes("a") is None


@pytest.mark.parametrize("packs", [True, False])
def test_recorded_batches_are_kept_in_blocks_and_read_back_exactly(packs, monkeypatch):
    """Batches are copied into the layer's record blocks (16 batches, then each block twice the last,
    up to RECORD_BLOCK_BYTES), each kept as one array, not one per batch (kept apart between the
    batches' temporaries they split the heap, which grew every batch); the read-back is exact
    across blocks, packed or bool."""
    from tbnn.engine import session as session_mod

    if not packs:
        monkeypatch.setattr(session_mod, "_packs_records", lambda: False)
    gen = torch.Generator().manual_seed(10)
    batches = [torch.rand(4, 10, 70, generator=gen) < 0.3 for _ in range(40)] + [torch.rand(4, 3, 70) < 0.3]
    want = torch.cat(batches, 1).transpose(0, 1).numpy()
    for cap, sizes in ((session_mod.RECORD_BLOCK_BYTES, [160, 243]), (1, [160] + [10] * 24 + [3])):
        monkeypatch.setattr(session_mod, "RECORD_BLOCK_BYTES", cap)  # 1: every block after the first holds one batch
        sess = session_mod.SimulationSession({}, "step")
        for b in batches:
            sess.record_spikes("a", b)
            sess.end_batch(b.shape[1])
        assert [len(p) for p in sess.recorded["a"]] == sizes
        assert not any(p.flags["OWNDATA"] for p in sess.recorded["a"])  # views of the blocks
        got = sess.recorded_spikes("a")
        assert got.dtype == np.bool_ and np.array_equal(got, want)


def test_packed_recording_gives_the_plain_recording(skipnet, monkeypatch):
    """A whole simulation recorded packed and recorded as bool arrays: the same spikes, and each
    layer's recorded spikes add up to its spike count (an independent recount)."""
    from tbnn.engine import session as session_mod

    net, x, y = skipnet
    packed = tbnn.simulate(net, x, batch=40)
    monkeypatch.setattr(session_mod, "_packs_records", lambda: False)
    plain = tbnn.simulate(net, x, batch=40)
    assert list(packed.spikes) == list(plain.spikes)
    for name, s in packed.spikes.items():
        assert s.dtype == np.bool_ and np.array_equal(s, plain.spikes[name])
    layers = {d["name"]: d for d in packed.summary["layers"]}
    for name, s in packed.spikes.items():
        assert int(s.sum()) == layers[name]["spikes"]


def test_the_simulated_pass_uses_the_codes_its_eval_forward_checked(monkeypatch):
    """Each layer's weight codes are checked by content once a batch, in the eval forward the simulated
    pass is compared with; the session adopts those of the first batch instead of checking again; an
    edit of the weights between calls is still seen (new codes, the same simulation as a fresh layer's)."""
    from tbnn.engine import integer as engine_mod

    torch.manual_seed(2)
    net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 6), torch.nn.BatchNorm1d(6),
                              tbnn.TemporalBinary(4), tbnn.TBLinear(6, 3)).eval()
    x = torch.randn(20, 8)
    want = tbnn.simulate(net, x, batch=7)
    looked = []
    real = engine_mod.cached_weight_codes
    monkeypatch.setattr(engine_mod, "cached_weight_codes", lambda layer: looked.append(layer) or real(layer))
    got = tbnn.simulate(net, x, batch=7)
    assert looked == [net[1], net[4]] * 3  # the eval forward of each of the 3 batches; none by the session
    assert torch.equal(got.logits, want.logits) and got.summary["layers"] == want.summary["layers"]
    with torch.no_grad():
        net[4].weight.mul_(-1)
    fresh = copy.deepcopy(net)
    edited, again = tbnn.simulate(net, x, batch=7), tbnn.simulate(fresh, x, batch=7)
    assert torch.equal(edited.logits, again.logits) and not torch.equal(edited.logits, want.logits)


def test_the_simulated_batches_run_back_to_back_then_the_reference():
    """The first batch's eval forward comes first (its weight codes are adopted); then every
    batch is simulated, then the other batches' eval forwards run; each pass of a batch sees the
    same random numbers (a rate code agrees), and a batch that overflows is named by its samples."""
    from tbnn.engine import session as session_mod

    torch.manual_seed(3)
    net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 6), torch.nn.BatchNorm1d(6),
                              tbnn.TemporalBinary(8, scheme="rate"), tbnn.TBLinear(6, 3)).eval()
    passes = []
    net[1].register_forward_hook(lambda m, i, o: passes.append("sim" if session_mod.active() else "ref"))
    res = tbnn.simulate(net, torch.randn(20, 8), batch=6)
    assert passes == ["ref", "sim", "sim", "sim", "sim", "ref", "ref", "ref"]
    assert res.summary["forward_agreement"] == 1.0 and res.summary["max_logit_difference"] == 0.0
    x = torch.randn(20, 8)
    x[13, 0], x[13, 1] = 3e38, -3e38  # finite, but the third batch (samples 12 to 17) overflows
    with pytest.raises(ValueError, match=r"non-finite logits .* on samples 12 to 17"):
        tbnn.simulate(net, x, batch=6)


def test_fire_counted_runs_without_gradient_whatever_the_caller():
    """With gradients enabled by the caller: the same code and counts as under no_grad, none of it tracked."""
    torch.manual_seed(3)
    neuron = tbnn.TemporalBinary(4, block=16).eval()
    x = torch.randn(5, 32, requires_grad=True)
    code, counts = neuron.fire_counted(x)
    with torch.no_grad():
        code2, counts2 = neuron.fire_counted(x)
    assert not code.q.requires_grad and not code.gain.requires_grad
    assert torch.equal(code.q, code2.q) and torch.equal(code.spikes, code2.spikes) and torch.equal(code.gain, code2.gain)
    assert (counts is None and counts2 is None) or torch.equal(counts, counts2)


def test_counts_are_summed_exactly_across_many_batches():
    """Each neuron's spike count over 70 batches (past the batches summed at once), handed in by the
    firing (int32) or recounted by the session (float64), mixed: the exact totals, read at any point."""
    from tbnn.engine import session as session_mod

    gen = torch.Generator().manual_seed(5)
    sess = session_mod.SimulationSession({}, "step")
    want = torch.zeros(70, dtype=torch.float64)
    for b in range(70):
        spikes = torch.rand(4, 6, 70, generator=gen) < 0.4
        counts = spikes.sum((0, 1)).to(torch.int32) if b % 3 else None  # every third batch recounted
        sess.record_spikes("a", spikes, counts)
        sess.end_batch(6)
        want += spikes.sum((0, 1)).double()
        if b in (10, 40):
            assert torch.equal(sess.neuron_counts["a"], want)
    assert torch.equal(sess.neuron_counts["a"], want) and sess.spike_counts["a"] == int(want.sum())
    assert session_mod.SUMMED_AT_ONCE < 70
