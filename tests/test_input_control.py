"""The input encoder's grid headroom and its rate controller (tbnn.nn.neurons, tbnn.nn.homeostasis)."""

import json
import math

import numpy as np
import pytest
import torch

import tbnn
from tbnn.nn.homeostasis import STEP, step_headroom
from tbnn.nn.models import ModelConfig, build_model
from tbnn.nn.neurons import TemporalBinary
from tbnn.nn.regularize import ActivityRegularizer

SMALL = dict(n_train=300, n_test=100, lr=3e-3, progress=False, hidden=32)


def _ridge(x: np.ndarray, q: np.ndarray, lam: float) -> tuple[float, float]:
    """min 1/(2N) ||a q + b - x||^2 + lam/2 a^2, by a direct least-squares solve (float64)."""
    n = len(x)
    A = np.vstack([np.column_stack([q, np.ones(n)]) / math.sqrt(n), [math.sqrt(lam), 0.0]])
    sol, *_ = np.linalg.lstsq(A, np.append(x / math.sqrt(n), 0.0), rcond=None)
    return float(sol[0]), float(sol[1])


@pytest.mark.parametrize("g", [1.0, 1.37, 2.0])
def test_headroom_codes_and_readout_against_a_recount_and_a_direct_solve(g):
    torch.manual_seed(0)
    x = torch.randn(6, 40) * 3 + 1  # blocks of 16: two whole and one ragged of 8
    enc = TemporalBinary(4, grid="minmax", block=16, headroom=g)
    code = enc(x)
    q = code.q.detach().reshape(6, 40)
    xd = x.double().numpy()
    for b in range(6):
        for lo_i in range(0, 40, 16):
            xs = xd[b, lo_i:lo_i + 16]
            lo, hi = xs.min(), xs.max()
            want = np.minimum(np.floor(16 * (xs - lo) / (g * (hi - lo))), 15)
            assert np.array_equal(q[b, lo_i:lo_i + 16].numpy(), want)  # the widened grid's codes, recounted
            a, c = _ridge(xs, want, enc.lam)  # the read-out is the ridge fit on x itself
            assert float(code.gain[b, lo_i // 16, 0]) == pytest.approx(a, rel=1e-5)
            assert float(code.offset[b, lo_i // 16, 0]) == pytest.approx(c, rel=1e-5, abs=1e-5)
    assert int(q.max()) == min(math.floor(16 / g), 15)  # the top of the data sits at v = 1/g
    plain = TemporalBinary(4, grid="minmax", block=16)(x)
    if g == 1.0:  # no headroom: the plain minmax grid's codes
        assert torch.equal(plain.q, code.q)
    else:  # the top of the grid fires fewer spikes
        assert float(code.spikes.float().mean()) < float(plain.spikes.float().mean())
    fired = enc.fire(x)  # integrate-and-fire (compiled where it runs) gives the same code and read-out
    assert torch.equal(fired.spikes, code.spikes) and torch.equal(fired.gain, code.gain)
    assert torch.equal(fired.offset, code.offset)


def test_a_model_with_headroom_counts_the_encoder_spikes_it_fires():
    # exactness in simulation: tests/test_homeostasis.py's CONFIGS run a model with input_headroom
    torch.manual_seed(0)
    net = build_model(ModelConfig(hidden=48, block=16, input_headroom=1.37, hidden_grid="running")).eval()
    assert float(net.encoder.headroom) == pytest.approx(1.37) and "headroom=1.37" in repr(net.encoder)
    x = torch.rand(40, 64) * 16
    s = tbnn.simulate(net, x)
    with torch.no_grad():  # the input's spikes, recounted from the closed form, are what the simulation counted
        assert s.summary["layers"][0]["spikes"] == int(net.encoder(x).spikes.sum())
    assert s.summary["max_logit_difference"] == 0.0


def test_input_controller_reaches_its_target_on_a_fixed_input():
    # no learning: the headroom alone must bring the encoder's recounted spikes to Q
    torch.manual_seed(0)
    net = build_model(ModelConfig(hidden=32, block=16, input_headroom=1.0, adaptive_threshold="layer"))
    x = torch.rand(256, 64) ** 0.5 * 16  # bright inputs: many at the top of the grid
    net.eval()
    with torch.no_grad():
        start = float(net.encoder(x).spikes.float().mean())
    reg = ActivityRegularizer(net, 0.05, input_target=0.25, step=0.05, multiplier_step=0.0)
    for _ in range(200):
        net.train()
        net(x[torch.randint(0, 256, (64,))])
        reg.update()
    net.eval()
    with torch.no_grad():
        rate = float(net.encoder(x).spikes.double().mean())
    assert start > 0.4 and rate == pytest.approx(0.25, rel=0.15)
    assert float(net.encoder.headroom) > 1.2
    reg.remove()
    assert not net.encoder._forward_hooks


def test_input_controller_state_anneals_resumes_and_refuses():
    torch.manual_seed(0)
    net = build_model(ModelConfig(hidden=32, block=16, input_headroom=1.0, adaptive_threshold="layer"))
    x, y = torch.rand(64, 64) * 16, torch.randint(0, 10, (64,))
    reg = ActivityRegularizer(net, 0.05, input_target=0.1, total_steps=100)
    net.train()
    reg(net(x), y)  # the first step: the annealing starts from the encoder's own rate
    A0 = reg.input_start_rate
    assert A0 is not None and A0 > 0.1 and reg.current_input_target() < A0
    assert reg.state_dict()["input_start_rate"] == A0
    other = ActivityRegularizer(net, 0.05, input_target=0.1, total_steps=100)
    other.load_state_dict(reg.state_dict())
    assert other.input_start_rate == A0 and other.current_input_target() == reg.current_input_target()
    with pytest.raises(ValueError, match="input_start_rate"):
        other.load_state_dict({**reg.state_dict(), "input_start_rate": -1.0})
    old = {k: v for k, v in reg.state_dict().items() if k != "input_start_rate"}  # saved before the option
    other.load_state_dict(old)
    assert other.input_start_rate is None and other.current_input_target() == 0.1
    plain = build_model(ModelConfig(hidden=32, block=16, adaptive_threshold="layer"))
    with pytest.raises(ValueError, match=r"input_target .* headroom=1\) .*input_headroom=1"):
        ActivityRegularizer(plain, 0.05, input_target=0.1)
    with pytest.raises(ValueError, match="input_target must be a fraction"):
        ActivityRegularizer(net, 0.05, input_target=2.0)
    with pytest.raises(ValueError, match="encoder must be built with a headroom"):
        step_headroom(plain.encoder, 0.3, 0.1, STEP)
    for r in (reg, other):
        r.remove()


@pytest.mark.parametrize("kw,match", [
    (dict(grid="rectify", headroom=1.5), "headroom needs the minmax grid"),
    (dict(grid="minmax", headroom=0.5), "headroom must be a finite number >= 1"),
    (dict(grid="minmax", headroom=float("nan")), "headroom must be a finite number >= 1"),
    (dict(grid="minmax", headroom=True), "headroom must be a finite number >= 1"),
])
def test_headroom_refusals(kw, match):
    with pytest.raises(ValueError, match=match):
        TemporalBinary(4, **kw)


def test_model_config_and_fit_refusals():
    from tbnn.train.trainer import fit

    with pytest.raises(ValueError, match="input_headroom must be a finite number >= 1"):
        ModelConfig(input_headroom=0.9)
    with pytest.raises(ValueError, match="input_headroom needs a temporal binary model"):
        ModelConfig(model="float", input_headroom=1.0)
    old = ModelConfig().to_dict()
    old.pop("input_headroom")
    assert ModelConfig.from_dict(old) == ModelConfig()  # configs written before the field load
    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=32, input_headroom=1.0))
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    with pytest.raises(ValueError, match="input_rate_target needs rate_target"):
        fit(net, (x, y), epochs=1, progress=False, input_rate_target=0.2)


def test_train_with_an_input_target_resumes_bit_identically_and_simulates_exactly(tmp_path):
    from safetensors.torch import load_file

    from tbnn.train.trainer import train

    kw = dict(epochs=2, seed=1, rate_target=0.05, input_rate_target=0.2, **SMALL)
    ref = train("digits", "tbn", tmp_path / "ref", **kw)
    rc = ref["rate_control"]
    assert rc["input_target"] == 0.2 and rc["input_headroom"] > 1.0  # digits start near 32 % active: widened
    cfg = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert cfg["model"]["input_headroom"] == 1.0 and cfg["train"]["input_rate_target"] == 0.2
    w = load_file(str(tmp_path / "ref" / "model.safetensors"))
    assert float(w["encoder.headroom"]) == pytest.approx(rc["input_headroom"])
    with pytest.raises(KeyboardInterrupt):
        train("digits", "tbn", tmp_path / "cut", _interrupt_at=(1, 2), **kw)
    train("digits", "tbn", tmp_path / "cut", resume=True, **kw)
    wc = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(w[k], wc[k]) for k in w)  # the headroom and the annealing's start resume too
    from tbnn.cli import main

    assert main(["simulate", str(tmp_path / "ref"), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    sim = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert sim["max_logit_difference"] == 0.0 and sim["forward_agreement"] == 1.0


def test_cli_input_rate_target_flag(tmp_path, capsys):
    from tbnn.cli import main

    base = ["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--n-train", "128", "--n-test", "64",
            "--hidden", "32", "--quiet"]
    assert main(base + ["--rate-target", "0.05", "--input-rate-target", "0.2", "--input-headroom", "1.2",
                        "--out", str(tmp_path / "run")]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["input_headroom"] == 1.2 and cfg["train"]["input_rate_target"] == 0.2
    assert main(base + ["--input-rate-target", "0.2", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "--input-rate-target needs --rate-target" in err and "Traceback" not in err
    for flags, named in ((["--rate-target", "1.5"], "--rate-target must be a fraction"),
                         (["--rate-target", "0.05", "--input-rate-target", "-0.1"], "--input-rate-target must be a fraction")):
        assert main(base + flags + ["--out", str(tmp_path / "bad")]) == 2
        assert named in capsys.readouterr().err  # the flag, not the regulariser's parameter
    assert not (tmp_path / "bad").exists()
