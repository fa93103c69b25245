"""Shared fixtures: small trained runs, made once per test session."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test (and every command it starts) caches datasets in a session folder, never in ~.

    Session-scoped and autouse, so it is set before any session fixture loads a dataset.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TBNN_CACHE", str(tmp_path_factory.mktemp("tbnn-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A TBN trained for 3 epochs on a digits subset, written to a run directory."""
    from tbnn.train.trainer import train

    out = tmp_path_factory.mktemp("runs") / "tbn"
    metrics = train("digits", "tbn", out, epochs=3, n_train=400, n_test=120, hidden=64, progress=False)
    return out, metrics


@pytest.fixture(scope="session")
def tiny_sim(tiny_run, tmp_path_factory):
    """The tiny run simulated step by step."""
    from tbnn.sim.simulator import simulate_run

    out = tmp_path_factory.mktemp("sims") / "tbn"
    summary = simulate_run(tiny_run[0], out, progress=False)
    return out, summary
