"""The results-table, STE-vs-DAT and lambda-sweep experiments run end to end (``--quick``).

Each script runs into a temporary folder; the tests check the fields of the JSON it writes,
the Markdown table and that its PNG is a small PNG. Accuracies of these tiny runs are not
asserted (the full runs report them); speed is printed, never asserted. Also covers the
helpers of ``simulations/common.py``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from scriptutil import load_script, png_ok

ROOT = Path(__file__).resolve().parents[1]


_load = load_script
_png_ok = png_ok


def _acc_ok(v) -> None:
    assert v is None or 0.0 <= v <= 1.0


# ---------------------------------------------------------------------------------------
# common.py


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(ROOT / "simulations"))
    return _load("simulations/common.py")


def test_common_table_and_numbers(common):
    t = common.format_table(["model", "acc"], [["tbn", 0.98123], ["float", float("nan")]])
    lines = t.splitlines()
    assert lines[0].startswith("| model") and lines[1].startswith("| -----")
    assert "0.9812" in t and "n/a" in t
    assert len({len(l) for l in lines}) == 1  # padded: reads as plain text too
    with pytest.raises(ValueError, match="every row"):
        common.format_table(["a", "b"], [[1]])
    m, s = common.mean_std([0.5, None, float("nan"), 1.0])
    assert m == pytest.approx(0.75) and s == pytest.approx(0.25)
    assert math.isnan(common.mean_std([None])[0])
    assert common.fmt_pm([0.98, 0.96]) == "97.0 ± 1.0"
    assert common.fmt_pm([]) == "n/a"


def test_common_writers(common, tmp_path):
    import numpy as np

    p = common.write_json(tmp_path / "sub", "x.json", {"a": float("inf"), "b": np.float32(0.5), "c": [np.int64(3)]})
    assert json.loads(p.read_text()) == {"a": None, "b": 0.5, "c": [3]}
    assert common.write_text(tmp_path, "t.md", "hi").read_text() == "hi\n"
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    _png_ok(common.save_figure(fig, tmp_path, "f.png"))
    p = common.make_parser("x")
    args = common.parse_args(p, ["--quick", "--out", str(tmp_path / "o"), "--no-progress"])
    assert args.quick and args.out.is_dir() and not args.progress
    assert common.run_info(args)["quick"] is True
    with pytest.raises(SystemExit):
        common.parse_args(common.make_parser("x"), ["--threads", "0", "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------
# the scripts


def test_results_table_quick(tmp_path):
    mod = _load("simulations/results_table.py")
    res = mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "results_table.json").read_text())
    assert data["settings"]["recipe"]["epochs"] == 2 and data["settings"]["seeds"] == [0]
    assert data["settings"]["model"]["weight_bits"] == 1
    keys = {(r["dataset"], r["arch"], r["model"]) for r in data["rows"]}
    for kind in ("tbn", "ste", "float", "lif"):
        assert ("digits", "mlp", kind) in keys and ("mnist1d", "mlp", kind) in keys
    assert {("mnist1d", "cnn", "tbn"), ("mnist1d", "cnn", "float")} <= keys
    for r in data["rows"]:
        assert r["timesteps"] == (25 if r["model"] == "lif" else 4)
        _acc_ok(r["test_accuracy_mean"])
        assert r["test_accuracy_std"] >= 0 and r["seconds_per_epoch"] > 0
        assert r["weight_storage_bits"] > 0 and len(r["runs"]) == 1
        assert len(r["runs"][0]["history"]) == 2
    bits = {(r["dataset"], r["arch"], r["model"]): r["weight_storage_bits"] for r in data["rows"]}
    assert bits[("digits", "mlp", "tbn")] < bits[("digits", "mlp", "float")] / 8  # 1-bit weights
    assert {t["target"] for t in data["targets"]} >= {"digits TBN MLP >= 98.0 %", "mnist1d TBN CNN >= 90 %"}
    assert all(isinstance(t["met"], bool) for t in data["targets"])
    # every TBN row names its read-out; each dataset / arch has a trained spikes-only TBN row
    ro = {(r["dataset"], r["arch"], r["model"], r["readout"]): r for r in data["rows"]}
    for ds, arch in (("digits", "mlp"), ("mnist1d", "mlp"), ("mnist1d", "cnn")):
        per, spk = ro[(ds, arch, "tbn", "sample")], ro[(ds, arch, "tbn", "running")]
        assert (per["readout_label"], spk["readout_label"]) == ("per-sample", "spikes-only (trained)")
        assert len(per["spikes_only_posthoc"]) == 1 and "spikes_only_posthoc" not in spk
        _acc_ok(per["spikes_only_posthoc"][0])
    pairs = {(p["dataset"], p["arch"]): p for p in data["paired_readout"]}
    p = pairs[("digits", "mlp")]
    spk_run, per_run = ro[("digits", "mlp", "tbn", "running")]["runs"][0], ro[("digits", "mlp", "tbn", "sample")]["runs"][0]
    assert p["seeds"] == [0] and abs(p["diff_final"][0] - (spk_run["test_accuracy"] - per_run["test_accuracy"])) < 1e-12
    names = {t["target"] for t in data["targets"]}
    assert {"digits TBN MLP trained spikes-only within 1 point of per-sample",
            "mnist1d TBN CNN trained spikes-only within 5 points of per-sample"} <= names
    md = (tmp_path / "results_table.md").read_text()
    assert "| dataset" in md and "## Targets" in md and "spikes-only (trained)" in md and "--readout running" in md
    _png_ok(tmp_path / "results_table.png")
    assert len(res["rows"]) == len(data["rows"])
    assert ro[("mnist1d", "cnn", "tbn", "running")]["model_settings"] == {"readout": "running", "hidden_grid": "running"}
    assert "--hidden-grid running" in md

    # --resume trains only the rows whose settings changed: here one seed of the CNN spikes-only row
    stale = next(r for r in data["rows"] if (r["dataset"], r["arch"], r["readout"]) == ("mnist1d", "cnn", "running"))
    stale["model_settings"] = {"readout": "running"}  # as the rows were before the running grid
    (tmp_path / "results_table.json").write_text(json.dumps(data))
    trained = []
    real = mod._train
    mod._train = lambda ds, arch, model, seed, *a, **k: trained.append((ds, arch, model, k.get("readout"))) or real(
        ds, arch, model, seed, *a, **k)
    try:
        again = mod.main(["--quick", "--out", str(tmp_path), "--no-progress", "--resume"])
    finally:
        mod._train = real
    assert trained == [("mnist1d", "cnn", "tbn", "running")]
    kept = {(r["dataset"], r["arch"], r["model"], r["readout"]): r["runs"] for r in again["rows"]}
    assert kept[("digits", "mlp", "tbn", "sample")] == ro[("digits", "mlp", "tbn", "sample")]["runs"]
    # a truncated table: --resume refuses in one sentence and leaves the file as it was
    (tmp_path / "results_table.json").write_text('{"settings": {')
    with pytest.raises(SystemExit, match="--resume: .* is not valid JSON"):
        mod.main(["--quick", "--out", str(tmp_path), "--no-progress", "--resume"])
    assert (tmp_path / "results_table.json").read_text() == '{"settings": {'


def test_results_table_tune_quick(tmp_path):
    mod = _load("simulations/results_table.py")
    mod.main(["--quick", "--tune", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "tbn_recipe_tuning.json").read_text())
    assert len(data["results"]) == 2
    assert data["results"][1]["config"]["readout_bits"] is None
    for r in data["results"]:
        _acc_ok(r["test_accuracy_mean"])
    assert (tmp_path / "tbn_recipe_tuning.md").exists()


def test_ste_vs_dat_quick(tmp_path):
    mod = _load("simulations/ste_vs_dat.py")
    mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "ste_vs_dat.json").read_text())
    s = data["settings"]
    assert s["mlp_model"]["timesteps"] == 1 and s["mlp_model"]["weight_bits"] == 1
    summ = data["mlp"]["summary"]
    assert {(r["dataset"], r["method"]) for r in summ} == {(d, m) for d in ("digits", "mnist1d") for m in ("dat", "ste")}
    for r in summ:
        assert 0 <= r["diverged"] <= r["seeds"] == 2
        for a in r["test_accuracy"]:
            _acc_ok(a)
    for r in data["mlp"]["runs"]:
        assert isinstance(r["diverged"], bool) and r["initial_loss"] > 0
        assert len(r["loss_curve"]) == 2 or r["nan"]
    lm = data["lm"]
    assert lm["corpus"]["chars"] > 10_000 and lm["corpus"]["vocab"] > 20
    assert {r["method"] for r in lm["summary"]} == {"float", "dat", "ste"}
    for r in lm["runs"]:
        assert r["val_steps"][0] == 0 and len(r["val_loss"]) == len(r["val_steps"])
        assert r["nan_at_step"] is not None or len(r["train_loss"]) == s["lm"]["steps"]
        assert isinstance(r["diverged"], bool)
    _png_ok(tmp_path / "ste_vs_dat.png")
    assert "| dataset" in (tmp_path / "ste_vs_dat.md").read_text()


def test_stdlib_corpus_is_deterministic():
    mod = _load("simulations/ste_vs_dat.py")
    a, b = mod.stdlib_corpus(20_000), mod.stdlib_corpus(20_000)
    assert a == b and len(a) == 20_000
    assert all(32 <= ord(c) < 127 or c == "\n" for c in a)


def test_lm_quantizes_every_linear():
    """Every Linear of the 1-bit transformer fake-quantizes: its output takes few values per input."""
    import torch

    mod = _load("simulations/ste_vs_dat.py")
    cfg = dict(mod.LM, d_model=16, heads=2, blocks=1, context=8)
    net = mod._build_lm(11, cfg, "dat")
    lin = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin) == 5  # qkv, proj, fc1, fc2, head
    layer = lin[0]
    x = torch.randn(3, 16)
    with torch.no_grad():
        y = layer(x) - layer.bias
    # 1-bit weights (2 values per row) times 1-bit activations (2 values per row): y is affine in
    # the code product, so it differs from the float product
    assert not torch.allclose(y, x @ layer.weight.T, atol=1e-3)
    out = net(torch.randint(0, 11, (2, 8)))
    assert out.shape == (2, 8, 11) and torch.isfinite(out).all()


def test_lambda_sweep_quick(tmp_path):
    mod = _load("simulations/lambda_sweep.py")
    mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "lambda_sweep.json").read_text())
    assert data["settings"]["lams"][0] == 0.0 and data["settings"]["timesteps"] == [4, 1]
    rows = data["rows"]
    assert {(r["timesteps"], r["lam"]) for r in rows} == {(T, l) for T in (4, 1) for l in (0.0, 0.01, 10.0)}
    for r in rows:
        _acc_ok(r["test_accuracy_mean"])
        assert r["nan"] == 0  # tbnn guards constant blocks: no NaN even at lam = 0
        assert 0.0 <= r["hidden_shrink"] <= 1.0 and 0.0 <= r["weight_shrink"] <= 1.0
        assert 0.0 <= r["constant_blocks"] <= 1.0
    by = {(r["timesteps"], r["lam"]): r for r in rows}
    for T in (4, 1):  # the ridge shrinks the read-out gains more as lam grows; none at lam = 0
        assert by[(T, 0.0)]["weight_shrink"] == pytest.approx(1.0)
        assert by[(T, 10.0)]["weight_shrink"] < by[(T, 0.01)]["weight_shrink"] < 1.0
    _png_ok(tmp_path / "lambda_sweep.png")
    assert "| " in (tmp_path / "lambda_sweep.md").read_text()


def test_block_var_matches_torch():
    import torch

    mod = _load("simulations/lambda_sweep.py")
    q = torch.arange(10.0).reshape(1, 10) % 3
    v = mod.block_var(q, 4)  # blocks of 4, 4, 2
    want = torch.stack([q[0, :4].var(unbiased=False), q[0, 4:8].var(unbiased=False), q[0, 8:].var(unbiased=False)])
    assert torch.allclose(v[0], want)
    assert torch.allclose(mod.block_var(q, None)[0, 0], q.var(unbiased=False))
