"""Data-parallel training on torch.distributed: real torchrun jobs (gloo, loopback only) against one process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tbnn.parallel import distributed as ddp

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TRAIN = ["-m", "tbnn", "train", "--dataset", "digits", "--model", "tbn", "--n-train", "240", "--n-test", "80",
         "--hidden", "32", "--batch", "32", "--quiet"]
LIMIT = 180  # seconds for any one job


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(n: int, port: int) -> list[str]:
    return [*TORCHRUN, "--nproc-per-node", str(n), "--master-addr", "127.0.0.1", "--master-port", str(port)]


def _run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=LIMIT)


def _history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())["history"]


# --------------------------------------------------------------------------------------
# in-process units (one process: the identity of the distributed case)


def test_single_process_helpers_are_identities():
    assert (ddp.world_size(), ddp.rank(), ddp.is_main(), ddp.is_distributed()) == (1, 0, True, False)
    assert ddp.setup("cpu") is False
    assert ddp.all_sum(1, 2.5) == [1.0, 2.5]
    arrays = {"a": np.arange(6).reshape(3, 2)}
    assert np.array_equal(ddp.gather_arrays(arrays)["a"], arrays["a"])
    ddp.check_batch(7)  # any batch in one process
    assert ddp.broadcast_check(lambda v: v + 1, 1) == 2


@pytest.mark.parametrize("n,size", [(10, 3), (7, 2), (1, 4), (0, 2)])
def test_shard_range_partitions_in_order(n, size):
    parts = [ddp.shard_range(n, size, r) for r in range(size)]
    assert [i for lo, hi in parts for i in range(lo, hi)] == list(range(n))
    assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_timeout_from_environment(monkeypatch):
    monkeypatch.setenv("TBNN_DIST_TIMEOUT", "12.5")
    assert ddp.timeout_seconds() == 12.5
    monkeypatch.setenv("TBNN_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="TBNN_DIST_TIMEOUT"):
        ddp.timeout_seconds()


def testrequested_sum_method(monkeypatch):
    monkeypatch.setenv("TBNN_DIST_SUM", "exchange")
    assert ddp.requested_sum_method() == "exchange"
    monkeypatch.setenv("TBNN_DIST_SUM", "ring")
    with pytest.raises(ValueError, match="TBNN_DIST_SUM must be one of allreduce, exchange"):
        ddp.requested_sum_method()


def test_cuda_device_is_the_local_rank_under_torchrun(monkeypatch):
    assert ddp.device_for("cuda") == torch.device("cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp.device_for("cuda") == torch.device("cuda", 1)
    assert ddp.device_for("cpu") == torch.device("cpu")


# --------------------------------------------------------------------------------------
# real torchrun jobs


@pytest.mark.parametrize("method", ddp.SUM_METHODS)
def test_two_ranks_half_batches_give_the_gradient_of_one_process(tmp_path, method):
    """One step of a TBN CNN with BatchNorm: 2 ranks x 16 samples against 1 process x 32, either way of summing."""
    one = _run([sys.executable, str(WORKER), "grad", str(tmp_path / "one.npz")], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _run([*_torchrun(2, _free_port()), str(WORKER), "grad", str(tmp_path / "two.npz")], tmp_path,
               TBNN_DIST_SUM=method)
    assert two.returncode == 0, two.stderr
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert int(a["batch_part"]) == 32 and int(b["batch_part"]) == 16
    keys = sorted(k for k in a.files if k.startswith("grad/"))
    assert keys == sorted(k for k in b.files if k.startswith("grad/")) and len(keys) >= 6
    g1 = np.concatenate([a[k].ravel() for k in keys]).astype(np.float64)
    g2 = np.concatenate([b[k].ravel() for k in keys]).astype(np.float64)
    assert np.linalg.norm(g2 - g1) <= 1e-5 * np.linalg.norm(g1)
    for k in keys:  # every tensor, against the scale of the whole gradient
        assert np.abs(b[k] - a[k]).max() <= 1e-5 * np.linalg.norm(g1), k
    for k in (k for k in a.files if k.startswith("buf/")):  # synchronised BatchNorm running statistics
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert abs(float(b["loss"]) - float(a["loss"])) <= 1e-5 * abs(float(a["loss"]))
    assert str(b["sum_method"]) == method


def test_two_node_loopback_job_matches_one_process(tmp_path):
    """A real two-"node" c10d rendezvous on 127.0.0.1, one process per node, against one process."""
    one = _run([sys.executable, *TRAIN, "--epochs", "2", "--out", str(tmp_path / "one")], tmp_path)
    assert one.returncode == 0, one.stderr
    port = _free_port()
    nodes = [subprocess.Popen(
        [*TORCHRUN, "--nnodes", "2", "--node-rank", str(r), "--nproc-per-node", "1", "--rdzv-backend", "c10d",
         "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "tbnn-test", "--local-addr", "127.0.0.1",
         *TRAIN, "--epochs", "2", "--out", str(tmp_path / "two")],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=LIMIT) for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in nodes] == [0, 0], [o[1][-2000:] for o in outs]
    assert sum(o[0].count("test accuracy") for o in outs) == 1  # rank 0 reports, once
    h1, h2 = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["processes"] == 2
    for a, b in zip(h1, h2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert abs(b["test_accuracy"] - a["test_accuracy"]) <= 0.05


def _refused_cleanly(stderr: str, words: str) -> None:
    """tbnn's sentence, no traceback from tbnn's code, every rank exited 2 (torchrun adds its own report)."""
    assert words in stderr.split("tbnn train: error:")[1].splitlines()[0]
    assert str(ROOT / "tbnn") not in stderr
    assert len(re.findall(r"exitcode +: 2\b", stderr)) == 2, stderr  # the two ranks in torchrun's table


def test_bad_input_under_torchrun_is_refused_once_and_nothing_written(tmp_path):
    port = _free_port()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    res = _run([*_torchrun(2, port), *TRAIN, "--epochs", "1", "--out", str(busy)], tmp_path)
    assert res.returncode != 0
    assert res.stderr.count("tbnn train: error:") == 1, res.stderr
    _refused_cleanly(res.stderr, "--out")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    res = _run([*_torchrun(2, _free_port()), *TRAIN[:-3], "--batch", "33", "--quiet", "--epochs", "1",
                "--out", str(tmp_path / "new")], tmp_path)
    assert res.returncode != 0 and res.stderr.count("tbnn train: error:") == 1, res.stderr
    _refused_cleanly(res.stderr, "batch must be a multiple of the 2 processes")
    assert not (tmp_path / "new").exists()


def _ranks_of(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the worker processes a torchrun launcher started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != launcher.pid:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry.name)
    return found


def _state(run):
    """The meta (epoch, history) of a run's checkpoint, from the safetensors header."""
    from tbnn.io.checkpoint import CHECKPOINT_NAME, read_header

    return json.loads(read_header(run / CHECKPOINT_NAME)[1]["state"])["meta"]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks through /proc")
def test_killed_rank_ends_the_job_quickly_then_resume_continues(tmp_path):
    out = tmp_path / "run"
    args = [*TRAIN[:-3], "--batch", "16", "--epochs", "12", "--out", str(out)]
    job = subprocess.Popen([*_torchrun(2, _free_port()), *args, "--quiet"], cwd=tmp_path, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LIMIT
        while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        assert job.poll() is None, job.communicate()[1][-2000:]
        ranks = _ranks_of(job)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)  # mid-epoch (epochs take well under a second here)
        killed = time.monotonic()
        _, err = job.communicate(timeout=120)
        ended = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert ended < 60, ended
    assert err.count("tbnn train: error:") == 1, err[-3000:]
    assert str(ROOT / "tbnn") not in err, [line for line in err.splitlines() if str(ROOT / "tbnn") in line]  # no traceback from tbnn's code
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file
    state = _state(out)
    done = state["epoch"]
    assert 1 <= done < 12
    res = _run([sys.executable, *args, "--resume", "--quiet"], tmp_path)  # one process continues it
    assert res.returncode == 0, res.stderr[-2000:]
    hist = _history(out)
    assert [h["epoch"] for h in hist] == list(range(1, 13))
    assert hist[:done] == state["history"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks through /proc")
def test_hung_rank_ends_the_job_after_the_collective_timeout(tmp_path):
    """A stopped (hung) rank: the others give up after TBNN_DIST_TIMEOUT; torchrun then kills it (30 s grace)."""
    out = tmp_path / "run"
    job = subprocess.Popen([*_torchrun(2, _free_port()), *TRAIN[:-3], "--batch", "16", "--epochs", "40", "--quiet",
                            "--out", str(out)], cwd=tmp_path, env=_env(TBNN_DIST_TIMEOUT="5"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LIMIT
        while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        ranks = _ranks_of(job)
        os.kill(ranks[1], signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = job.communicate(timeout=120)
        ended = time.monotonic() - stopped
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0 and ended < 80, ended  # 5 s timeout + torchrun's 30 s grace for a stopped process
    assert err.count("tbnn train: error:") == 1 and "Timed out" in err, err[-3000:]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_resume_is_bit_identical_at_the_same_world_size_and_continues_across_sizes(tmp_path):
    from safetensors.torch import load_file

    def job(n, *args):
        cmd = [*_torchrun(n, _free_port())] if n > 1 else [sys.executable]
        res = _run([*cmd, str(WORKER), "train", *args], tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]

    job(2, str(tmp_path / "full"))
    job(2, str(tmp_path / "cut"), "1,3")  # every rank stops at epoch 1, batch 3
    assert _state(tmp_path / "cut")["epoch"] == 1
    job(2, str(tmp_path / "cut"), "", "resume")
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "cut") == [dict(h, seconds=g["seconds"]) for h, g in
                                          zip(_history(tmp_path / "full"), _history(tmp_path / "cut"))]
    job(1, str(tmp_path / "other"), "2,1")  # one process starts, two continue
    job(2, str(tmp_path / "other"), "", "resume")
    h1, h2 = _history(tmp_path / "full"), _history(tmp_path / "other")
    assert [h["epoch"] for h in h2] == [1, 2, 3, 4]
    for x, y in zip(h1, h2):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)


@pytest.mark.parametrize("model", ["lif", pytest.param("tbn", marks=pytest.mark.slow)])
def test_two_rank_simulation_writes_what_one_process_writes(tmp_path, model):
    """Spikes, predictions, labels and every count bit for bit; LIF's random rate code included.

    90 samples in batches of 32 split 2 + 1 batches over the ranks, and 70 recorded samples
    span both ranks' blocks.
    """
    from tbnn.sim.simulator import simulate, simulate_run
    from tbnn.train.trainer import train

    run = tmp_path / "run"
    train("digits", model, run, epochs=1, n_train=120, n_test=100, hidden=32, timesteps=4, progress=False)
    args = dict(batch=32, limit=90, record_samples=70, progress=False)
    simulate_run(run, tmp_path / "one", **args)
    res = _run([*_torchrun(2, _free_port()), "-m", "tbnn", "simulate", str(run), "--out", str(tmp_path / "two"),
                "--batch", "32", "--limit", "90", "--record-samples", "70", "--quiet"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("accuracy") == 1  # rank 0 reports
    a, b = np.load(tmp_path / "one" / "spikes.npz"), np.load(tmp_path / "two" / "spikes.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert a["predictions"].shape == (70,)
    one = json.loads((tmp_path / "one" / "simulation.json").read_text())
    two = json.loads((tmp_path / "two" / "simulation.json").read_text())
    timing = {"samples_per_second", "seconds", "engine_samples_per_second", "engine_seconds", "wall_seconds",
              "engine_cpu_seconds_per_sample", "threads", "engine", "sha256"}  # the seal covers the timings too; spikes_sha256 must agree
    assert {k: v for k, v in one.items() if k not in timing} == {k: v for k, v in two.items() if k not in timing}
    assert one["samples"] == 90 and one["layers"][0]["spikes"] > 0


def test_a_reported_failure_is_not_interrupted_by_torchruns_sigterm():
    """The survivor of a killed rank reports once; torchrun's SIGTERM arriving while it does
    must not raise again (that printed a traceback after the error line under load)."""
    from tbnn.parallel.distributed import launch

    before = signal.getsignal(signal.SIGTERM)
    launch._PREVIOUS_SIGTERM.append(signal.signal(signal.SIGTERM, launch._on_sigterm))  # as setup() does
    try:
        launch.ignore_sigterm()
        os.kill(os.getpid(), signal.SIGTERM)  # would raise DistributedFailure without ignore_sigterm
        time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
        launch._FAILED.clear()
