"""Public names that went out of use or were renamed still work, and warn with a
DeprecationWarning that names the replacement."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tbnn.io import checkpoint
from tbnn.parallel import distributed as ddp
from tbnn.train import trainer

# --------------------------------------------------------------------------- dead code


def test_train_fields_warns_and_still_answers():
    with pytest.warns(DeprecationWarning, match=r"train_fields is deprecated; use \[f.name for f in dataclasses.fields"):
        names = trainer.train_fields()
    assert names == [f.name for f in dataclasses.fields(trainer.TrainConfig)]


def test_save_state_warns_and_still_writes_a_readable_state(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    gen = torch.Generator().manual_seed(3)
    with pytest.warns(DeprecationWarning, match="save_state is deprecated; use tbnn.io.checkpoint.save_checkpoint"):
        checkpoint.save_state(tmp_path, 2, opt, sched, gen, [], 1.5)
    meta = checkpoint.load_state(tmp_path, opt, sched, torch.Generator())
    assert meta["epoch"] == 2 and meta["train_seconds"] == 1.5


def test_shard_data_warns_and_keeps_data_whole_in_one_process():
    from tbnn.io.userdata import TrainingData

    data = TrainingData(tensors=(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.warns(DeprecationWarning, match="shard_data is deprecated; use tbnn.parallel.distributed.shard_range"):
        assert ddp.shard_data(data) == (data, False)


def test_cli_uses_the_one_table_of_flag_names(monkeypatch, tmp_path):
    from tbnn import cli

    seen = {}

    def fake_train(*args, **kwargs):
        seen.update(kwargs)
        return {"test_accuracy": 0.5, "train_accuracy": 0.5, "epochs": 1, "train_seconds": 0.0}

    monkeypatch.setattr(trainer, "train", fake_train)
    cli.main(["train", "--dataset", "digits", "--model", "tbn", "--out", str(tmp_path / "run"), "--quiet"])
    assert seen["_names"] is checkpoint.CLI_NAMES
    assert checkpoint.CLI_NAMES == {"out": "--out", "resume": "--resume", "overwrite": "--overwrite"}


# --------------------------------------------------------------------------- names that say what they mean


@pytest.mark.parametrize("module,old,new", [
    ("tbnn.io.recording", "FORMATS", "RECORDING_FORMATS"),
    ("tbnn.io.checkpoint", "FORMAT_VERSION", "RUN_FORMAT_VERSION"),
    ("tbnn.io.checkpoint.tensors", "FORMAT_VERSION", "RUN_FORMAT_VERSION"),
    ("tbnn.train", "FORMAT_VERSION", "RUN_FORMAT_VERSION"),
    ("tbnn.train.trainer", "FORMAT_VERSION", "RUN_FORMAT_VERSION"),
    ("tbnn.io.spikes", "FORMAT_VERSION", "SPIKES_FORMAT_VERSION"),
    ("tbnn.io.spikes.record", "FORMAT_VERSION", "SPIKES_FORMAT_VERSION"),
    ("tbnn.sim", "FORMAT_VERSION", "SIMULATION_FORMAT_VERSION"),
    ("tbnn.sim.simulator", "FORMAT_VERSION", "SIMULATION_FORMAT_VERSION"),
    ("tbnn.sim", "SIM_MODES", "SIM_SCHEDULES"),
    ("tbnn.sim.simulator", "SIM_MODES", "SIM_SCHEDULES"),
    ("tbnn.engine.session", "SESSION_MODES", "SCHEDULES"),
    ("tbnn.nn.layers", "MODES", "EVALUATIONS"),
])
def test_renamed_constants_warn_and_keep_their_value(module, old, new):
    import importlib

    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module}.{old} is deprecated; use .*{new}"):
        value = getattr(mod, old)
    home = importlib.import_module("tbnn.io.checkpoint") if new == "RUN_FORMAT_VERSION" else mod
    assert value == getattr(home, new)
    assert old not in mod.__all__ and (new in mod.__all__ or home is not mod)
    with pytest.raises(AttributeError):
        mod.NOT_A_NAME  # noqa: B018


def test_figure_formats_keep_their_name():
    import warnings

    from tbnn.io.recording import RECORDING_FORMATS
    from tbnn.viz import formats, style

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "png" in formats.FORMATS and list(style.FORMATS) == list(formats.FORMATS)
    assert ".nwb" in RECORDING_FORMATS and "png" not in RECORDING_FORMATS


@pytest.fixture(scope="module")
def small_net():
    import tbnn

    torch.manual_seed(0)
    return torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3)), torch.randn(6, 8)


def test_simulate_mode_is_schedule(small_net):
    import tbnn
    from tbnn.engine.session import SimulationSession

    net, x = small_net
    new = tbnn.simulate(net, x, schedule="folded")
    with pytest.warns(DeprecationWarning, match=r"simulate\(mode=...\) is deprecated; use simulate\(schedule=...\)"):
        old = tbnn.simulate(net, x, mode="folded")
    assert torch.equal(new.logits, old.logits) and new.summary["mode"] == old.summary["mode"] == "folded"
    with pytest.raises(TypeError, match="both schedule= and its deprecated spelling mode="):
        tbnn.simulate(net, x, schedule="folded", mode="step")
    with pytest.warns(DeprecationWarning, match=r"SimulationSession\(mode=...\)"):
        sess = SimulationSession({}, mode="folded")
    assert sess.schedule == "folded"
    with pytest.warns(DeprecationWarning, match="SimulationSession.mode is deprecated; use SimulationSession.schedule"):
        assert sess.mode == "folded"


def test_layer_mode_is_evaluation(small_net):
    import tbnn
    from tbnn.core.coding import encode

    with pytest.warns(DeprecationWarning, match=r"TBLinear\(mode=...\) is deprecated; use TBLinear\(evaluation=...\)"):
        layer = tbnn.TBLinear(8, 3, mode="step")
    assert layer.evaluation == "step" and "evaluation=step" in repr(layer)
    with pytest.warns(DeprecationWarning, match="TBLinear.mode is deprecated; use TBLinear.evaluation"):
        assert layer.mode == "step"
    with pytest.warns(DeprecationWarning):
        layer.mode = "folded"
    assert layer.evaluation == "folded"
    code = encode(torch.randn(2, 8), 4)
    with torch.no_grad(), pytest.warns(DeprecationWarning, match=r"TBLinear.forward\(mode=...\)"):
        old = layer(code, mode="exact")
    with torch.no_grad():
        assert torch.equal(old, layer(code, evaluation="exact"))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="mode must be one of fused"):
        tbnn.TBConv1d(2, 3, 3, mode="sideways")


def test_tbnet_forward_mode_is_evaluation():
    from tbnn.nn.models import ModelConfig, build_model

    net = build_model(ModelConfig(in_features=16, n_classes=3, hidden=8, layers=1)).eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        with pytest.warns(DeprecationWarning, match=r"TBNet.forward\(mode=...\)"):
            old = net(x, mode="fused")
        assert torch.equal(old, net(x, evaluation="fused"))
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="mode must be one of"):
            net(x, mode="sideways")


def test_fanout_names_say_what_they_count():
    import tbnn
    from tbnn.engine.session import SimulationSession

    conv = tbnn.TBConv1d(2, 4, 3, padding=1, weight_bits=1.5, sparsity="2:4")
    dense = conv.weight_positions((2, 6))
    with pytest.warns(DeprecationWarning, match="TBConv1d.fanout is deprecated; use TBConv1d.weight_positions"):
        assert torch.equal(conv.fanout((2, 6)), dense)
    net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), conv)
    sess = SimulationSession({id(net[0]): "in"})
    with sess, torch.no_grad():
        net.eval()(torch.randn(3, 2, 6))
    existing = sess.synapse_counts("in")
    assert existing.shape == (12,) and bool((existing <= dense.flatten()).all())
    assert float(existing.sum()) < float(dense.sum())  # 2:4 sparsity prunes half the weights
    with pytest.warns(DeprecationWarning, match="SimulationSession.fanout is deprecated; use SimulationSession.synapse_counts"):
        assert torch.equal(sess.fanout("in"), existing)


def test_session_weight_cache_is_deprecated():
    from tbnn.engine.session import SimulationSession

    with pytest.warns(DeprecationWarning, match=r"SimulationSession\(weight_cache=...\) is deprecated"):
        SimulationSession({}, weight_cache={})
