"""Training: every model kind, determinism, resume, checkpoints and refused input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tbnn.io.checkpoint import checkpoint_epoch
from tbnn.cli import main
from tbnn.train.trainer import train

SMALL = dict(n_train=600, n_test=100, lr=3e-3, progress=False)


@pytest.mark.parametrize(
    "model,kwargs",
    [("tbn", {}), ("ste", {}), ("float", {}), ("lif", {"timesteps": 5}),
     ("tbn", {"arch": "cnn", "channels": 8}), ("lif", {"arch": "cnn", "channels": 8, "timesteps": 3, "lr": 1e-2}),
     ("tbn", {"weight_bits": 1.5, "sparsity": "2:4"}), ("tbn", {"encoding": "sigma_delta"})],
)
def test_each_model_kind_trains(model, kwargs):
    m = train("digits", model, epochs=3, hidden=64, **{**SMALL, **kwargs})
    assert 0.0 <= m["test_accuracy"] <= 1.0
    assert m["test_accuracy"] > 0.2  # far above chance (0.1) after 30 steps
    losses = [h["loss"] for h in m["history"]]
    assert len(losses) == 3 and np.isfinite(losses).all() and losses[-1] < losses[0]


def test_mnist1d_cnn_trains():
    """The CNN learns: held-out accuracy at least twice chance (10 classes) and the loss falls."""
    m = train("mnist1d", "tbn", epochs=5, arch="cnn", channels=8, n_train=1000, n_test=300, progress=False, seed=0)
    losses = [h["loss"] for h in m["history"]]
    assert m["test_accuracy"] >= 0.2, m["test_accuracy"]
    assert losses[-1] < losses[0]


def test_run_directory_files_and_fields(tiny_run):
    out, metrics = tiny_run
    cfg = json.loads((out / "config.json").read_text())
    saved = json.loads((out / "metrics.json").read_text())
    assert cfg["kind"] == "tbnn-run" and cfg["model"]["model"] == "tbn"
    for key in ("test_accuracy", "train_accuracy", "epochs", "train_seconds", "history"):
        assert key in saved
    assert saved["epochs"] == 3 and len(saved["history"]) == 3
    assert saved["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert set(load_file(str(out / "model.safetensors"))) == set(metrics["net"].state_dict())
    # nothing is pickled: every file is JSON or safetensors
    for f in out.iterdir():
        assert f.suffix in (".json", ".safetensors"), f


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_deterministic_for_a_seed(tmp_path):
    a = train("digits", "tbn", tmp_path / "a", epochs=2, hidden=32, seed=3, **SMALL)
    b = train("digits", "tbn", tmp_path / "b", epochs=2, hidden=32, seed=3, **SMALL)
    train("digits", "tbn", tmp_path / "c", epochs=2, hidden=32, seed=4, **SMALL)
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert a["test_accuracy"] == b["test_accuracy"]


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    ref = train("digits", "tbn", tmp_path / "ref", epochs=3, hidden=32, seed=1, **SMALL)
    with pytest.raises(KeyboardInterrupt):
        train("digits", "tbn", tmp_path / "cut", epochs=3, hidden=32, seed=1, _interrupt_at=(1, 2), **SMALL)
    assert checkpoint_epoch(tmp_path / "cut") == 1  # the interrupted epoch was not committed
    with pytest.raises(ValueError, match="already holds a run, interrupted after epoch 1; pass resume=True"):
        train("digits", "tbn", tmp_path / "cut", epochs=3, hidden=32, seed=1, **SMALL)
    res = train("digits", "tbn", tmp_path / "cut", epochs=3, hidden=32, seed=1, resume=True, **SMALL)
    wr, wc = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert all(torch.equal(wr[k], wc[k]) for k in wr)
    assert res["test_accuracy"] == ref["test_accuracy"]
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]


def test_resume_with_other_settings_is_refused(tmp_path):
    train("digits", "tbn", tmp_path / "r", epochs=1, hidden=32, **SMALL)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="lam"):
        train("digits", "tbn", tmp_path / "r", epochs=1, hidden=32, lam=0.1, resume=True, **SMALL)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before


def test_truncated_and_foreign_state_refused(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        train("digits", "tbn", run, epochs=2, hidden=32, _interrupt_at=(1, 0), **SMALL)
    ckpt = run / "checkpoint.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        train("digits", "tbn", run, epochs=2, hidden=32, resume=True, **SMALL)
    save_file({"x": torch.zeros(3)}, str(ckpt))
    with pytest.raises(ValueError, match="training state .* is not a tbnn checkpoint"):
        train("digits", "tbn", run, epochs=2, hidden=32, resume=True, **SMALL)


def test_cli_train_writes_run_and_meets_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--model", "tbn", "--timesteps", "4", "--epochs", "20",
               "--seed", "0", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--dataset", "imagenet"], "dataset must be one of"),
        (["--timesteps", "0"], "error: --timesteps must be an integer >= 1"),
        (["--lam", "-1"], "error: --lam must be a finite number >= 0"),
        (["--weight-bits", "7"], "error: --weight-bits must be one of"),
        (["--sparsity", "5:4"], "error: --sparsity"),
        (["--block", "-3"], "error: --block must be a positive integer"),
        (["--encoding", "morse"], "error: --encoding must be one of"),
        (["--epochs", "0"], "error: --epochs must be an integer >= 1"),
        (["--timesteps", "4", "--act-bits", "3"], "error: --act-bits must equal timesteps"),
        # model-config fields whose Python name differs from the flag's spelling
        (["--input-encoding", "morse"], "error: --input-encoding must be one of"),
        (["--first-layer-bits", "5"], "error: --first-layer-bits must be one of"),
        (["--readout-bits", "5"], "error: --readout-bits must be one of"),
        (["--rate-weight", "1"], "error: --rate-weight needs --rate-target"),
        (["--weight-decay", "-1"], "error: --weight-decay must be a finite number >= 0"),
        (["--n-train", "0"], "error: --n-train must be"),
    ],
)
def test_cli_refuses_bad_input(tmp_path, capsys, args, needle):
    base = {"--dataset": "digits", "--model": "tbn", "--epochs": "1", "--out": str(tmp_path / "r")}
    for flag, val in zip(args[::2], args[1::2]):
        base[flag] = val
    argv = ["train", "--quiet"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_cli_refuses_nan_in_data(tmp_path, capsys, monkeypatch):
    import tbnn.io.datasets.sources as data  # the registry's digits loader, looked up at each load

    real = data.raw_digits

    def poisoned():
        raw = real()
        x = np.array(raw.x_train, dtype=np.float64, copy=True)
        x[0, 5] = np.nan
        return raw._replace(x_train=x)

    monkeypatch.setattr(data, "raw_digits", poisoned)
    assert main(["train", "--dataset", "digits", "--model", "tbn", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_refuses_out_holding_another_run(tmp_path, capsys, tiny_run):
    src = tiny_run[0]
    before = {f.name: f.read_bytes() for f in src.iterdir()}
    assert main(["train", "--dataset", "digits", "--model", "float", "--epochs", "1", "--out", str(src), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in src.iterdir()} == before
