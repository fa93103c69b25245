"""The ``tbnn`` command's thread policy: ``--threads``, then ``OMP_NUM_THREADS``, then one thread.

``tbnn train`` and ``tbnn simulate`` run torch on one intra-op thread unless told otherwise;
``simulation.json`` says how many threads ran and where the count came from; a bad
``--threads`` is refused naming the flag.
"""

from __future__ import annotations

import json

import pytest
import torch

from tbnn.cli import main
from tbnn.runtime import threads


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(n)
    threads.reset_thread_policy()


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


def test_train_defaults_to_one_thread_too(tmp_path, capsys):
    torch.set_num_threads(2)
    assert main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--n-train", "100",
                 "--n-test", "50", "--hidden", "16", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert torch.get_num_threads() == 1 and threads.thread_policy() == "the command's default (1)"
    capsys.readouterr()
