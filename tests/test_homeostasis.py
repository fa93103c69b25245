"""Homeostatic rate control, the running grid, the spikes-only read-out and the analog count."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tbnn
from tbnn.core.quant import block_scale, pooled_fit
from tbnn.nn.homeostasis import ANNEAL, EPS, STEP, STEP_SCHEDULE, annealed_target, cooled_step, step_threshold
from tbnn.nn.multiplier import MULTIPLIER_LEAK, MULTIPLIER_STEP, step_multiplier
from tbnn.nn.models import ModelConfig, build_model
from tbnn.nn.neurons import TemporalBinary
from tbnn.nn.readout import calibrate_readout, spikes_only
from tbnn.nn.regularize import ActivityRegularizer

SMALL = dict(n_train=300, n_test=100, lr=3e-3, progress=False, hidden=32)


def test_step_is_the_clipped_relative_error_times_the_spread():
    n = TemporalBinary(4, adaptive_threshold="neuron", features=3)
    a = torch.tensor([0.0, 0.012, 0.5])
    s = torch.tensor([1.0, 2.0, 3.0])
    d = step_threshold(n, a, 0.01, s)
    want = [STEP * 1.0 * -0.01 / (0.01 + EPS), STEP * 2.0 * 0.002 / (0.01 + EPS), STEP * 3.0 * 1.0]
    assert d.tolist() == pytest.approx(want, rel=1e-6)
    assert n.threshold.tolist() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="adaptive_threshold"):
        step_threshold(TemporalBinary(4), 0.1, 0.01, 1.0)
    with pytest.raises(ValueError, match="adaptive_threshold must be one of"):
        TemporalBinary(4, adaptive_threshold="cell")
    with pytest.raises(ValueError, match="features"):
        TemporalBinary(4, adaptive_threshold="neuron")


def test_multiplier_is_projected_dual_ascent_on_the_clipped_relative_error():
    P = 0.02
    for lam, a in [(0.0, 0.5), (0.3, 0.025), (0.3, 0.01), (0.003, 0.0)]:
        err = min(1.0, max(-1.0, (a - P) / (P + EPS)))
        want = max(0.0, (1 - MULTIPLIER_LEAK) * lam + MULTIPLIER_STEP * err)
        assert step_multiplier(lam, a, P) == pytest.approx(want, abs=1e-15)
        assert step_multiplier(lam, a, P, leak=0.0) == pytest.approx(max(0.0, lam + MULTIPLIER_STEP * err), abs=1e-15)
    assert step_multiplier(0.003, 0.0, P) == 0.0  # projected: never negative
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        step_multiplier(-1.0, 0.1, P)


def test_lagrangian_term_is_added_to_the_loss_and_carries_the_surrogate_gradient():
    torch.manual_seed(0)
    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32, block=16, adaptive_threshold="layer"))
    reg = ActivityRegularizer(net, 0.05)
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    net.train()
    reg(net(x), y)  # first step: the multipliers start at 0 and rise (about 20 % active > 5 %)
    assert all(v == MULTIPLIER_STEP for v in reg.multipliers.values())
    logits = net(x)
    acts = {k: float(v.detach()) for k, v in reg.activity().items()}
    loss = reg(logits, y)
    want = sum(MULTIPLIER_STEP * (a - 0.05) / (0.05 + EPS) for a in acts.values())
    assert float((loss - torch.nn.functional.cross_entropy(logits, y)).detach()) == pytest.approx(want, rel=1e-5)
    # the term's gradient reaches the weights feeding the hidden neurons (the surrogate of step_activity)
    net.zero_grad()
    reg.lagrangian().backward()
    assert float(net.layers[0].weight.grad.abs().sum()) > 0
    # state round trip, and refusals naming the argument
    state = reg.state_dict()
    other = ActivityRegularizer(net, 0.05)
    other.load_state_dict(state)
    assert other.multipliers == reg.multipliers
    with pytest.raises(ValueError, match="multipliers of layers"):
        other.load_state_dict({"multipliers": {"x": 1.0}})
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        other.load_state_dict({"multipliers": {k: -1.0 for k in state["multipliers"]}})
    with pytest.raises(ValueError, match="multiplier_step must be a finite number >= 0"):
        ActivityRegularizer(net, 0.05, multiplier_step=-0.1)
    alone = ActivityRegularizer(net, 0.05, multiplier_step=0)  # thresholds alone
    assert alone.multipliers == {} and alone.state_dict()["multipliers"] == {}
    for r in (reg, other, alone):
        r.remove()


def test_multiplier_leaks_a_share_per_step():
    P = 0.02
    assert step_multiplier(1.0, P, P, leak=0.1) == pytest.approx(0.9, abs=1e-15)  # on target: only the leak
    err = (0.5 - P) / (P + EPS)
    assert step_multiplier(1.0, 0.5, P, leak=0.1) == pytest.approx(0.9 + MULTIPLIER_STEP * min(1.0, err), abs=1e-15)
    # bounded: a violation held forever brings lambda to eta / rho, not beyond
    lam = 0.0
    for _ in range(3000):
        lam = step_multiplier(lam, 0.5, P, leak=0.01)
    assert lam == pytest.approx(MULTIPLIER_STEP / 0.01, rel=1e-6)


def test_threshold_step_cools_with_the_cosine_over_the_training_steps(monkeypatch):
    """The controller's step t uses η_t = cooled_step(η, t, n): η at the first step, η/2 half-way,
    0 at the end; η throughout without n or with "constant"."""
    import math

    from tbnn.nn import regularize

    assert [cooled_step(0.01, t, 8) for t in (0, 4, 8, 12)] == [0.01, 0.01 * (0.5 * (1 + math.cos(math.pi / 2))),
                                                                 0.0, 0.0]
    assert cooled_step(0.01, 5, None) == cooled_step(0.01, 5, 8, "constant") == 0.01
    with pytest.raises(ValueError, match="schedule must be one of cosine, constant"):
        cooled_step(0.01, 0, 8, "linear")
    etas: list[float] = []
    real = regularize.step_threshold
    monkeypatch.setattr(regularize, "step_threshold", lambda n, a, g, s, step: etas.append(step) or real(n, a, g, s, step))
    torch.manual_seed(0)
    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32, block=16, adaptive_threshold="layer"))
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    net.train()
    for schedule, n in (("cosine", 6), ("constant", 6), ("cosine", None)):
        etas.clear()
        reg = ActivityRegularizer(net, 0.01, total_steps=n, step_schedule=schedule)
        for _ in range(6):
            reg(net(x), y)
        assert etas == [cooled_step(STEP, t, n, schedule) for t in range(6) for _ in range(2)]  # two layers a step
        reg.remove()
    assert etas == [STEP] * 12
    with pytest.raises(ValueError, match="step_schedule must be one of cosine, constant"):
        ActivityRegularizer(net, 0.01, step_schedule="linear")


def test_target_is_annealed_from_the_first_activity_and_resumes():
    torch.manual_seed(0)
    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32, block=16, adaptive_threshold="layer"))
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    reg = ActivityRegularizer(net, 0.01, total_steps=20)
    assert reg.anneal == ANNEAL and reg.current_target() == 0.01  # before the first step: P
    net.train()
    goals = []
    for t in range(14):
        logits = net(x)
        first = sum(float(a.detach()) for a in reg.activity().values()) / 2
        reg(logits, y)
        if t == 0:
            assert reg.start_rate == pytest.approx(first)  # the activity of the first step
        goals.append(reg.current_target())
    tau = ANNEAL * 20
    assert goals == [annealed_target(0.01, reg.start_rate, t + 1, tau) for t in range(14)]
    assert goals[0] > 0.1 and goals[-1] == 0.01 and goals == sorted(goals, reverse=True)
    # the state carries the schedule: a resumed regulariser chases the same target
    other = ActivityRegularizer(net, 0.01, total_steps=20)
    state = reg.state_dict()
    state["steps"] = 3
    other.load_state_dict(state)
    assert other.current_target() == annealed_target(0.01, reg.start_rate, 3, tau) > 0.01
    other.load_state_dict({"multipliers": state["multipliers"]})  # saved before the annealing: P
    assert other.current_target() == 0.01
    with pytest.raises(ValueError, match="steps must be an integer"):
        other.load_state_dict(dict(state, steps=-1))
    with pytest.raises(ValueError, match="anneal must be a share"):
        ActivityRegularizer(net, 0.01, anneal=1.5)
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        ActivityRegularizer(net, 0.01, total_steps=0)
    with pytest.raises(ValueError, match="multiplier_leak must be a share"):
        ActivityRegularizer(net, 0.01, multiplier_leak=1.0)
    fixed = ActivityRegularizer(net, 0.01, anneal=0, total_steps=20)  # anneal=0: P from the start
    net(x)
    fixed(net(x), y)
    assert fixed.current_target() == 0.01
    for r in (reg, other, fixed):
        r.remove()


@pytest.mark.parametrize("kind,target", [("layer", 0.05), ("neuron", 0.01)])
def test_controller_reaches_the_target_on_a_fixed_input(kind, target):
    # no learning: the controller alone must bring the recounted spikes to P
    torch.manual_seed(0)
    F = 32
    neuron = TemporalBinary(4, grid="running", block=16, adaptive_threshold=kind, features=F)
    model = torch.nn.Sequential(torch.nn.Identity(), neuron)
    reg = ActivityRegularizer(model, target, step=0.05)  # 5 x the default: the same fixed point, sooner
    scale = torch.linspace(0.5, 2.0, F)  # neurons of different spread: one step size for all
    for _ in range(250):
        model.train()
        model(torch.randn(128, F) * scale + 0.3)
        reg.update()
    model.eval()
    with torch.no_grad():
        code = model(torch.randn(4096, F) * scale + 0.3)
    rate = float(code.spikes.double().mean())
    assert rate == pytest.approx(target, rel=0.15)  # the issue asks for ±20 %
    if kind == "neuron":  # every neuron near P: none silent, none saturated
        per = code.spikes.double().mean((0, 1))
        assert float(per.min()) > target / 3 and float(per.max()) < 3 * target
    reg.remove()


def test_running_grid_lets_a_whole_block_be_silent():
    x = torch.tensor([[0.1, 0.2, 0.05, 0.24, 5.0, 1.0, 2.0, 4.0]])  # 0.24 / 4 < 1 / 16
    rect = TemporalBinary(4, block=4)(x)
    assert int(rect.spikes[:, 0, :4].sum(0).max()) == 4  # the block maximum fires every step
    run = TemporalBinary(4, grid="running", block=4).eval()
    run.running_scale.fill_(4.0)
    code = run(x)
    assert int(code.spikes[:, 0, :4].sum()) == 0  # nothing in the first block fires
    # codes are min(floor(16 * clip(x / 4, 0, 1)), 15) for the second block: a direct recount
    want = [min(int(np.floor(16 * min(v / 4.0, 1.0))), 15) for v in (5.0, 1.0, 2.0, 4.0)]
    assert code.q[0, 4:].tolist() == want
    # the read-out is in the units of x: the ridge fit of relu(x) on q, then scaled back
    xs = torch.tensor([5.0, 1.0, 2.0, 4.0]) / 4.0
    q = torch.tensor(want, dtype=torch.float32)
    a = ((q - q.mean()) * (xs - xs.mean())).mean() / (q.var(unbiased=False) + 0.01)
    assert float(code.gain[0, 1, 0]) == pytest.approx(4.0 * float(a), rel=1e-5)


def test_running_scale_is_an_average_of_block_maxima():
    x = torch.tensor([[1.0, 3.0, -1.0, 0.0], [2.0, 0.0, 5.0, 1.0]])
    assert float(block_scale(x, 2)) == pytest.approx((3 + 0 + 2 + 5) / 4)
    n = TemporalBinary(4, grid="running", block=2, momentum=0.5).train()
    n(x)
    assert float(n.running_scale) == pytest.approx(0.5 * 1.0 + 0.5 * 2.5)


def test_pooled_fit_is_least_squares_over_samples_and_block():
    torch.manual_seed(1)
    q = torch.randint(0, 16, (20, 10)).float()
    t = 0.3 * q + 0.1 * torch.randn(20, 10) + 2.0
    g, c = pooled_fit(t, q, 4, 0.0)
    for b, sl in enumerate([slice(0, 4), slice(4, 8), slice(8, 10)]):
        slope, icpt = np.polyfit(q[:, sl].numpy().ravel(), t[:, sl].numpy().ravel(), 1)
        assert float(g[b]) == pytest.approx(slope, rel=1e-4) and float(c[b]) == pytest.approx(icpt, rel=1e-4)


CONFIGS = [
    dict(hidden_grid="running"),
    dict(hidden_grid="running", readout="running", adaptive_threshold="neuron"),
    dict(readout="running", adaptive_threshold="layer"),
    dict(arch="cnn", image_shape=(8, 8), hidden_grid="running", readout="running", adaptive_threshold="neuron"),
    dict(input_encoding="latency", hidden_grid="running"),
    dict(input_headroom=1.37, hidden_grid="running"),  # the input encoder's widened grid (test_input_control)
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_simulation_is_exact_and_counts_the_analog_values(kw):
    torch.manual_seed(0)
    net = build_model(ModelConfig(hidden=48, block=16, channels=4, **kw))
    x = torch.randn(40, 64)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(3):  # running statistics and thresholds away from their initial values
        net.train()
        loss = torch.nn.functional.cross_entropy(net(x), torch.randint(0, 10, (40,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n in net.neurons:
        if n.adaptive_threshold:
            n.threshold.copy_(0.5 * torch.rand_like(n.threshold))
    net.eval()
    with torch.no_grad():
        ref = net(x)
    for mode in ("step", "folded"):
        s = tbnn.simulate(net, x, schedule=mode)
        assert torch.equal(s.logits, ref), mode
        assert s.summary["max_logit_difference"] == 0.0 and s.summary["forward_agreement"] == 1.0
        # analog values: a gain and an offset per block and sample, unless the read-out is fixed
        blocks = [-(-lay["neurons"] // 16) for lay in s.summary["layers"]]
        want = 0 if kw.get("readout") == "running" else 2 * sum(blocks)
        assert s.summary["analog_values_per_sample"] == want
        assert s.summary["energy_proxy"]["analog_values_per_inference"] == want
        assert sum(lay["analog_values_per_sample"] for lay in s.summary["layers"]) == want


def test_spikes_only_fits_constants_and_counts_no_analog_value():
    torch.manual_seed(0)
    net = build_model(ModelConfig(hidden=32, layers=1, block=16)).eval()
    x = torch.randn(200, 64)
    fits = calibrate_readout(net, x, batch=64)
    # the encoder (first layer) fitted on all of x at once, by least squares per block: a recount
    code = net.encoder(x)
    g, c = pooled_fit(code.target.double(), code.q.double(), 16, net.encoder.lam)
    assert torch.allclose(fits[id(net.encoder)][0].double(), g, rtol=1e-5)
    assert torch.allclose(fits[id(net.encoder)][1].double(), c, rtol=1e-5, atol=1e-6)
    with spikes_only(net, x, batch=64):
        s = tbnn.simulate(net, x)
        assert s.summary["analog_values_per_sample"] == 0 and s.summary["max_logit_difference"] == 0.0
        with torch.no_grad():
            fixed = net(x)
    assert all(n.fixed_readout is None for n in (net.encoder, *net.neurons))
    with torch.no_grad():
        assert not torch.equal(fixed, net(x))
    assert tbnn.simulate(net, x).summary["analog_values_per_sample"] == 2 * (4 + 2)
    with pytest.raises(ValueError, match="at least one sample"):
        calibrate_readout(net, x[:0])


def test_rate_target_alone_trains_resumes_bit_identically_and_records_the_controller(tmp_path):
    from tbnn.train.trainer import train

    kw = dict(epochs=2, seed=1, rate_target=0.05, **SMALL)
    ref = train("digits", "tbn", tmp_path / "ref", **kw)
    assert set(ref["fraction_active"]) == {"neurons.0", "neurons.1"}
    rc = ref["rate_control"]
    assert rc["target"] == 0.05 and rc["step"] == STEP and rc["multiplier_step"] == MULTIPLIER_STEP
    assert rc["anneal"] == ANNEAL and rc["total_steps"] == 2 * 5 and rc["multiplier_leak"] == MULTIPLIER_LEAK
    assert rc["step_schedule"] == STEP_SCHEDULE == "cosine"
    assert all(v > 0 for v in rc["thresholds"].values())  # started at 20 %: raised
    assert all(v > 0 for v in rc["multipliers"].values())  # above the target: the multipliers rose
    cfg = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert cfg["model"]["adaptive_threshold"] == "layer"
    assert cfg["train"]["rate_target"] == 0.05 and cfg["train"]["rate_weight"] is None
    w = load_file(str(tmp_path / "ref" / "model.safetensors"))
    assert w["neurons.0.threshold"].shape == () and float(w["neurons.0.threshold"]) > 0
    # interrupted after epoch 1: the checkpoint holds the thresholds (buffers) and the multipliers
    with pytest.raises(KeyboardInterrupt):
        train("digits", "tbn", tmp_path / "cut", _interrupt_at=(1, 2), **kw)
    from tbnn.io.checkpoint.tensors import read_header
    saved = json.loads(read_header(tmp_path / "cut" / "checkpoint.safetensors", "t")[1]["state"])["meta"]
    assert set(saved["rate_control"]["multipliers"]) == {"neurons.0", "neurons.1"}
    assert all(v > 0 for v in saved["rate_control"]["multipliers"].values())
    cut = train("digits", "tbn", tmp_path / "cut", resume=True, **kw)
    wc = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(w[k], wc[k]) for k in w)
    assert cut["rate_control"]["multipliers"] == rc["multipliers"]  # bit for bit (exact floats)


def test_fit_rate_target_and_refusals():
    from tbnn.train.trainer import fit

    torch.manual_seed(0)
    x, y = torch.randn(128, 16), torch.randint(0, 3, (128,))
    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32, adaptive_threshold="layer"))
    fit(net, (x, y), epochs=2, batch=32, progress=False, rate_target=0.05)
    assert float(net.neurons[0].threshold) > 0
    assert not net.neurons[0]._forward_hooks  # the controller's hooks are gone
    plain = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32))
    with pytest.raises(ValueError, match="adaptive_threshold"):
        fit(plain, (x, y), epochs=1, progress=False, rate_target=0.05)
    with pytest.raises(ValueError, match="target must be a fraction"):
        fit(net, (x, y), epochs=1, progress=False, rate_target=1.5)
    with pytest.raises(ValueError, match="hidden_grid must be one of"):
        ModelConfig(hidden_grid="max")
    old = ModelConfig().to_dict()
    for k in ("hidden_grid", "readout", "adaptive_threshold", "input_encoding"):
        old.pop(k)
    assert ModelConfig.from_dict(old) == ModelConfig()  # configs written before these fields load


def test_cli_flags(tmp_path, capsys):
    from tbnn.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--n-train", "128", "--n-test", "64",
                 "--hidden", "32", "--rate-target", "0.05", "--hidden-grid", "running", "--readout", "running",
                 "--input-encoding", "latency", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())["model"]
    assert (cfg["hidden_grid"], cfg["readout"], cfg["input_encoding"], cfg["adaptive_threshold"]) == (
        "running", "running", "latency", "layer")
    assert main(["simulate", str(out), "--out", str(tmp_path / "sim"), "--quiet", "--limit", "20"]) == 0
    sim = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert sim["analog_values_per_sample"] == 0 and sim["max_logit_difference"] == 0.0
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "digits", "--model", "tbn", "--hidden-grid", "max", "--out", str(tmp_path / "bad")])
    assert "--hidden-grid" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
