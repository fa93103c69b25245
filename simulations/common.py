"""Shared helpers for the experiment scripts in ``simulations/``.

Every script is runnable alone (``python simulations/NAME.py [--quick] [--out DIR]``) and
from a test (``main(["--quick", "--out", tmp])``). This module gives them:

* :func:`make_parser` / :func:`parse_args`: the common options ``--quick`` (a tiny run,
  seconds, for the tests), ``--out DIR`` (default: the repository's ``figures/`` for a full
  run; ``runs/quick/SCRIPT/`` for ``--quick``, which writes into ``figures/`` only when asked),
  ``--threads N`` (torch intra-op threads; default 1, the machine is shared),
  ``--no-progress``, ``--replot`` (redraw the figures from the JSON the script saved in
  ``--out``, without training) and ``--format svg|pdf`` (also write vector figures);
* :func:`seed_everything`: seeds :mod:`random`, NumPy and torch;
* :func:`write_json` / :func:`write_text` / :func:`save_figure` / :func:`copy_file`: atomic
  writes into the output directory (JSON with NaN and infinities written as ``null``;
  figures in the one style of :mod:`tbnn.viz.style`, each PNG sealed by tbnn with the
  command that made it, :func:`tbnn.io.files.seal_png`); :func:`read_result` reads a saved
  JSON back for ``--replot``;
* :func:`mean_std`, :func:`fmt_pm`, :func:`format_table`: summary numbers and a small
  Markdown table formatter (the same text is printed and written to ``.md`` files);
* :func:`progress`: a tqdm bar (or the plain iterable when progress is off);
* :func:`run_info`: versions and settings to store next to the results.

Scripts import it as ``import common`` after putting ``simulations/`` on ``sys.path``
(see the top of any script), so they work both as ``python simulations/x.py`` and when a
test loads them by path.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tbnn.core.validate import json_ready
from tbnn.runtime.threads import add_threads_option, set_threads

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
DPI = 100  # tbnn.viz.style.DPI: one resolution for every figure
#: Vector formats written next to every PNG (set by ``--format``).
EXTRA_FORMATS: list[str] = []

__all__ = [
    "ROOT", "FIGURES", "DPI", "make_parser", "parse_args", "seed_everything", "write_json",
    "write_text", "save_figure", "mean_std", "fmt_pm", "format_table", "progress", "run_info",
    "Timer", "clean", "log_ticks", "read_result", "errorbar_points", "EXTRA_FORMATS", "copy_file",
    "QUICK_RUNS",
]
#: Where ``--quick`` writes by default: ``QUICK_RUNS/SCRIPT`` (``/runs/`` is ignored by git).
QUICK_RUNS = ROOT / "runs" / "quick"


# --------------------------------------------------------------------------------------
# arguments


def make_parser(description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every simulation script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(script=Path(inspect.stack()[1].filename).stem)
    p.add_argument("--quick", action="store_true",
                   help="tiny run (a few seconds) that exercises every code path; used by the tests")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the JSON, Markdown and PNG outputs (none: figures/ for a full run, "
                        "runs/quick/SCRIPT/ for --quick)")
    add_threads_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--replot", action="store_true",
                   help="redraw the figures from the JSON saved in --out, without training")
    p.add_argument("--format", dest="formats", action="append", choices=["svg", "pdf"], default=[],
                   help="also write every figure in this vector format (repeatable)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``), create ``--out`` and set torch's threads."""
    args = parser.parse_args(None if argv is None else list(argv))
    set_threads(parser, args.threads)
    if args.out is None:  # --quick never writes into figures/ unless asked
        args.out = QUICK_RUNS / args.script if args.quick else FIGURES
        if args.quick and not args.replot:
            print(f"quick run: writing to {args.out} (pass --out to choose; figures/ only when asked)")
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    EXTRA_FORMATS[:] = list(dict.fromkeys(getattr(args, "formats", []) or []))
    args.progress = not args.no_progress
    args.git = _git_state()  # the code a run starts with (it may change while a long run goes on)
    args.started = time.strftime("%Y-%m-%d %H:%M:%S")
    return args


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------
# writing


#: A JSON-safe copy (NumPy / torch scalars and arrays to Python, NaN and infinities to ``None``):
#: the package's one JSON cleaner, :func:`tbnn.core.validate.json_ready`, under this module's old name.
clean = json_ready


def write_json(out: str | os.PathLike, name: str, obj: Any) -> Path:
    """Write ``obj`` to ``out/name`` as indented JSON, atomically; returns the path."""
    from tbnn.io.files import write_json as _write

    return _write(Path(out) / name, json_ready(obj))


def write_text(out: str | os.PathLike, name: str, text: str) -> Path:
    """Write ``text`` to ``out/name`` atomically; returns the path."""
    from tbnn.io.files import atomic_write

    data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    return atomic_write(Path(out) / name, lambda fh: fh.write(data))


def save_figure(fig, out: str | os.PathLike, name: str, dpi: int = DPI) -> Path:
    """Save a Matplotlib figure as ``out/name`` (PNG at :data:`DPI`) and in the vector formats
    of ``--format``, atomically, and close it."""
    import matplotlib.pyplot as plt
    from tbnn.viz.style import save_figure as _save

    try:
        path = _save(fig, Path(out) / name, dpi=dpi, formats=tuple(EXTRA_FORMATS))
    finally:
        plt.close(fig)
    _seal(Path(out) / name)
    return path


def _seal(path: Path) -> None:
    """Record in a PNG, sealed by tbnn, the command that made it (the tbnn record, ``tEXt`` ``tbnn``)."""
    from tbnn.io.files import atomic_write, seal_png

    if path.suffix.lower() != ".png" or not path.is_file():
        return
    tmp = path.with_name(f".seal.{path.name}")
    try:
        tmp.write_bytes(path.read_bytes())
        seal_png(tmp, command=" ".join(["python", *sys.argv]), script=str(Path(sys.argv[0]).name))
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(path, lambda fh: fh.write(data))


def copy_file(src: str | os.PathLike, out: str | os.PathLike, name: str) -> Path:
    """Copy ``src`` to ``out/name`` atomically (an earlier copy is replaced whole); returns the path."""
    from tbnn.io.files import atomic_write

    data = Path(src).read_bytes()
    return atomic_write(Path(out) / name, lambda fh: fh.write(data))


def read_result(out: str | os.PathLike, name: str) -> dict[str, Any]:
    """The JSON a script saved as ``out/name``, for ``--replot``; one sentence if absent."""
    from tbnn.io.files import read_json

    path = Path(out) / name
    if not path.is_file():
        raise SystemExit(f"--replot needs {path}, written by an earlier run of this script "
                         "with the same --out.")
    return read_json(path, name)


def resumed(out: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """``--resume``: the JSON an earlier (perhaps interrupted) run of the script saved as
    ``out/name``, or ``None`` when there is none; one sentence naming ``--resume`` when the file
    is not valid JSON (nothing is written then)."""
    from tbnn.io.files import read_json

    path = Path(out) / name
    if not path.is_file():
        return None
    try:
        return read_json(path, name)
    except ValueError as err:
        raise SystemExit(f"--resume: {err} Remove it, or run without --resume.") from None


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, in the style of
    :mod:`tbnn.viz.style` (fonts, dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tbnn.viz.style import RC

    plt.rcParams.update(RC)
    return plt


def errorbar_points(ax, x, y, yerr, color, marker="o", filled=True, size=5.5, **kw):
    """One marker per point with a vertical error bar (mean ± std over seeds); an open
    marker when ``filled`` is False."""
    return ax.errorbar(x, y, yerr=yerr, fmt=marker, color=color, ms=size, mec=color,
                       mfc=color if filled else "white", mew=1.1, elinewidth=0.9, capsize=2,
                       **kw)


# --------------------------------------------------------------------------------------
# numbers and tables


def seed_text(seeds: Iterable[int]) -> str:
    """Seeds for a title, three or more consecutive ones as a range.

    >>> seed_text([0, 1, 2, 3, 4, 9]), seed_text([5, 6]), seed_text([])
    ('0–4, 9', '5, 6', '')
    """
    runs: list[list[int]] = []
    for s in sorted(set(seeds)):
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def mean_std(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and population std (ddof 0) of the finite values; ``(nan, nan)`` if there are none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return float("nan"), float("nan")
    a = np.asarray(v)
    return float(a.mean()), float(a.std())


def fmt_pm(values: Iterable[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of ``values * scale`` (e.g. accuracies in percent); ``"n/a"`` if empty."""
    m, s = mean_std(values)
    if not math.isfinite(m):
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown (GitHub) table, padded so that it also reads well as plain text.

    ``align``: one character per column, ``l`` or ``r`` (default: left for the first
    column, right for the others). Floats are shown with 4 significant digits.
    """
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if not math.isfinite(v) else f"{v:.4g}"
        return str(v)

    body = [[cell(v) for v in r] for r in rows]
    n = len(headers)
    for r in body:
        if len(r) != n:
            raise ValueError(f"every row must have {n} cells; got {len(r)}.")
    align = align or ("l" + "r" * (n - 1))
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h)) for i, h in enumerate(headers)]
    widths = [max(w, 3) for w in widths]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return "| " + " | ".join(parts) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else ("-" * w) for w, a in zip(widths, align)) + " |"
    return "\n".join([line([str(h) for h in headers]), sep, *(line(r) for r in body)])


# --------------------------------------------------------------------------------------
# progress and provenance


def progress(iterable: Iterable, enabled: bool = True, desc: str | None = None, total: int | None = None):
    """A tqdm progress bar over ``iterable`` (to stderr), or ``iterable`` itself when disabled."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False)


def run_info(args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Versions, threads, the command line and the git commit, stored with every result file.

    ``git`` is the commit (``+dirty`` if ``tbnn/`` has uncommitted changes) when
    :func:`parse_args` ran, i.e. the code the run imported; ``date`` is when this is called.
    """
    import torch

    import tbnn

    info = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tbnn": getattr(tbnn, "__version__", "?"),
        "threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    info["git"] = getattr(args, "git", None) or _git_state()
    if args is not None:
        info["quick"] = bool(getattr(args, "quick", False))
        if getattr(args, "started", None):
            info["started"] = args.started
    return info


def _git_state() -> str | None:
    """``<commit>`` of the checkout, with ``+dirty`` when tracked files under ``tbnn/`` differ."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "tbnn"],
                               cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None


class Timer:
    """Context manager measuring wall-clock seconds (``.seconds``)."""

    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0


def log_ticks(ax) -> None:
    """Readable log x ticks (1, 2, 5 per decade, compact numbers) and some margin for labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e+0", "e") if v >= 1e4 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)
