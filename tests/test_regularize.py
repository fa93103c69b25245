"""The activity regulariser: value = measured activity, gradient = finite differences with the
rounding residual held fixed, the grid floor, and its use as fit's loss."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tbnn.nn.models import ModelConfig, build_model
from tbnn.nn.regularize import ActivityRegularizer, activity_floor

T, BLOCK = 3, 4


def _net(layers=1):
    torch.manual_seed(0)
    net = build_model(ModelConfig(in_features=6, n_classes=3, hidden=8, layers=layers,
                                  timesteps=T, block=BLOCK)).double()
    net.train()
    return net


def _x():
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=g, dtype=torch.float64)


def test_value_is_the_measured_activity_and_encoder_is_excluded():
    net = _net(layers=2)
    reg = ActivityRegularizer(net, target=0.1, weight=2.0)
    assert reg.names == ["neurons.0", "neurons.1"]
    x, y = _x(), torch.arange(16) % 3
    logits, codes = net(x, record=True)
    # record=True calls the same modules: the hooks saw this forward
    act = reg.activity()
    for i, name in enumerate(reg.names):
        s = codes[f"hidden{i + 1}"].spikes
        assert float(act[name]) == pytest.approx(float(s.double().mean()), abs=1e-12)
    pen = sum((float(act[n]) - 0.1) ** 2 for n in reg.names) / 2
    assert float(reg.penalty()) == pytest.approx(pen)
    assert float(reg(logits, y)) == pytest.approx(float(F.cross_entropy(logits, y)) + 2.0 * pen)
    reg.remove()
    net(x)
    assert reg.activity() == {}


@pytest.mark.parametrize("surrogate", ["code", "grid"])
def test_gradient_matches_finite_differences_with_residual_fixed(surrogate):
    """d penalty / d (BatchNorm weight, bias) of the hidden layer, against central
    differences of the same penalty with each neuron's rounding residual held at its value
    at the point (code - u for the code surrogate, whose block maximum is detached as in the
    DAT path; spikes - v for the grid surrogate, whose block maximum moves)."""
    net = _net()
    P = 0.05
    reg = ActivityRegularizer(net, target=P, weight=1.0, surrogate=surrogate)
    x = _x()
    net(x)
    pen = reg.penalty()
    params = [net.norms[0].weight, net.norms[0].bias]
    grads = torch.autograd.grad(pen, params)
    assert any(float(g.abs().max()) > 0 for g in grads)

    with torch.no_grad():
        h = net.layers[0](net.encoder(x.reshape(16, 6)))  # the layer's current, before the norm
    L = 2**T
    bn = net.norms[0]

    def parts(w, b):
        z = F.batch_norm(h, None, None, w, b, training=True, eps=bn.eps)
        r = torch.relu(z).reshape(16, -1, BLOCK)
        return r

    w0, b0 = bn.weight.detach().clone(), bn.bias.detach().clone()
    r0 = parts(w0, b0)
    span0 = r0.amax(-1, keepdim=True).clamp_min(1e-12)
    u0 = L * r0 / span0 - 0.5
    code0 = torch.floor((r0 / span0) * L).clamp(0, L - 1)
    bits = torch.stack([(code0.long() >> s) & 1 for s in range(T)]).double()
    frac0 = float(bits.mean())
    sur0 = float((code0 / (L - 1)).mean())

    grid0 = float((r0 / span0).mean())

    def penalty_fixed(w, b):
        r = parts(w, b)
        if surrogate == "code":
            u = L * r / span0 - 0.5
            q = u + (code0 - u0)  # the rounding residual held fixed
            a = (q / (L - 1)).mean() + (frac0 - sur0)
        else:
            a = (r / r.amax(-1, keepdim=True)).mean() + (frac0 - grid0)
        return (a - P) ** 2

    assert float(penalty_fixed(w0, b0)) == pytest.approx(float(pen), abs=1e-12)
    eps = 1e-6
    for p0, g, which in ((w0, grads[0], "w"), (b0, grads[1], "b")):
        fd = torch.zeros_like(p0)
        for j in range(p0.numel()):
            d = torch.zeros_like(p0)
            d[j] = eps
            if which == "w":
                fd[j] = (penalty_fixed(w0 + d, b0) - penalty_fixed(w0 - d, b0)) / (2 * eps)
            else:
                fd[j] = (penalty_fixed(w0, b0 + d) - penalty_fixed(w0, b0 - d)) / (2 * eps)
        torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-9)


def test_floor_top_neuron_of_each_block_fires_every_step():
    net = _net()
    reg = ActivityRegularizer(net, target=0.0, weight=1.0)
    net(_x())
    code = reg._codes["neurons.0"]
    q = code.q.detach().reshape(16, -1, BLOCK)
    top = q.amax(-1)
    assert bool(((top == 2**T - 1) | (top == 0)).all())  # max neuron: all bits, or block silent
    fl = activity_floor(code)
    assert fl == pytest.approx(float((top > 0).double().sum(-1).mean()) / 8)
    assert float(reg.activity()["neurons.0"]) >= fl - 1e-12


def test_training_with_fit_lowers_activity():
    import tbnn

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    acts = {}
    for W in (0.0, 100.0):
        net = build_model(ModelConfig(in_features=6, n_classes=3, hidden=32, layers=1,
                                      timesteps=4, block=None))
        reg = ActivityRegularizer(net, target=0.0, weight=W, surrogate="grid")
        tbnn.fit(net, (x, y), epochs=10, lr=1e-2, batch=32, seed=0, loss=reg, progress=False)
        net.eval()
        with torch.no_grad():
            net(x)
        acts[W] = float(reg.activity()["neurons.0"])
    assert acts[100.0] < 0.75 * acts[0.0]


@pytest.mark.parametrize("kw, match", [
    (dict(target=1.5, weight=1.0), "target"),
    (dict(target=0.1, weight=-1.0), "weight"),
    (dict(target=0.1, weight=float("nan")), "weight"),
    (dict(target=0.1, weight=1.0, surrogate="popcount"), "surrogate"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        ActivityRegularizer(_net(), **kw)


def test_model_without_hidden_neurons():
    with pytest.raises(ValueError, match="hidden TemporalBinary"):
        ActivityRegularizer(torch.nn.Linear(3, 2), target=0.1, weight=1.0)
    reg = ActivityRegularizer(_net(), 0.1, 1.0)
    with pytest.raises(ValueError, match="forward"):
        reg.penalty()


def test_train_and_cli_with_rate_target(tmp_path):
    from tbnn.cli import main
    from tbnn.train.trainer import train

    kw = dict(epochs=1, n_train=128, n_test=64, progress=False, hidden=32)
    m = train("digits", "tbn", rate_target=0.05, rate_weight=10.0, **kw)
    assert set(m["fraction_active"]) == {"neurons.0", "neurons.1"}
    assert all(0 <= v <= 1 for v in m["fraction_active"].values())
    with pytest.raises(ValueError, match="rate_weight needs rate_target"):
        train("digits", "tbn", rate_weight=1.0, **kw)
    with pytest.raises(ValueError, match="rate_target needs a temporal binary model"):
        train("digits", "float", rate_target=0.05, rate_weight=1.0, **kw)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--n-train", "128",
                 "--n-test", "64", "--hidden", "32", "--rate-target", "0.05", "--rate-weight", "10",
                 "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["rate_target"] == 0.05 and cfg["train"]["rate_weight"] == 10.0
    assert "fraction_active" in json.loads((out / "metrics.json").read_text())
    assert main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--rate-target", "2",
                 "--rate-weight", "1", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()
