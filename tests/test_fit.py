"""tbnn.fit on the user's own model and data; npz:PATH datasets; save_weights / load_weights."""

import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tbnn
from tbnn.cli import main
from tbnn.io.datasets import load_dataset


def _data(n=120, f=16, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    centers = torch.randn(c, f, generator=g) * 2
    x = centers[y] + torch.randn(n, f, generator=g)
    return x, y


def _net(f=16, c=3):
    torch.manual_seed(0)
    return nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(f, 32), nn.BatchNorm1d(32),
                         tbnn.TemporalBinary(4), tbnn.TBLinear(32, c))


def test_fit_learns_and_is_deterministic():
    x, y = _data()
    h1 = tbnn.fit(_net(), (x, y), test=(x, y), epochs=4, batch=32, lr=1e-2, progress=False)
    h2 = tbnn.fit(_net(), (x.numpy(), y.numpy()), test=(x, y), epochs=4, batch=32, lr=1e-2, progress=False)
    assert [h["epoch"] for h in h1] == [1, 2, 3, 4]
    assert h1[-1]["loss"] < h1[0]["loss"]
    assert h1[-1]["test_accuracy"] > 0.6  # three well separated clusters; chance is 1/3
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]  # arrays or tensors: same numbers


def test_fit_takes_dataset_and_dataloader():
    x, y = _data()
    ds = TensorDataset(x, y)
    h = tbnn.fit(_net(), ds, test=ds, epochs=1, batch=40, progress=False)
    assert h[0]["test_accuracy"] is not None
    h = tbnn.fit(_net(), DataLoader(ds, batch_size=30), epochs=1, progress=False)
    assert h[0]["test_accuracy"] is None and np.isfinite(h[0]["loss"])


def test_fit_custom_loss_is_used():
    x, y = _data()
    calls = []

    def loss(logits, target):
        calls.append(len(target))
        return nn.functional.cross_entropy(logits, target)

    tbnn.fit(_net(), (x, y), epochs=1, batch=50, loss=loss, progress=False)
    assert calls == [50, 50, 20]


@pytest.mark.parametrize("data,msg", [
    ((np.zeros((4, 3)), [0, 1]), "train y must be one label per sample"),
    ((np.full((4, 16), np.nan), [0, 1, 0, 1]), "train x holds 64 NaN"),
    ((np.zeros((4, 16)), [0, -1, 0, 1]), "class labels in"),
    ((np.zeros((4, 16)), [0.5, 1, 0, 1]), "integer class labels"),
    ((np.zeros((4, 16), complex), [0, 1, 0, 1]), "real numbers"),
    ((np.zeros((4, 16)), [0, 1, 0, 7]), "labels must lie in [0, 3)"),
    ("digits", "train must be (x, y) arrays"),
])
def test_fit_refuses_bad_data(data, msg, tmp_path):
    with pytest.raises(ValueError, match=re.escape(msg)):
        tbnn.fit(_net(), data, epochs=1, progress=False)


def test_fit_run_folder_resumes_and_weights_round_trip(tmp_path):
    x, y = _data()
    ref = _net()
    tbnn.fit(ref, (x, y), epochs=3, batch=32, out=tmp_path / "ref", progress=False)
    assert (tmp_path / "ref" / "metrics.json").is_file() and (tmp_path / "ref" / "config.json").is_file()
    cut = _net()
    with pytest.raises(KeyboardInterrupt):
        tbnn.fit(cut, (x, y), epochs=3, batch=32, out=tmp_path / "cut", progress=False, _interrupt_at=(1, 2))
    cut = _net()
    tbnn.fit(cut, (x, y), epochs=3, batch=32, out=tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(ref.state_dict().values(), cut.state_dict().values()):
        assert torch.equal(a, b)
    twin = tbnn.load_weights(_net(), tmp_path / "ref" / "model.safetensors")
    for a, b in zip(ref.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not match"):
        tbnn.load_weights(nn.Linear(3, 2), tmp_path / "ref" / "model.safetensors")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_dataset_trains_from_cli(tmp_path, capsys):
    x, y = _data(n=200, f=12)
    p = _write_npz(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    ds = load_dataset(f"npz:{p}")
    assert ds.n_train == 160 and ds.n_test == 40 and ds.n_classes == 3 and ds.name == f"npz:{p.resolve()}"
    rc = main(["train", "--dataset", f"npz:{p}", "--model", "tbn", "--epochs", "2", "--hidden", "32",
               "--quiet", "--out", str(tmp_path / "run")])
    assert rc == 0 and (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("arrays,msg", [
    (dict(x=np.zeros((10, 4))), "has no array 'y'"),
    (dict(x=np.zeros((10, 4)), y=np.zeros(9)), "one label per sample"),
    (dict(x=np.zeros((10, 4)), y=np.arange(10) % 2, x_test=np.zeros((3, 4))), "both x_test and y_test"),
    (dict(x=np.zeros((10, 4)), y=np.arange(10) % 2, z=np.zeros(3)), "unknown arrays"),
    (dict(x=np.full((10, 4), np.inf), y=np.arange(10) % 2), "NaN or infinite"),
    (dict(x=np.zeros((10, 4)), y=np.arange(10) % 2, x_test=np.zeros((3, 5)), y_test=np.zeros(3)), "x_test samples"),
    (dict(x=np.array([object()] * 10), y=np.arange(10) % 2), "is a pickled object array"),
])
def test_npz_dataset_refusals_write_nothing(tmp_path, capsys, arrays, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    out = tmp_path / "run"
    rc = main(["train", "--dataset", f"npz:{p}", "--model", "tbn", "--epochs", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err
    assert not out.exists()


def test_npz_not_a_zip_refused(tmp_path, capsys):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04 garbage")
    rc = main(["train", "--dataset", f"npz:{p}", "--model", "tbn", "--quiet", "--out", str(tmp_path / "r")])
    assert rc == 2 and "npz dataset" in capsys.readouterr().err
