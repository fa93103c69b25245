"""simulations/lm_quantized.py: the quantized character transformer of issue 23."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scriptutil import load_script, png_ok


@pytest.fixture(scope="module")
def mod():
    return load_script("simulations/lm_quantized.py")


def test_quick_grid_resumes_run_by_run(mod, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    base = ["--quick", "--runs", str(runs), "--out", str(out), "--no-progress"]
    first = mod.main(base + ["--max-runs", "3"])
    assert first["trained_now"] == 3 and first["runs_finished"] == 3
    # priority order: the float lr sweep comes first
    names = sorted(p.name for p in runs.glob("*.json"))
    assert len(names) == 3 and sum(n.startswith("float_") for n in names) == len(mod.QUICK_LRS)
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    full = mod.main(base)
    assert full["trained_now"] == full["runs_planned"] - 3 and full["runs_finished"] == full["runs_planned"]
    assert full["pending"] == []
    stamps = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    again = mod.main(base)
    assert again["trained_now"] == 0  # a rerun trains nothing new
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == stamps

    loaded = mod.load_runs(runs, "quick-cpu")
    for r in loaded:
        if r["spec"]["setting"] == "A1W1":
            # DAT, STE and BitNet all train to a finite loss below the untrained model's
            assert r["nan_at_step"] is None and math.isfinite(r["final_val_loss"])
            assert r["final_val_loss"] < r["initial_val_loss"]
            assert 0 <= r["code_change_per_100_steps"] <= 1
        assert r["corpus"]["sha256"] == loaded[0]["corpus"]["sha256"] and r["corpus"]["val_docs"] > 0
        assert set(r["spikes"]) == {"0.05", "0.1", "0.2"}
        assert r["grad_norm"]["p50"] <= r["grad_norm"]["p99"] <= r["grad_norm"]["max"]
    # the dependent settings run at the lrs the finished runs pick
    f_lr = min(mod.QUICK_LRS, key=lambda lr: next(r["final_val_loss"] for r in loaded
                                                  if r["spec"]["setting"] == "float" and r["spec"]["lr"] == lr))
    assert {r["spec"]["lr"] for r in loaded if r["spec"]["setting"] in ("A4W1", "A4W1+2:4", "A8W1.58")} == {f_lr}
    dat = {r["spec"]["lr"]: r["final_val_loss"] for r in loaded
           if r["spec"]["method"] == "dat" and r["spec"]["setting"] == "A1W1" and r["spec"]["lam"] == 0.01}
    assert {r["spec"]["lr"] for r in loaded if r["spec"]["lam"] in (0.0, 0.1)} == {min(dat, key=dat.get)}
    assert {(r["spec"]["setting"], r["spec"]["method"]) for r in loaded} >= {
        ("A1W1", "bitnet"), ("A8W1.58", "bitnet"), ("A4W1+2:4", "dat"), ("A4W1+2:4", "ste")}

    saved = json.loads((out / "lm_quantized_quick.json").read_text())
    assert saved["runs_finished"] == len(loaded) and len(saved["summary"]) >= 10
    md = (out / "lm_quantized_quick.md").read_text()
    assert f"{len(loaded)} of {len(loaded)} runs finished" in md and "| setting" in md
    png_ok(out / "lm_quantized_quick.png", max_bytes=400_000)
    from PIL import Image

    assert "lm_quantized.py --quick" in Image.open(out / "lm_quantized_quick.png").info["Description"]


def test_bitnet_quantizers_take_the_stated_values(mod):
    torch.manual_seed(0)
    w = (torch.randn(16, 64) * 0.05 + 0.01).requires_grad_()
    g = w.detach().abs().mean()
    t = mod.bitnet_b158_weight(w)
    assert set(torch.unique(torch.round(t.detach() / g, decimals=4)).tolist()) <= {-1.0, 0.0, 1.0}
    b = mod.bitnet1_weight(w)
    assert torch.allclose(b.detach().abs(), g.expand_as(b), rtol=1e-5, atol=1e-8)
    # the sign is taken around the mean of W (Wang et al. 2023)
    assert torch.equal(b.detach() > 0, w.detach() - w.detach().mean() >= 0)
    (t.sum() + b.sum()).backward()
    assert torch.equal(w.grad, torch.full_like(w, 2.0))  # straight-through

    x = (torch.randn(3, 5, 40) * 1.5).requires_grad_()
    s = mod.sign_act(x)
    k = x.detach().abs().mean(-1, keepdim=True)
    assert torch.allclose(s.detach().abs(), k.expand_as(x))
    assert torch.equal(s.detach() > 0, x.detach() >= 0)
    s.sum().backward()
    assert torch.equal(x.grad, (x.detach().abs() <= 1).float())  # clipped straight-through

    y = torch.randn(4, 7, 256) * 3
    q = mod.absmax8_act(y)
    eta = y.abs().amax(-1, keepdim=True)
    steps = q / eta * 127
    assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3
    assert (q - y).abs().max() <= (eta / 254).max() * 1.001


def test_every_linear_is_quantized_alike(mod):
    torch.manual_seed(0)
    model = dict(d_model=32, heads=2, blocks=2, context=8)
    for setting, method in (("A1W1", "dat"), ("A1W1", "ste"), ("A1W1", "bitnet"), ("A8W1.58", "bitnet")):
        net = mod.build_model(11, model, setting, method, 0.01)
        assert len(net.quantized) == 4 * model["blocks"] + 1  # qkv, proj, fc1, fc2 per block; head
        assert len([m for m in net.modules() if isinstance(m, torch.nn.Linear)]) == len(net.quantized)
        lin = net.quantized[0]
        x = torch.randn(4, 32)
        with torch.no_grad():
            assert not torch.allclose(lin(x), x @ lin.weight.T, atol=1e-4)
    with pytest.raises(ValueError, match="bitnet"):
        mod.build_model(11, model, "A4W1", "bitnet", 0.01)


def test_one_run_is_deterministic(mod):
    corpus = mod.build_corpus(("stdlib",), mod.QUICK_FILES)
    spec = {"setting": "A1W1", "method": "dat", "lr": 1e-2, "seed": 3, "lam": 0.01}
    train = dict(mod.QUICK_TRAIN, steps=6, eval_every=3)
    a = mod.train_one(corpus, spec, mod.QUICK_MODEL, train)
    b = mod.train_one(corpus, spec, mod.QUICK_MODEL, train)
    assert a["val_loss"] == b["val_loss"] and a["val_steps"] == [0, 3, 6]


def test_spikes_count_rises_above_the_running_minimum(mod):
    curve = [3.0, 2.5, 2.56, 2.69, 2.5, 2.45, 2.9, None, 5.0]
    assert [mod.spikes(curve, t) for t in (0.05, 0.1, 0.2)] == [2, 2, 1]


def test_gpu_size_preset_runs_on_cpu(mod, tmp_path):
    res = mod.main(["--quick", "--gpu-size", "--device", "cpu", "--runs", str(tmp_path / "r"),
                    "--out", str(tmp_path), "--no-progress"])
    runs = mod.load_runs(tmp_path / "r", "quick-gpu")
    assert res["trained_now"] == 4 and len(runs) == 4
    for r in runs:
        assert r["model"] == mod.GPU_MODEL and r["unconverged"] and r["steps_done"] == 3
        assert math.isfinite(r["final_val_loss"])
    assert {r["spec"]["method"] for r in runs} == {"dat", "ste", "bitnet", "float"}


def test_length_check_trains_float_alone_and_says_whether_it_flattened(mod, tmp_path, capsys):
    r = mod.main(["--quick", "--length-check", "10", "--runs", str(tmp_path / "r"), "--out", str(tmp_path),
                  "--no-progress"])
    saved = json.loads((tmp_path / "r" / "length" / "float_10.json").read_text())
    assert saved["spec"]["method"] == "float" and saved["steps_done"] == 10 == saved["train"]["steps"]
    assert saved["rel_improvement_last_20pct"] == r["rel_improvement_last_20pct"]
    assert mod.load_runs(tmp_path / "r", "quick-cpu") == []  # not a grid run
    out = capsys.readouterr().out
    assert "10 steps: final val loss" in out and ("not flattened" in out) == (r["rel_improvement_last_20pct"] >= 0.01)


def test_bad_arguments_name_the_flag(mod, tmp_path, capsys):
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--max-runs", "-1", "--out", str(tmp_path)])
    assert "--max-runs" in capsys.readouterr().err


def test_an_interrupted_grid_keeps_its_finished_runs(mod, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    base = ["--quick", "--runs", str(runs), "--out", str(tmp_path), "--no-progress"]
    real, calls = mod.train_one, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed in the middle of the second run
        return real(*a, **k)

    monkeypatch.setattr(mod, "train_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mod.main(base)
    monkeypatch.setattr(mod, "train_one", real)
    assert [p.name for p in runs.iterdir()] == [mod.run_id(mod.plan([], mod.QUICK_LRS, mod.QUICK_SEEDS, 0.01)[0]) + ".json"]
    res = mod.main(base + ["--max-runs", "1"])  # resumes with the second run of the plan
    assert res["trained_now"] == 1 and res["runs_finished"] == 2
