"""Spiking inference: agreement with the trained model, counts, and refused input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tbnn.cli import main
from tbnn.engine.integer import step_current
from tbnn.sim.simulator import simulate_run
from tbnn.io.spikes import load_spikes
from tbnn.train.trainer import train


def test_step_mode_agrees_with_trained_model(tiny_run, tiny_sim):
    run, metrics = tiny_run
    _, s = tiny_sim
    assert s["forward_agreement"] == 1.0
    assert s["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert s["max_logit_difference"] == 0.0  # integer-code arithmetic: bit for bit
    for key in ("accuracy", "forward_agreement", "samples", "timesteps", "spikes_per_sample",
                "synaptic_ops_per_sample", "samples_per_second", "layers", "weight_storage_bits"):
        assert key in s
    assert [layer["name"] for layer in s["layers"]] == ["input", "hidden1", "hidden2"]


def test_folded_mode_agrees_and_matches_step(tiny_run, tiny_sim, tmp_path):
    run, metrics = tiny_run
    folded = simulate_run(run, tmp_path / "f", schedule="folded", progress=False)
    assert folded["forward_agreement"] == 1.0 and folded["max_logit_difference"] == 0.0
    assert folded["accuracy"] == pytest.approx(metrics["test_accuracy"])
    a, b = load_spikes(tiny_sim[0] / "spikes.npz"), load_spikes(tmp_path / "f" / "spikes.npz")
    for name in a.layers:
        assert np.array_equal(a.layers[name], b.layers[name])


def test_agreement_where_float_rounding_once_flipped_a_prediction(tmp_path):
    # T = 1, 1-bit weights, seed 2: with float32 summation one hidden neuron sat on a grid
    # threshold and sample 305 flipped; the integer-code evaluation removes that
    run = tmp_path / "t1"
    m = train("digits", "tbn", run, epochs=15, seed=2, timesteps=1, progress=False)
    s = simulate_run(run, None, progress=False)
    assert s["forward_agreement"] == 1.0 and s["max_logit_difference"] == 0.0
    assert s["accuracy"] == m["test_accuracy"]


def test_spike_counts_in_archive_match_summary(tiny_sim):
    out, s = tiny_sim
    rec = load_spikes(out / "spikes.npz")
    on_disk = json.loads((out / "simulation.json").read_text())
    total = 0
    for layer in on_disk["layers"]:
        arr = rec.layers[layer["name"]]
        assert arr.dtype == bool and arr.shape[1] == s["timesteps"] and arr.shape[2] == layer["neurons"]
        assert int(arr.sum()) == layer["spikes"]
        total += layer["spikes"]
    assert on_disk["spikes_per_sample"] == pytest.approx(total / s["samples"])
    assert np.array_equal(rec.predictions, rec.predictions.astype(int))


def test_synaptic_ops_by_hand_on_a_toy_network(tmp_path):
    # synthetic: 20 inputs -> 3 hidden -> 4 classes, T = 2
    run = tmp_path / "toy"
    train("synthetic", "tbn", run, epochs=1, hidden=3, layers=1, timesteps=2, n_train=64, n_test=16,
          progress=False)
    s = simulate_run(run, tmp_path / "sim", progress=False)
    rec = load_spikes(tmp_path / "sim" / "spikes.npz")
    expected = rec.layers["input"].sum() * 3 + rec.layers["hidden1"].sum() * 4  # spikes x fan-out
    assert s["synaptic_ops_per_sample"] * s["samples"] == pytest.approx(float(expected))
    assert s["layers"][0]["fanout"] == 3 and s["layers"][1]["fanout"] == 4


def test_step_current_equals_layer_forward():
    from tbnn.nn.layers import TBConv1d, TBLinear
    from tbnn.nn.neurons import TemporalBinary

    torch.manual_seed(0)
    for layer, x in ((TBLinear(40, 7, weight_bits=2), torch.randn(5, 40)),
                     (TBConv1d(3, 4, 5, stride=2, padding=2), torch.randn(5, 3, 12))):
        code = TemporalBinary(3, block=16)(x)
        with torch.no_grad():
            assert torch.allclose(step_current(layer, code), layer(code), atol=1e-4)


def test_lif_runs_simulate(tmp_path):
    run = tmp_path / "lif"
    metrics = train("digits", "lif", run, epochs=1, hidden=32, timesteps=5, n_train=200, n_test=50,
                    progress=False)
    s = simulate_run(run, tmp_path / "sim", progress=False)
    assert s["forward_agreement"] == 1.0
    assert s["accuracy"] == pytest.approx(metrics["test_accuracy"])
    rec = load_spikes(tmp_path / "sim" / "spikes.npz")
    assert rec.layers["hidden1"].shape == (50, 5, 32)


def test_cli_simulate_and_refusals(tiny_run, tmp_path, capsys):
    run = tiny_run[0]
    assert main(["simulate", str(run), "--limit", "20", "--out", str(tmp_path / "ok"), "--quiet"]) == 0
    assert json.loads((tmp_path / "ok" / "simulation.json").read_text())["samples"] == 20
    capsys.readouterr()

    def refused(argv, needle, target):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err, err
        assert not target.exists()

    refused(["simulate", str(run), "--limit", "0", "--out", str(tmp_path / "a")], "limit must be", tmp_path / "a")
    refused(["simulate", str(tmp_path / "nope"), "--out", str(tmp_path / "b")], "does not exist", tmp_path / "b")

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[:100])
    refused(["simulate", str(bad), "--out", str(tmp_path / "c")], "truncated", tmp_path / "c")

    (bad / "model.safetensors").write_bytes(data)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"]["hidden"] = 32  # config and tensors disagree
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["simulate", str(bad), "--out", str(tmp_path / "d")], "fails its checksum", tmp_path / "d")
    cfg.pop("sha256")  # a current-format config without its checksum is refused
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["simulate", str(bad), "--out", str(tmp_path / "d")], "has format_version 2 but no sha256 field",
            tmp_path / "d")

    (bad / "config.json").write_text('{"hello": 1}')  # a foreign config
    refused(["simulate", str(bad), "--out", str(tmp_path / "e")], "not a tbnn run config", tmp_path / "e")


def test_synaptic_ops_over_batches_equal_a_recount_by_nonzero_weight_codes():
    """Counts tallied over many batches (the session sums each reading's input spikes and makes the
    operations at the end) equal a recount from the recorded spikes: each spike of input ``i``
    reaches the weights of its column that exist (M:N pruning removes the others; synaptic ops) or
    every output (dense ops)."""
    import tbnn
    from tbnn.engine import weight_codes

    torch.manual_seed(3)
    net = torch.nn.Sequential(tbnn.TemporalBinary(3, block=8, grid="minmax"), tbnn.TBLinear(12, 6, weight_bits=2,
                                                                                       sparsity="2:4"),
                              tbnn.TemporalBinary(3, block=8), tbnn.TBLinear(6, 4, weight_bits=1)).eval()
    res = tbnn.simulate(net, torch.randn(70, 12), batch=16)  # five batches, the last one short
    layers = {d["name"]: d for d in res.summary["layers"]}
    for (name, spikes), lin in zip(res.spikes.items(), (net[1], net[3])):
        per_input = torch.as_tensor(spikes).reshape(-1, spikes.shape[-1]).sum(0).to(torch.float64)  # [F]
        exist = weight_codes(lin).exists.reshape(lin.out_features, -1).sum(0).to(torch.float64)
        assert layers[name]["synaptic_ops"] == float(per_input @ exist)
        assert layers[name]["dense_synaptic_ops"] == float(per_input.sum() * lin.out_features)
        assert layers[name]["spikes"] == int(per_input.sum())
    assert layers["0"]["synaptic_ops"] < layers["0"]["dense_synaptic_ops"]  # 2:4 pruning: half the synapses
