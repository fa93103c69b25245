"""Two checkouts of tbnn, timed interleaved on one machine: has a change cost speed?

Exports the ``--old`` git revision (default: the last commit before the subpackage moves)
and the working tree (``--new``, default this checkout) and runs the same workloads on
both, alternating A B B A round by round so that load from other processes falls on both
alike. Each workload runs in a fresh Python process with one torch thread and reports the
**CPU time** (user + system, of the process and its children) it spent, which a busy
machine disturbs much less than wall time. The table gives the median over ``--rounds``
and the ratio new / old; the issue's acceptance is a ratio within 10 % of 1.

Workloads use only what both checkouts have: the public ``tbnn.*`` names and the command
line, whose behaviour must not change.

* ``import``: ``python -c "import tbnn; tbnn.fake_quantize"`` (start-up and lazy imports);
* ``quantize``: forward + backward of ``tbnn.fake_quantize`` (DAT, 1 bit) on a
  [256, 1024] tensor, 30 times;
* ``train``: ``tbnn train --dataset digits --model tbn --epochs 2`` (the CLI end to end);
* ``simulate``: ``tbnn simulate`` of that run (each checkout simulates the run it trained);
* ``analyze``: ``tbnn analyze`` of that simulation.

    python benchmarks/bench_checkouts.py                      # 5 rounds, old = before the moves
    python benchmarks/bench_checkouts.py --old HEAD~3 --rounds 7
    python benchmarks/bench_checkouts.py --quick              # 1 round, small workloads (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tbnn.runtime.machine import describe_cpu

ROOT = Path(__file__).resolve().parent.parent
#: The last commit before the architecture issue's file moves (29 flat modules).
BEFORE_MOVES = "f1f56ef"
TOLERANCE = 0.10

QUANTIZE = """
import time, torch, tbnn
torch.manual_seed(0)
x = torch.randn(256, 1024, requires_grad=True); g = torch.randn(256, 1024)
for _ in range({n}):
    y = tbnn.fake_quantize(x, bits=1, block=128)
    y.backward(g)
"""


def export(rev: str, into: Path) -> Path:
    """Write the tree of git revision ``rev`` into the folder ``into`` (``git archive``)."""
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev], stdout=f, stderr=subprocess.DEVNULL, check=True)
    with tarfile.open(archive) as t:
        t.extractall(into, filter="data")
    archive.unlink()
    return into


def copy_worktree(into: Path) -> Path:
    """The working tree as it is (tracked and untracked files git does not ignore)."""
    into.mkdir(parents=True)
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            dst = into / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    return into


def run_cpu(cmd: list[str], cwd: Path, checkout: Path) -> float:
    """Run ``cmd`` with ``checkout`` first on the import path; its CPU seconds (user + sys)."""
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} (PYTHONPATH={checkout}) exited {code}:\n{tail}")
    return usage.ru_utime + usage.ru_stime


def workloads(quick: bool) -> dict[str, callable]:
    """Each workload: (checkout, scratch folder) -> CPU seconds."""
    py = sys.executable
    epochs = "1" if quick else "2"
    n = 3 if quick else 30

    def w_import(co: Path, tmp: Path) -> float:
        return run_cpu([py, "-c", "import tbnn; tbnn.fake_quantize"], tmp, co)

    def w_quantize(co: Path, tmp: Path) -> float:
        return run_cpu([py, "-c", QUANTIZE.format(n=n)], tmp, co)

    def w_train(co: Path, tmp: Path) -> float:
        return run_cpu([py, "-m", "tbnn", "train", "--dataset", "digits", "--model", "tbn", "--epochs", epochs,
                        "--seed", "0", "--out", "run", "--overwrite"], tmp, co)

    def w_simulate(co: Path, tmp: Path) -> float:
        return run_cpu([py, "-m", "tbnn", "simulate", "run", "--out", "sim", "--overwrite"], tmp, co)

    def w_analyze(co: Path, tmp: Path) -> float:
        return run_cpu([py, "-m", "tbnn", "analyze", "sim", "--out", "ana", "--overwrite"], tmp, co)

    return {"import": w_import, "quantize": w_quantize, "train": w_train, "simulate": w_simulate,
            "analyze": w_analyze}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", default=BEFORE_MOVES, help=f"git revision of the old checkout (default {BEFORE_MOVES})")
    p.add_argument("--new", default=None, help="git revision of the new checkout (default: this working tree)")
    p.add_argument("--rounds", type=int, default=5, help="A-B-B-A rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="one round of small workloads (smoke test)")
    p.add_argument("--workloads", nargs="+", default=None, choices=list(workloads(True)),
                   help="run only these workloads (default: all; simulate needs train, analyze needs simulate)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1; got {args.rounds}.")
    rounds = 1 if args.quick else args.rounds
    chosen = {k: f for k, f in workloads(args.quick).items() if args.workloads is None or k in args.workloads}
    for needs, need in (("simulate", "train"), ("analyze", "simulate")):
        if needs in chosen and need not in chosen:
            p.error(f"--workloads: {needs} needs {need} in the same run.")
    load0 = os.getloadavg()[0]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="tbnn-bench-") as tmp:
        tmp = Path(tmp)
        try:
            old = export(args.old, tmp / "old")
            new = export(args.new, tmp / "new") if args.new else copy_worktree(tmp / "new")
        except subprocess.CalledProcessError:
            p.error(f"--old {args.old!r} / --new {args.new!r}: git could not export that revision.")
        checkouts = {"old": old, "new": new}
        scratch = {k: tmp / f"work-{k}" for k in checkouts}
        for s in scratch.values():
            s.mkdir()
        times: dict[str, dict[str, list[float]]] = {w: {"old": [], "new": []} for w in chosen}
        for r in range(rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for name, fn in chosen.items():
                for k in order:
                    times[name][k].append(fn(checkouts[k], scratch[k]))
            print(f"round {r + 1}/{rounds} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows = []
    for name, t in times.items():
        mo, mn = statistics.median(t["old"]), statistics.median(t["new"])
        rows.append(dict(workload=name, old_s=mo, new_s=mn, ratio=mn / mo, within=abs(mn / mo - 1) <= TOLERANCE,
                         old_all=t["old"], new_all=t["new"]))
    result = dict(cpu=describe_cpu(), old=args.old, new=args.new or "working tree", rounds=rounds,
                  load_average_start=load0, load_average_end=os.getloadavg()[0], rows=rows,
                  command=" ".join(["python benchmarks/bench_checkouts.py", *(sys.argv[1:] if argv is None else argv)]))
    print(f"{result['cpu']}; load average {load0:.1f} -> {result['load_average_end']:.1f}; "
          f"{rounds} interleaved rounds; CPU seconds per workload (median), one torch thread")
    print(f"{'workload':<10} {'old ' + args.old:>16} {'new':>10} {'new/old':>8}  within 10 %")
    for row in rows:
        print(f"{row['workload']:<10} {row['old_s']:>16.3f} {row['new_s']:>10.3f} {row['ratio']:>8.3f}  "
              f"{'yes' if row['within'] else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
