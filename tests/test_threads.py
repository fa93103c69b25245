"""The ``tbnn`` command's thread policy: ``--threads``, then ``OMP_NUM_THREADS``, then the command's default.

``tbnn simulate`` runs torch on one intra-op thread unless told otherwise, and says in
``simulation.json`` how many threads ran and where the count came from; a bad ``--threads``
is refused naming the flag. A fresh ``tbnn`` process starts OpenMP with passive waiting
unless the user chose a wait policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tbnn.cli import main
from tbnn.runtime import threads

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(n)
    threads._POLICY.clear()


def _simulate(run, out, *flags) -> dict:
    assert main(["simulate", str(run), "--out", str(out), "--quiet", *flags]) == 0
    return json.loads((out / "simulation.json").read_text())["threads"]


def test_simulate_defaults_to_one_thread_and_says_why(tiny_run, tmp_path, capsys):
    torch.set_num_threads(2)
    t = _simulate(tiny_run[0], tmp_path / "s")
    assert t["intra_op"] == 1 and t["policy"] == "the command's default (1)"
    capsys.readouterr()


def test_threads_flag_then_environment(tiny_run, tmp_path, monkeypatch, capsys):
    t = _simulate(tiny_run[0], tmp_path / "a", "--threads", "2")
    assert t["intra_op"] == 2 and t["policy"] == "--threads"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    t = _simulate(tiny_run[0], tmp_path / "b")
    assert t["intra_op"] == 2 and t["policy"] == "OMP_NUM_THREADS"
    t = _simulate(tiny_run[0], tmp_path / "c", "--threads", "1")  # the flag wins over the environment
    assert t["intra_op"] == 1 and t["policy"] == "--threads"
    capsys.readouterr()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_thread_count_names_the_flag(tiny_run, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["simulate", str(tiny_run[0]), "--out", str(tmp_path / "s"), "--threads", value])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "--threads" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_python_api_keeps_the_callers_threads():
    assert threads.thread_policy() == "the caller's (Python API)"


def test_a_fresh_command_waits_passively_unless_told(tmp_path):
    code = ("import os, sys; from tbnn.cli import main; main(['calibrate', '--show']); "
            "print('POLICY', os.environ.get('OMP_WAIT_POLICY'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TBNN_CACHE": str(tmp_path)}
    env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "POLICY PASSIVE" in out
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "POLICY ACTIVE" in out
