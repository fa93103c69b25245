"""The 1-bit gap ablation: ``first_layer_bits`` in the model and the CLI, and ``simulations/bit_gap.py``."""

from __future__ import annotations

import json

import pytest
import torch

from scriptutil import load_script, png_ok
from tbnn.cli import main as cli_main
from tbnn.engine.integer import weight_codes
from tbnn.nn.models import ModelConfig, TBNet, weight_storage_bits
from tbnn.sim.simulator import simulate

bit_gap = load_script("simulations/bit_gap.py")


def _net(**kw) -> TBNet:
    torch.manual_seed(0)
    return TBNet(ModelConfig(in_features=40, hidden=256, layers=2, **kw))


def test_first_layer_bits_changes_only_the_first_layers_codes_and_storage():
    base, wide = _net(), _net(first_layer_bits=8)
    # the same parameters: the width changes the quantizer, not the initialisation
    sb, sw = base.state_dict(), wide.state_dict()
    assert sb.keys() == sw.keys() and all(torch.equal(sb[k], sw[k]) for k in sb)
    assert [m.weight_bits for m in [*wide.layers, wide.readout]] == [8, 1, 1]
    q_base = [weight_codes(m).q for m in [*base.layers, base.readout]]
    q_wide = [weight_codes(m).q for m in [*wide.layers, wide.readout]]
    assert torch.equal(q_base[1], q_wide[1]) and torch.equal(q_base[2], q_wide[2])
    assert set(q_base[0].unique().tolist()) == {0.0, 1.0}
    levels = q_wide[0].unique()
    assert 2 < len(levels) <= 256 and bool((levels == levels.round()).all())
    # storage: only the first layer's codes widen, by (8 - 1) bits x 40 inputs x 256 outputs
    delta = weight_storage_bits(wide)["total"] - weight_storage_bits(base)["total"]
    assert delta == 7 * 40 * 256 == bit_gap.first_layer_storage_delta(40, 256)
    assert bit_gap.layer_storage(wide)[1:] == bit_gap.layer_storage(base)[1:]
    # per layer, against the closed form: codes + gain and offset (2 x 32 bits) per output + 32-bit bias
    def closed(n_in, n_out, b):
        return b * n_in * n_out + 2 * 32 * n_out + 32 * n_out

    assert bit_gap.layer_storage(base) == [closed(40, 256, 1), closed(256, 256, 1), closed(256, 10, 1)]
    assert bit_gap.layer_storage(wide)[0] == closed(40, 256, 8)
    assert bit_gap.setting_storage("first8") == bit_gap.layer_storage(wide)
    bn = 2 * 4 * 256 * 32  # two BatchNorms: weight, bias, running mean and variance in float32
    assert sum(bit_gap.layer_storage(base)) + bn == weight_storage_bits(base)["total"]
    # None keeps the old behaviour (the first layer follows weight_bits)
    assert [m.weight_bits for m in _net(weight_bits=2).layers] == [2, 2]
    assert _net(model="float", first_layer_bits=8).layers[0].weight_bits is None


def test_first_layer_bits_is_validated_and_round_trips():
    with pytest.raises(ValueError, match="first_layer_bits"):
        ModelConfig(first_layer_bits=5)
    cfg = ModelConfig(first_layer_bits=1.5)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # a config written before the field existed still loads (the first layer follows weight_bits)
    old = ModelConfig().to_dict()
    old.pop("first_layer_bits")
    assert ModelConfig.from_dict(old).first_layer_bits is None


def test_wider_first_layer_simulates_exactly_and_ops_recount():
    net = _net(first_layer_bits=8).eval()
    x = torch.randn(12, 40)
    res = simulate(net, x, schedule="folded")
    assert res.summary["forward_agreement"] == 1.0
    assert res.summary["max_logit_difference"] < 1e-4
    # independent recount: every input spike reaches the 256 synapses of the first layer
    layers = {L["name"]: L for L in res.summary["layers"]}
    assert layers["input"]["synaptic_ops"] == pytest.approx(float(res.spikes["input"].sum()) * 256)
    costs = bit_gap.op_costs(res.summary, [8, 1, 1])
    per = costs["synaptic_ops_per_layer"]
    assert costs["bit_ops_per_sample"] == pytest.approx(8 * per["input"] + per["hidden1"] + per["hidden2"])


def test_gap_shares_pair_seeds_and_skip_a_zero_gap():
    def r(d):
        return [{"seed": s, "tail_accuracy": v} for s, v in d.items()]

    runs = {"base": r({0: 0.60, 1: 0.50, 2: 0.7}), "float": r({0: 0.80, 1: 0.70, 2: 0.7}),
            "x": r({0: 0.70, 1: 0.65, 3: 0.9})}
    s = bit_gap.gap_shares(runs)["x"]
    assert s["seeds"] == [0, 1]  # seed 3 has no reference
    assert s["share"] == pytest.approx([0.5, 0.75]) and s["share_mean"] == pytest.approx(0.625)
    assert s["share_std"] == pytest.approx(0.125) and s["gain_mean"] == pytest.approx(0.125)
    assert bit_gap.gap_shares({"base": r({2: 0.7}), "float": r({2: 0.7}), "x": r({2: 0.8})})["x"]["share"] == [None]


def test_cli_first_layer_bits(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["train", "--dataset", "synthetic", "--model", "tbn", "--epochs", "1", "--n-train", "64",
                     "--n-test", "32", "--hidden", "16", "--first-layer-bits", "4", "--out", str(out),
                     "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["first_layer_bits"] == 4
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert cli_main(["train", "--dataset", "synthetic", "--model", "tbn", "--first-layer-bits", "5",
                     "--out", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err  # one sentence, as for --weight-bits (it names the config field)
    assert "--first-layer-bits must be one of" in err and err.count("\n") == 1 and not bad.exists()


def test_bit_gap_quick_makes_table_and_figure_and_resumes(tmp_path):
    res = bit_gap.main(["--quick", "--out", str(tmp_path), "--no-progress", "--only", "base,first8,float"])
    assert res["complete"] and res["runs_done"] == 3
    rows = {r["key"]: r for r in res["rows"]}
    assert list(rows) == ["base", "first8", "float"]
    assert rows["base"]["layer_bits"] == [1, 1, 1] and rows["first8"]["layer_bits"] == [8, 1, 1]
    assert rows["first8"]["weight_storage_bits"] - rows["base"]["weight_storage_bits"] == 7 * 40 * 256
    assert rows["first8"]["layer_storage_bits"][1:] == rows["base"]["layer_storage_bits"][1:]
    assert rows["base"]["forward_agreement"] == rows["first8"]["forward_agreement"] == 1.0
    assert rows["float"]["share"] == [pytest.approx(1.0)] or rows["float"]["share"] == [None]
    md = (tmp_path / "bit_gap.md").read_text()
    assert "first-layer weights 8-bit" in md and "## Verdict" in md and "partial" not in md
    png_ok(tmp_path / "bit_gap.png")
    saved = json.loads((tmp_path / "bit_gap.json").read_text())
    # --resume keeps the finished runs (not retrained: the same histories) and adds the new setting
    res2 = bit_gap.main(["--quick", "--out", str(tmp_path), "--no-progress", "--resume", "--only", "readout8"])
    assert [r["key"] for r in res2["rows"]] == ["base", "first8", "readout8", "float"]
    assert res2["runs"]["base"] == saved["runs"]["base"]
    assert res2["rows"][2]["layer_bits"] == [1, 1, 8]
    # --merge folds a grid run elsewhere (e.g. a second process with --reverse) into --out, training nothing
    res3 = bit_gap.main(["--quick", "--out", str(tmp_path / "merged"), "--no-progress", "--merge", str(tmp_path)])
    assert res3["runs"] == res2["runs"] and res3["table_markdown"] == res2["table_markdown"]
    with pytest.raises(SystemExit) as exc:  # a grid of other settings is refused, nothing written
        bit_gap.main(["--quick", "--seeds", "2", "--out", str(tmp_path / "m2"), "--merge", str(tmp_path)])
    assert exc.value.code == 2 and not (tmp_path / "m2" / "bit_gap.json").exists()


def test_script_docstring_examples_run():
    import doctest

    failed, tried = doctest.testmod(bit_gap, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failed == 0


def test_replot_of_the_committed_grid_is_clean(tmp_path, monkeypatch):
    """The committed full grid redraws without training; labelled axes, no overlapping text."""
    import shutil

    from figcheck import check_figure
    from scriptutil import ROOT

    shutil.copy(ROOT / "figures" / "bit_gap.json", tmp_path / "bit_gap.json")
    checked = []
    original = bit_gap.common.save_figure

    def checking_save(fig, out, name, *a, **k):
        check_figure(fig)
        checked.append(name)
        return original(fig, out, name, *a, **k)

    monkeypatch.setattr(bit_gap.common, "save_figure", checking_save)
    res = bit_gap.main(["--replot", "--out", str(tmp_path)])
    assert checked == ["bit_gap.png"] and res["complete"] and res["runs_done"] == 24
    png_ok(tmp_path / "bit_gap.png")
    shares = {r["key"]: r["share_mean"] for r in res["rows"]}
    assert shares["float"] == pytest.approx(1.0)
