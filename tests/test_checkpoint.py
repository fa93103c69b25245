"""Checkpoints as one transaction: a kill at every file operation of a save leaves the
previous complete checkpoint or the new one, and resuming ends bit-identical; one writer;
checksums over tensors and the config that fixes their meaning."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import tbnn.io.files as fileio
import tbnn.io.files.atomic as atomic
from tbnn.io.checkpoint import (
    CHECKPOINT_NAME,
    RunLock,
    load_checkpoint,
    load_weights,
    read_header,
    save_checkpoint,
    save_weights,
)

EPOCHS = 2


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    gen = torch.Generator().manual_seed(seed)
    return net, opt, sched, gen


def _train(run_dir, resume: bool = False):
    """A tiny training loop that draws from the global RNG, the generator and the optimizer."""
    net, opt, sched, gen = _setup()
    start, history = 0, []
    if resume:
        meta = load_checkpoint(run_dir, net, opt, sched, gen)
        if meta is not None:
            start, history = meta["epoch"], meta["history"]
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(9))
    y = torch.arange(40) % 3
    for epoch in range(start, EPOCHS):
        perm = torch.randperm(40, generator=gen)
        for i in range(0, 40, 10):
            idx = perm[i:i + 10]
            noise = torch.randn(10, 6) * 0.1  # global RNG
            loss = nn.functional.cross_entropy(net(x[idx] + noise), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        history.append({"epoch": epoch + 1, "loss": float(loss.detach())})
        save_checkpoint(run_dir, net, opt, sched, gen, {"epoch": epoch + 1, "history": history})
    return net, history


def _ops_per_save(tmp_path):
    seen = []
    atomic.FAULT_HOOK = lambda op, path: seen.append(op)
    try:
        net, opt, sched, gen = _setup()
        save_checkpoint(tmp_path / "count", net, opt, sched, gen, {"epoch": 0, "history": []})
    finally:
        atomic.FAULT_HOOK = None
    return seen


def _fork_kill_at(n: int, work) -> int:
    """Run ``work()`` in a forked child that dies (os._exit, as kill -9) just before its n-th file operation."""
    pid = os.fork()
    if pid == 0:
        count = [0]

        def hook(op, path):
            count[0] += 1
            if count[0] == n:
                os._exit(137)

        atomic.FAULT_HOOK = hook
        try:
            work()
        finally:
            os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _kill_at(run_dir: Path, n: int) -> int:
    return _fork_kill_at(n, lambda: _train(run_dir))


def _drive(tmp: str) -> None:
    """Kill a writer before each file operation of its saves, resume, compare (prints JSON).

    Runs in a fresh single-threaded process, so that forking is safe and every child
    computes with the same thread count as the reference.
    """
    tmp_path = Path(tmp)
    torch.set_num_threads(1)
    ref_net, ref_hist = _train(tmp_path / "ref")
    ref = {k: v.clone() for k, v in ref_net.state_dict().items()}
    per_save = len(_ops_per_save(tmp_path)) - 1  # the folder is made once, by the first save
    report = []
    for n in range(1, 1 + per_save * EPOCHS + 1):
        run = tmp_path / f"k{n}"
        rc = _kill_at(run, n)
        epoch = 0
        if (run / CHECKPOINT_NAME).exists():  # the checkpoint there is complete and readable
            epoch = json.loads(read_header(run / CHECKPOINT_NAME)[1]["state"])["meta"]["epoch"]
        run.mkdir(exist_ok=True)
        with RunLock(run):
            fileio.clean_stale_temps(run, all_of_them=True)
            net, hist = _train(run, resume=True)
        got = net.state_dict()
        report.append({"n": n, "rc": rc, "epoch": epoch, "same": all(torch.equal(ref[k], got[k]) for k in ref)
                       and hist == ref_hist, "files": sorted(p.name for p in run.iterdir())})
    print(json.dumps(report))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_at_every_file_operation_then_resume_is_bit_identical(tmp_path):
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_checkpoint as t; t._drive({str(tmp_path)!r})")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 1 + 5 * EPOCHS
    assert all(r["rc"] == 137 for r in report)  # every writer died at its kill point
    assert {r["epoch"] for r in report} == set(range(EPOCHS + 1))  # kills before, in and after each save
    for r in report:
        assert r["same"], f"resume after a kill before file operation {r['n']} differs"
        assert r["files"] == [CHECKPOINT_NAME], r  # no temporary file survives


def test_second_writer_is_refused(tmp_path):
    with RunLock(tmp_path, flag="--out"):
        with pytest.raises(ValueError, match="being written by another tbnn process") as err:
            RunLock(tmp_path).acquire()
        assert str(err.value).count(".") >= 1 and "\n" not in str(err.value)
    with RunLock(tmp_path):  # released: a later writer gets it
        pass


def test_checkpoint_byte_flip_is_refused(tmp_path):
    _train(tmp_path / "r")
    path = tmp_path / "r" / CHECKPOINT_NAME
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    net, opt, sched, gen = _setup()
    with pytest.raises(ValueError, match="fails its checksum"):
        load_checkpoint(tmp_path / "r", net, opt, sched, gen)


def test_weights_byte_flip_and_shape_mismatch_are_refused(tmp_path):
    net, *_ = _setup()
    path = save_weights(net, tmp_path / "model.safetensors")
    load_weights(_setup()[0], path)  # intact: accepted
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails its checksum"):
        load_weights(_setup()[0], path)
    save_weights(nn.Linear(6, 4), path)
    with pytest.raises(ValueError, match="does not match its config"):
        load_weights(_setup()[0], path)


def test_full_disk_is_one_sentence_and_keeps_the_old_checkpoint(tmp_path):
    _train(tmp_path / "r")
    before = (tmp_path / "r" / CHECKPOINT_NAME).read_bytes()

    def full(op, path):
        if op == "write":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    atomic.FAULT_HOOK = full
    try:
        net, opt, sched, gen = _setup()
        with pytest.raises(ValueError, match="the disk is full") as err:
            save_checkpoint(tmp_path / "r", net, opt, sched, gen, {"epoch": 9, "history": []})
    finally:
        atomic.FAULT_HOOK = None
    assert str(tmp_path / "r" / CHECKPOINT_NAME) in str(err.value)
    assert (tmp_path / "r" / CHECKPOINT_NAME).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [CHECKPOINT_NAME]  # no temp left


# ------------------------------------------------------------ end to end, tbnn train

E2E = dict(epochs=2, hidden=8, n_train=64, n_test=20, progress=False)


def _train_kill_at(out: Path, n: int) -> int:
    from tbnn.train.trainer import train

    return _fork_kill_at(n, lambda: train("digits", "tbn", out, **E2E))


def _drive_train(tmp: str) -> None:
    """Kill ``tbnn train`` before each of its file operations; rerun as a user would; compare."""
    from safetensors.torch import load_file

    from tbnn.train.trainer import train

    tmp_path = Path(tmp)
    torch.set_num_threads(1)
    train("digits", "tbn", tmp_path / "warm", **E2E)  # first use may write caches (not part of a run)
    seen: list[str] = []
    atomic.FAULT_HOOK = lambda op, path: seen.append(op)
    train("digits", "tbn", tmp_path / "ref", **E2E)
    atomic.FAULT_HOOK = None
    ref = load_file(str(tmp_path / "ref" / "model.safetensors"))
    ref_hist = [h["loss"] for h in json.loads((tmp_path / "ref" / "metrics.json").read_text())["history"]]
    report = []
    for n in range(1, len(seen) + 1):
        out = tmp_path / f"k{n}"
        rc = _train_kill_at(out, n)
        how = "resume"
        try:
            with warnings.catch_warnings(record=True) as notes:
                warnings.simplefilter("always")
                train("digits", "tbn", out, resume=True, **E2E)
            if any("starting a new run" in str(w.message) for w in notes):
                how = "fresh"  # resume on a folder with no run yet starts one (and says so)
        except ValueError as err:
            if "already complete" in str(err):
                how = "complete"
            else:
                raise
        got = load_file(str(out / "model.safetensors"))
        hist = [h["loss"] for h in json.loads((out / "metrics.json").read_text())["history"]]
        report.append({"n": n, "op": seen[n - 1], "rc": rc, "how": how, "files": sorted(p.name for p in out.iterdir()),
                       "same": set(got) == set(ref) and all(torch.equal(ref[k], got[k]) for k in ref)
                       and hist == ref_hist})
    print(json.dumps(report))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_train_killed_at_every_file_operation_resumes_bit_identical(tmp_path):
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_checkpoint as t; t._drive_train({str(tmp_path)!r})")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) >= 20 and all(r["rc"] == 137 for r in report)
    assert {r["how"] for r in report} == {"fresh", "resume", "complete"}
    for r in report:
        assert r["same"], f"rerun after a kill before {r['op']} (file operation {r['n']}) differs"
        done = [".tbnn-manifest.json", "config.json", "metrics.json", "model.safetensors"]
        if r["how"] == "complete":  # killed after metrics.json: a dead writer's lock file and the
            # no longer needed checkpoint may remain; both are ignored by every reader and writer
            assert set(done) <= set(r["files"]) <= {*done, ".tbnn.lock", CHECKPOINT_NAME}, r
        else:
            assert r["files"] == done, r
