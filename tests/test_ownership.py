"""One owner for every write, ownership by manifest, writes that never delete (issue 20, items 1-3, 8).

Each test is a reproduction from the issue: the attack, then what must hold now (exit status,
one sentence naming the argument, every file of the user's still there, byte for byte).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tbnn.io.files.atomic as atomic
from tbnn.cli import main
from tbnn.io.files import MANIFEST_NAME, FolderLock, foreign_entry, png_record, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "digits", "--model", "tbn", "--hidden", "8", "--n-train", "64", "--n-test", "32",
         "--quiet"]


@pytest.fixture(scope="module")
def run(tiny_run):
    """The session's tiny run (only read here)."""
    return tiny_run[0]


@pytest.fixture(scope="module")
def sim(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "sim"
    assert main(["simulate", str(run), "--limit", "8", "--quiet", "--out", str(out)]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (relative path -> bytes; ``None`` for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def _refused(capsys, *names: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    for name in names:
        assert name in err, err
    return err


def _simulate(run: Path, out: Path, *extra: str) -> int:
    return main(["simulate", str(run), "--limit", "8", "--quiet", "--out", str(out), *extra])


# ------------------------------------------------------------- --overwrite never deletes


@pytest.mark.parametrize("command, marker, content", [
    ("simulate", "simulation.json", "not json"),
    ("analyze", "analysis.json", "{}"),
    ("demo", "demo.json", '{"kind": "tbnn-demo"}'),
])
def test_overwrite_refuses_a_project_with_a_same_named_file(tmp_path, run, sim, capsys, command, marker, content):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.py").write_text("x\n")
    (proj / "thesis.tex").write_text("x\n")
    (proj / marker).write_text(content)
    before = _snapshot(proj)
    argv = {"simulate": ["simulate", str(run), "--limit", "8", "--quiet"],
            "analyze": ["analyze", str(sim)],
            "demo": ["demo", "--epochs", "1", "--quiet"]}[command]
    assert main([*argv, "--overwrite", "--out", str(proj)]) == 2
    _refused(capsys, "--out", marker, "tbnn did not write")
    assert _snapshot(proj) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # nothing staged or moved beside it


def test_overwrite_refuses_user_files_inside_a_real_output(tmp_path, run, capsys):
    out = tmp_path / "sim"
    assert _simulate(run, out) == 0
    manifest = read_manifest(out)
    assert manifest["output"] == "simulation" and set(manifest["files"]) == {"simulation.json", "spikes.npz"}
    for name, make in (("notes.txt", lambda p: p.write_text("mine")), ("sub", lambda p: p.mkdir())):
        make(out / name)
        before = _snapshot(out)
        assert _simulate(run, out, "--overwrite") == 2
        _refused(capsys, f"holds {name}, which tbnn did not write")
        assert _snapshot(out) == before
        (out / name).rmdir() if (out / name).is_dir() else (out / name).unlink()
    # an edited file of tbnn's own output is no longer tbnn's
    sj = out / "simulation.json"
    original = sj.read_bytes()
    sj.write_text(json.dumps({**json.loads(original), "accuracy": 1.0}))
    assert _simulate(run, out, "--overwrite") == 2
    _refused(capsys, "simulation.json", "changed since")
    sj.write_bytes(original)
    assert _simulate(run, out, "--overwrite") == 0  # all tbnn's own again: replaced
    assert foreign_entry(out, "simulation") is None


def test_outputs_inside_an_output_are_refused(tmp_path, run, sim, capsys):
    before = _snapshot(sim)
    assert main(["analyze", str(sim), "--out", str(sim / "an")]) == 2
    _refused(capsys, "--out", "inside the tbnn simulation output")
    assert main(["raster", str(sim), "--out", str(sim / "r.png")]) == 2
    _refused(capsys, "--out", "inside the tbnn simulation output")
    assert main([*TRAIN, "--epochs", "1", "--out", str(sim / "run")]) == 2
    _refused(capsys, "--out", "inside the tbnn simulation output")
    assert _snapshot(sim) == before


def test_output_written_before_manifests_is_own_only_when_its_seals_verify(tmp_path, run, capsys):
    out = tmp_path / "sim"
    assert _simulate(run, out) == 0
    (out / MANIFEST_NAME).unlink()  # as the previous version wrote it
    assert foreign_entry(out, "simulation") is None
    assert _simulate(run, out, "--overwrite") == 0  # replaced: its files are the ones that version writes
    (out / MANIFEST_NAME).unlink()
    (out / "spikes.npz").write_bytes((out / "spikes.npz").read_bytes() + b"\0")  # no longer the sealed archive
    before = _snapshot(out)
    assert _simulate(run, out, "--overwrite") == 2
    _refused(capsys, "spikes.npz")
    assert _snapshot(out) == before


def test_train_overwrite_refuses_user_files_in_a_run(tmp_path, run, capsys):
    copy = tmp_path / "run"
    copy.mkdir()
    for f in run.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert foreign_entry(copy, "run") is None
    (copy / MANIFEST_NAME).unlink()  # a run of the version before manifests: own by its seals
    assert foreign_entry(copy, "run") is None
    (copy / "notes.txt").write_text("mine")
    before = _snapshot(copy)
    assert main([*TRAIN, "--epochs", "1", "--overwrite", "--out", str(copy)]) == 2
    _refused(capsys, "--out", "notes.txt", "tbnn did not write")
    assert _snapshot(copy) == before


def test_manifest_seal_is_checked(tmp_path):
    d = tmp_path / "o"
    d.mkdir()
    (d / "simulation.json").write_text("{}")
    write_manifest(d, "simulation")
    assert foreign_entry(d, "simulation") is None
    text = (d / MANIFEST_NAME).read_text().replace('"simulation.json"', '"simulation.jsoN"')
    (d / MANIFEST_NAME).write_text(text)  # an edited manifest is not tbnn's
    assert foreign_entry(d, "simulation") == MANIFEST_NAME


def test_symlinked_out_is_never_replaced_or_moved(tmp_path, run, sim, capsys):
    real = tmp_path / "real"
    assert _simulate(run, real) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    before, listing = _snapshot(real), sorted(p.name for p in tmp_path.iterdir())
    assert _simulate(run, link, "--overwrite") == 2
    _refused(capsys, "--out", "symbolic link")
    assert main([*TRAIN, "--epochs", "1", "--overwrite", "--out", str(link)]) == 2
    _refused(capsys, "--out", "symbolic link")
    assert main(["raster", str(sim), "--overwrite", "--out", str(link)]) == 2
    _refused(capsys, "--out")
    assert link.is_symlink() and _snapshot(real) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # nothing moved to a hidden name


# ------------------------------------------------------------------ figures (raster)


def test_raster_overwrite_replaces_only_tbnn_figures(tmp_path, sim, capsys):
    png = tmp_path / "r.png"
    assert main(["raster", str(sim), "--format", "svg", "--out", str(png)]) == 0
    rec = png_record(png)
    assert rec is not None and rec["kind"] == "tbnn-figure" and "r.svg" in rec["files"]
    assert main(["raster", str(sim), "--format", "svg", "--overwrite", "--out", str(png)]) == 0
    (tmp_path / "r.svg").write_text("<svg>mine</svg>")  # an edited copy is not replaced
    assert main(["raster", str(sim), "--format", "svg", "--overwrite", "--out", str(png)]) == 2
    _refused(capsys, "r.svg")
    assert (tmp_path / "r.svg").read_text() == "<svg>mine</svg>"
    import matplotlib.pyplot as plt

    theirs = tmp_path / "theirs.png"
    plt.figure().savefig(theirs)
    plt.close("all")
    before = theirs.read_bytes()
    assert main(["raster", str(sim), "--overwrite", "--out", str(theirs)]) == 2
    _refused(capsys, "--out", "not a figure tbnn wrote")
    assert theirs.read_bytes() == before


# ---------------------------------------------------------- writes that never delete


def test_a_note_appearing_during_a_write_is_never_deleted(tmp_path, run, capsys, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()

    def note(op, path):  # the user saves a note into --out while tbnn simulates
        if op == "write" and path.name.endswith("spikes.npz") and not (out / "my_notes.txt").exists():
            (out / "my_notes.txt").write_text("mine")

    monkeypatch.setattr(atomic, "FAULT_HOOK", note)
    assert _simulate(run, out) == 2
    err = _refused(capsys, "--out", "my_notes.txt appeared", "kept at")
    kept = Path(err.rsplit("kept at ", 1)[1].strip().rstrip("."))
    assert (out / "my_notes.txt").read_text() == "mine"
    assert (kept / "simulation.json").is_file() and (kept / "spikes.npz").is_file()


def test_a_note_appearing_at_the_final_rename_is_never_deleted(tmp_path, run, capsys, monkeypatch):
    out = tmp_path / "o"

    def note(op, path):  # the note lands between tbnn's last look and its rename
        if op == "rename" and path == out and not (out / "late.txt").exists():
            (out / "late.txt").write_text("mine")

    monkeypatch.setattr(atomic, "FAULT_HOOK", note)
    assert _simulate(run, out) == 2
    _refused(capsys, "--out", "kept at")
    assert (out / "late.txt").read_text() == "mine"


def test_simulate_takes_the_output_lock(tmp_path, run, capsys):
    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out):  # another tbnn process is writing --out
        assert _simulate(run, out) == 2
    _refused(capsys, "--out", "being written by another tbnn process")
    assert list(out.iterdir()) == []


def _tbnn(*argv: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tbnn", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_two_concurrent_simulates_never_both_succeed(tmp_path, run):
    out = tmp_path / "o"
    procs = [_tbnn("simulate", str(run), "--limit", "8", "--quiet", "--out", str(out)) for _ in range(2)]
    results = [(p.wait(120), p.communicate()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    err = next(e for rc, (_, e) in results if rc == 2)
    assert "Traceback" not in err and ("another tbnn process" in err or "already holds" in err), err
    assert foreign_entry(out, "simulation") is None and (out / "spikes.npz").is_file()


# ---------------------------------------------- failures never remove committed work


def test_full_disk_after_a_committed_epoch_keeps_the_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    writes = []

    def full(op, path):  # the disk fills up while the second epoch's checkpoint is written
        if op == "write" and "checkpoint" in path.name:
            writes.append(path)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "FAULT_HOOK", full)
    assert main([*TRAIN, "--epochs", "3", "--out", str(out)]) == 2
    _refused(capsys, "the disk is full", str(out), "--resume", "epoch 1")
    assert (out / "checkpoint.safetensors").is_file() and (out / "config.json").is_file()
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    assert main([*TRAIN, "--epochs", "3", "--resume", "--out", str(out)]) == 0  # space freed: continues
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


def test_full_disk_writing_the_final_weights_keeps_the_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def full(op, path):
        if op == "write" and "model.safetensors" in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "FAULT_HOOK", full)
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 2
    _refused(capsys, "the disk is full", "--resume")
    assert (out / "checkpoint.safetensors").is_file()


#: Starts ``tbnn ARGS`` once Python itself is up, with Ctrl-C ignored until tbnn's first statement
#: installs its handler (a signal before that is not tbnn's to handle).
_LAUNCH = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ignoring', flush=True); "
           "sys.argv = ['tbnn', *sys.argv[1:]]; runpy.run_module('tbnn', run_name='__main__', alter_sys=True)")


def _catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGINT (``SigCgt`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc to see tbnn start")
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    seen = []
    for i, delay in enumerate((0.0, 0.02, 0.1, 0.3, 0.8, 1.5)):
        p = subprocess.Popen([sys.executable, "-c", _LAUNCH, *TRAIN, "--epochs", "200", "--out",
                              str(tmp_path / f"r{i}")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ignoring"  # Python is up, SIGINT ignored (not caught)
        t0 = time.monotonic()
        while not _catches_sigint(p.pid):  # tbnn's first statement has run
            assert p.poll() is None and time.monotonic() - t0 < 60, p.communicate()
            time.sleep(0.001)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        seen.append(p.returncode)
        assert p.returncode == 130, (delay, p.returncode, err)
        assert "Traceback" not in err and err.strip().splitlines() == ["tbnn train: interrupted"], (delay, err)
    assert seen == [130] * 6


# ------------------------------------------------------------------- the new user's path


def test_resume_on_an_empty_or_absent_folder_starts_a_run(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, tmp_path / "absent"):
        assert main([*TRAIN, "--epochs", "1", "--resume", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--resume" in err and "starting a new run" in err, err
        metrics = json.loads((out / "metrics.json").read_text())
        assert "--resume found no run" in metrics["started"]


def test_quick_scripts_never_write_into_figures_unless_asked(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "simulations"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "simulations"))
    monkeypatch.setattr(common, "QUICK_RUNS", tmp_path / "quick")
    args = common.parse_args(common.make_parser("x"), ["--quick", "--no-progress"])
    assert args.out == tmp_path / "quick" / "test_ownership" and args.out.is_dir()
    assert common.parse_args(common.make_parser("x"), ["--quick", "--out", str(tmp_path / "f")]).out == tmp_path / "f"
    assert common.parse_args(common.make_parser("x"), []).out == common.FIGURES  # a full run: figures/
    first = tmp_path / "a.png"
    import matplotlib.pyplot as plt

    for _ in range(2):  # an existing output is replaced whole, never a crash
        common.save_figure(plt.figure(), tmp_path, "a.png")
    assert "command" in png_record(first)
    common.copy_file(first, tmp_path, "b.png")
    common.copy_file(first, tmp_path, "b.png")
    assert (tmp_path / "b.png").read_bytes() == first.read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks through /proc")
def test_readme_torchrun_recipe_survives_a_rank_killed_once(tmp_path):
    """``mkdir -p runs/cnn; torchrun --nproc-per-node 2 --max-restarts 3 -m tbnn train ... --resume``."""
    from test_distributed import _env, _free_port, _ranks_of

    out = tmp_path / "runs" / "cnn"
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", "3",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "tbnn", "train", "--dataset",
           "digits", "--model", "tbn", "--n-train", "240", "--n-test", "80", "--hidden", "32", "--batch", "16",
           "--epochs", "12", "--quiet", "--out", str(out), "--resume"]
    job = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        assert job.poll() is None, job.communicate()[1][-2000:]
        os.kill(_ranks_of(job)[1], signal.SIGKILL)  # once; torchrun restarts the job, which resumes
        _, err = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, 13))
