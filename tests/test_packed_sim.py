"""The packed engine against the dense one on trained networks: same predictions, same logits.

A digits and an mnist1d MLP (1-bit weights, T = 4), trained for 2 epochs, are evaluated
(eval forward) and simulated (step and folded) with the engine forced to ``dense`` and to
``packed``: predictions must be identical on every test sample and logits within 1e-5
relative (they are in fact equal: the integer terms are the same integers), and the
simulation summary must name the engine each layer ran.
"""

from __future__ import annotations

import pytest
import torch

from tbnn.engine import integer as engine
from tbnn.io.datasets import load_dataset
from tbnn.kernels import packed as kernels
from tbnn.sim import load_run, simulate
from tbnn.train import train


@pytest.fixture(autouse=True)
def _auto_after():
    yield
    engine.set_engine("auto")


@pytest.fixture(scope="module", params=["digits", "mnist1d"])
def trained(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / request.param
    train(request.param, "tbn", out, epochs=2, n_train=600, n_test=300, hidden=128, timesteps=4,
          progress=False)
    model, cfg = load_run(out)
    tcfg = cfg["train"]
    ds = load_dataset(request.param, seed=tcfg.get("seed", 0), n_train=tcfg.get("n_train"),
                      n_test=tcfg.get("n_test"), normalize=tcfg.get("normalize", "auto"))
    return model, torch.as_tensor(ds.x_test), torch.as_tensor(ds.y_test)


def _close(a, b):
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max()) <= 1e-5


@pytest.mark.parametrize("mode", ["step", "folded"])
def test_packed_and_dense_give_the_same_predictions_and_logits(trained, mode):
    model, x, y = trained
    runs = {}
    for choice in ("dense", "packed"):
        engine.set_engine(choice)
        with torch.no_grad():
            forward = model(x)
        res = simulate(model, x, y, schedule=mode)
        runs[choice] = (forward, res)
        layers = res.summary["engine"]["layers"]
        assert layers and all(v.startswith(choice) for v in layers.values()), layers
        assert res.summary["forward_agreement"] == 1.0 and res.summary["max_logit_difference"] == 0.0
    (fd, rd), (fp, rp) = runs["dense"], runs["packed"]
    assert torch.equal(fd.argmax(1), fp.argmax(1)) and (rd.predictions == rp.predictions).all()
    assert _close(fp, fd) and _close(rp.logits, rd.logits)
    assert rp.summary["accuracy"] == rd.summary["accuracy"] > 0.15  # trained: above chance (10 classes)


def test_simulate_reports_the_kernel_path_when_it_runs(trained):
    if kernels.kernel() is None:
        pytest.skip("no compiled kernel here")
    model, x, y = trained
    engine.set_engine("auto")
    layers = simulate(model, x[:50], y[:50]).summary["engine"]["layers"]
    assert set(layers.values()) == {f"packed ({kernels.kernel_path()})"}
