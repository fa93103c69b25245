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
