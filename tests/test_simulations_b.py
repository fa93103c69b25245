"""The precision x time and TBN-vs-LIF experiments and the simulator benchmark run end to end.

Each script runs with ``--quick`` into a temporary folder; the tests check the fields of
the JSON it writes and that its PNG is a small PNG. Speed is printed, never asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scriptutil import load_script, png_ok

ROOT = Path(__file__).resolve().parents[1]


_load = load_script
_png_ok = png_ok


def test_precision_time_quick(tmp_path):
    mod = _load("simulations/precision_time.py")
    res = mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "precision_time.json").read_text())
    assert data["results"] and len(data["results"]) == len(res["results"])
    for r in data["results"]:
        for key in ("T", "weight_bits", "sparsity", "accuracy", "forward_agreement", "spikes", "synaptic_ops",
                    "effective_synaptic_ops", "bit_ops", "weight_storage_bits", "label"):
            assert key in r, key
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["forward_agreement"] == 1.0  # the simulator agrees with the training forward pass
        assert r["synaptic_ops"] > 0 and r["spikes"] > 0
        # pruned synapses do no work; affine codes have no zero weights
        if r["sparsity"] == "2:4":
            assert r["effective_synaptic_ops"] < 0.75 * r["synaptic_ops"]
        else:
            assert r["effective_synaptic_ops"] == pytest.approx(r["synaptic_ops"])
        assert r["bit_ops"] == pytest.approx(r["effective_synaptic_ops"] * r["code_bits"])
    assert {r["sparsity"] for r in data["results"]} == {"dense", "2:4"}
    assert data["frontier"]["synaptic_ops"] and data["frontier"]["bit_ops"]
    # more time steps, more spikes
    by_t = {}
    for r in data["results"]:
        by_t.setdefault(r["T"], []).append(r["spikes"])
    ts = sorted(by_t)
    assert min(by_t[ts[-1]]) > max(by_t[ts[0]])
    _png_ok(tmp_path / "precision_time.png")
    assert "| T" in (tmp_path / "precision_time.md").read_text()


def test_pareto_frontier():
    mod = _load("simulations/precision_time.py")
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9)]
    assert mod.pareto(pts) == [0, 2, 4]


def test_tbn_vs_lif_quick(tmp_path):
    mod = _load("simulations/tbn_vs_lif.py")
    mod.main(["--quick", "--out", str(tmp_path), "--no-progress", "--lif-t", "4", "8"])
    data = json.loads((tmp_path / "tbn_vs_lif.json").read_text())
    names = [r["name"] for r in data["results"]]
    assert names == ["tbn_T4", "tbn_T4_spikes_only", "lif_T4", "lif_T8"]
    for r in data["results"]:
        for key in ("model", "T", "sim_accuracy", "test_accuracy", "seconds_per_epoch", "spikes", "synaptic_ops",
                    "samples_per_second", "forward_agreement", "weight_storage_bits"):
            assert key in r, key
        assert r["forward_agreement"] == 1.0
        assert r["seconds_per_epoch"] > 0 and r["synaptic_ops"] > 0
        assert all(v > 0 for v in r["samples_per_second"].values())
    tbn, spk = data["results"][0], data["results"][1]
    assert set(tbn["samples_per_second"]) == {"step", "folded"}
    # the per-sample read-out sends analog values beside the spikes; trained spikes-only and LIF none
    assert (tbn["readout"], spk["readout"]) == ("sample", "running")
    assert tbn["analog_values"] > 0 and spk["analog_values"] == 0
    assert all(r["analog_values"] == 0 for r in data["results"] if r["model"] == "lif")
    assert "matched_summary" in data and "git" in data["info"]  # the checkout's commit (+dirty)
    lif = {r["T"]: r for r in data["results"] if r["model"] == "lif"}
    assert lif[8]["spikes"] > lif[4]["spikes"]  # the rate code spends spikes with T
    assert tbn["weight_storage_bits"] < lif[4]["weight_storage_bits"] / 5
    _png_ok(tmp_path / "tbn_vs_lif.png")


def test_bench_sim_quick(tmp_path):
    mod = _load("benchmarks/bench_sim.py")
    res = mod.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bench_sim.json").read_text())
    assert (tmp_path / "bench_sim.md").exists()
    sps = data["samples_per_second"]
    for k in ("tbn_step", "tbn_folded", "snn_T4", "snn_T25", "float", "tbn_step_f32"):
        assert sps[k] > 0 and math.isfinite(sps[k]), k
    for k in ("step_vs_snn_matched", "step_vs_folded", "float_vs_step"):
        assert data["ratios"][k] > 0
    # the engines compute the same network: step, folded and float32-forced products agree exactly
    assert data["agreement_with_step"]["tbn_folded"] == 1.0
    assert data["agreement_with_step"]["tbn_step_f32"] == 1.0
    from tbnn.engine import precision  # the benchmark reports the engine's own choice, decided from CPU features

    assert data["engine_arithmetic"]["reason"] == precision.arithmetic("cpu")["reason"]
    if mod.spikingjelly_available():  # the second anchor, on the same trained lif weights
        for t in (4, 25):
            assert sps[f"sj_T{t}"] > 0 and data["ratios"][f"step_vs_sj_T{t}"] > 0
            assert abs(data["accuracy"][f"sj_T{t}"] - data["accuracy"][f"snn_T{t}"]) < 0.25
    assert data["accuracy"]["tbn_step"] == data["accuracy"]["tbn_folded"]
    assert data["profile_step"] and data["step_breakdown_ms"]["total"] > 0
    assert data["weight_storage_bits"]["tbn"]["total"] < data["weight_storage_bits"]["float"]["total"]
    assert set(data["memory"]) >= {"tbn_step", "tbn_folded", "float"}
    assert res["config"]["quick"] is True


def test_packed_product_is_exact():
    import torch

    mod = _load("benchmarks/bench_sim.py")
    g = torch.Generator().manual_seed(1)
    s = torch.rand(7, 130, generator=g) < 0.3
    q = torch.rand(5, 130, generator=g) < 0.5
    out = mod.packed_and_popcount(mod.pack_bits(s), mod.pack_bits(q))
    assert torch.equal(out, (s.long() @ q.long().t()))
