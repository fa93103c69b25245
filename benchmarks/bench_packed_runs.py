"""The packed engine against its float twin over many runs, beside a gauge of the host.

A virtual machine's speed moves with its host's load, which nothing inside it shows: on the
machine of docs/benchmarks.md the float twin runs up to a quarter slower in the host's busy
phases and the packed engine up to two fifths slower, with nothing of ours running. So one
run of ``bench_packed.py --only simulate`` says little about a ratio; this script runs it
``--runs`` times in fresh processes, ``--gap`` seconds apart (each waits for the machine to
be quiet: under 10 % of its CPU busy over two seconds), keeps every run's output in ``--out``
(``run-HHMMSS.md``), and summarises them: per width, the packed / float ratio of each run
against the host gauge of the same run (the AND + popcount microbenchmark measured just
before and after that width's passes, :func:`bench_packed.popcount_micro`), how many runs
meet the issue's targets (0.5x at W = 256, 2x at W = 1024), over all runs and over the runs
whose gauge is within 10 % of the best seen (the host's quiet phases). ``--replot`` only
reads the runs already in ``--out``. Writes ``runs.md`` and, with matplotlib, ``runs.png``
there. No result is asserted.

    python benchmarks/bench_packed_runs.py --runs 24 --gap 90 --out figures/bench_packed_r10/runs
    python benchmarks/bench_packed_runs.py --replot --out figures/bench_packed_r10/runs
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the issue's targets: packed / float twin at each width of the held-out shape
TARGETS = {256: 0.5, 1024: 2.0}
#: a run's host is "quiet" when its gauge is within this fraction of the best gauge seen
QUIET = 0.10


def quiet_host(gauge: float, best: float) -> bool:
    """Whether a run's gauge (the mean of the microbenchmark before and after it) is within
    :data:`QUIET` of ``best``, the best such gauge of its series: the host's quiet phases."""
    return gauge >= (1 - QUIET) * best


def busy_percent(seconds: float = 2.0) -> float:
    """Percent of this machine's CPU time not idle over ``seconds`` (``/proc/stat``; 0 elsewhere)."""
    def sample() -> tuple[int, int]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        except (OSError, ValueError):
            return 0, 0
        return sum(fields), fields[3]
    t1, i1 = sample()
    time.sleep(seconds)
    t2, i2 = sample()
    return 100.0 * ((t2 - t1) - (i2 - i1)) / (t2 - t1) if t2 > t1 else 0.0


def parse_run(text: str) -> dict[int, dict[str, float]]:
    """Width -> ``{"ratio", "gauge"}`` from the simulate table of a ``bench_packed.py`` output
    (the ratio column ``0.64x``; the gauge the mean of its before / after values)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 10 and cells[0].isdigit() and cells[4].endswith("x") and "/" in cells[-1]:
            before, after = (float(v.replace(",", "")) for v in cells[-1].split("/"))
            rows[int(cells[0])] = {"ratio": float(cells[4][:-1]), "gauge": (before + after) / 2}
    return rows


def read_runs(folder: Path) -> list[tuple[str, dict[int, dict[str, float]]]]:
    """``(HH:MM:SS, rows)`` of every ``run-HHMMSS.md`` in ``folder`` with a simulate table, in name order."""
    runs = []
    for path in sorted(folder.glob("run-*.md")):
        rows = parse_run(path.read_text())
        stamp = re.sub(r"run-(\d\d)(\d\d)(\d\d).*", r"\1:\2:\3", path.stem)
        if rows:
            runs.append((stamp, rows))
    return runs


def cpu_of(folder: Path) -> str:
    """The CPU the runs in ``folder`` name (the first ``CPU: `` line's model, before its first ``;``;
    a set of them joined with `` / `` if they differ), or ``unknown CPU``."""
    names = []
    for path in sorted(folder.glob("run-*.md")):
        line = next((ln for ln in path.read_text().splitlines() if ln.startswith("CPU: ")), None)
        name = line[5:].split(";")[0].split(",")[0].strip() if line else None
        if name and name not in names:
            names.append(name)
    return " / ".join(names) or "unknown CPU"


def summary(runs: list[tuple[str, dict[int, dict[str, float]]]]) -> list[str]:
    """The markdown summary: per width, the runs meeting the target, all and quiet-host."""
    head = ("| W | target | runs | meeting it | ratio min / median / max | quiet-host runs (gauge within "
            f"{QUIET:.0%} of the best) | meeting it | their ratio min / median |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for w, target in TARGETS.items():
        pts = [r[w] for _, r in runs if w in r]
        if not pts:
            continue
        best = max(p["gauge"] for p in pts)
        quiet = [p for p in pts if quiet_host(p["gauge"], best)]
        ratios, qr = [p["ratio"] for p in pts], [p["ratio"] for p in quiet]
        lines.append(f"| {w} | {target}x | {len(pts)} | {sum(r >= target for r in ratios)} | "
                     f"{min(ratios):.2f} / {statistics.median(ratios):.2f} / {max(ratios):.2f} | {len(quiet)} | "
                     f"{sum(r >= target for r in qr)} | {min(qr):.2f} / {statistics.median(qr):.2f} |")
    lines += ["", "| time (UTC) | " + " | ".join(f"W {w}: ratio (gauge)" for w in TARGETS) + " |",
              "|---|" + "---|" * len(TARGETS)]
    for stamp, rows in runs:
        cells = [f"{rows[w]['ratio']:.2f}x ({rows[w]['gauge']:,.0f})" if w in rows else "" for w in TARGETS]
        lines.append(f"| {stamp} | " + " | ".join(cells) + " |")
    return lines


def plot(runs: list[tuple[str, dict[int, dict[str, float]]]], path: Path, cpu: str = "unknown CPU") -> bool:
    """Ratio against gauge, one panel per width, the target drawn; ``False`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(10, 4.6))
    for ax, (w, target) in zip(axes, TARGETS.items()):
        pts = [r[w] for _, r in runs if w in r]
        if not pts:
            continue
        ax.scatter([p["gauge"] for p in pts], [p["ratio"] for p in pts], s=18, color="tab:blue")
        ax.axhline(target, color="tab:red", lw=1, ls="--", label=f"target {target}x")
        best = max(p["gauge"] for p in pts)
        ax.axvline((1 - QUIET) * best, color="gray", lw=1, ls=":", label=f"quiet host: within {QUIET:.0%} of the best")
        ax.set_xlabel("host gauge: AND + popcount microbenchmark (G bit-ops/s)")
        ax.set_ylabel("packed engine / float twin (samples/s)")
        ax.set_title(f"W = {w}: {sum(p['ratio'] >= target for p in pts)} of {len(pts)} runs at the target")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)  # off the points
    fig.suptitle(f"bench_packed --only simulate, fresh process each run (held-out shape, batch 256, T = 4; {cpu})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="runs to make (default 30)")
    ap.add_argument("--gap", type=float, default=100.0, help="seconds between runs (default 100)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the runs, runs.md and runs.png")
    ap.add_argument("--replot", action="store_true", help="only summarise the runs already in --out")
    args = ap.parse_args(argv)
    if args.runs < 1 or not args.gap >= 0:
        ap.error(f"--runs must be >= 1 and --gap >= 0; got {args.runs} and {args.gap}.")
    if args.replot and not args.out.is_dir():
        ap.error(f"--out must be a folder of runs with --replot; {args.out} is not one.")
    if not args.replot:
        args.out.mkdir(parents=True, exist_ok=True)
        for i in range(args.runs):
            while busy_percent() > 10:
                time.sleep(15)
            stamp = time.strftime("%H%M%S", time.gmtime())
            res = subprocess.run([sys.executable, str(HERE / "bench_packed.py"), "--widths", "256", "1024",
                                  "--repeats", "9", "--samples", "1024", "--clock", "cpu", "--only", "simulate"],
                                 capture_output=True, text=True, check=False)
            if res.returncode:
                last = (res.stderr.strip().splitlines() or ["no message"])[-1]
                ap.exit(1, f"bench_packed_runs.py: run {i + 1} of bench_packed.py failed (exit {res.returncode}): {last}\n")
            out = res.stdout
            (args.out / f"run-{stamp}.md").write_text(out)
            print(f"run {i + 1}/{args.runs} at {stamp}: "
                  + ", ".join(f"W {w} {v['ratio']:.2f}x" for w, v in parse_run(out).items()), flush=True)
            if i + 1 < args.runs:
                time.sleep(args.gap)
    runs = read_runs(args.out)
    if not runs:
        ap.error(f"no run with a simulate table in {args.out}.")
    cpu = cpu_of(args.out)
    text = "\n".join([f"CPU: {cpu}", "", *summary(runs)]) + "\n"
    (args.out / "runs.md").write_text(text)
    print(text)
    if plot(runs, args.out / "runs.png", cpu):
        print(f"figure: {args.out / 'runs.png'}")


if __name__ == "__main__":
    main()
