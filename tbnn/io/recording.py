r"""Recorded spike trains: read NWB, NIX and spike-time tables into one :class:`Recording`.

A recording is a set of *units* (sorted neurons) observed over one or more *trials*
(time windows ``[t_start, t_stop)`` in seconds, e.g. the repeats of a stimulus). A
:class:`Recording` holds, for every trial, the spike times of every unit in seconds
(absolute times, as in the file), the trial bounds and, optionally, a condition label per
trial (which stimulus was shown; the trial-view Fano factor and noise correlations compare
trials of the same condition, as the network's analysis compares samples of one class).

Readers (:func:`read_recording` picks one by the file's suffix):

* **NWB** (``.nwb``) through ``neo.io.NWBIO`` (needs ``pynwb``): every ``neo.Segment`` is
  a trial, its spike trains (the NWB ``units`` table) are the units;
* **NIX** (``.nix``) through ``neo.io.NixIO`` (needs ``nixio``): the same mapping;
* **spike-time table** (``.csv`` or ``.npz``): one row per spike with the columns ``unit``
  (name or number) and ``time`` (s), and optionally ``trial`` (trial id), ``trial_start``
  and ``trial_stop`` (s; the bounds of the row's trial, repeated on each of its rows) and
  ``condition`` (integer). Without ``trial`` the table is one trial; without bounds a
  trial spans from 0 s (or its first spike, if earlier) to its last spike.

A segment's ``condition`` annotation (NWB / NIX) becomes the trial's condition.

Stream view: as for the network (:mod:`tbnn.analysis.rates`), :meth:`Recording.stream`
concatenates the trials of each unit end to end (trial *k* shifted to start where trial
*k - 1* ended) into one train, as if the trials had been presented one after another
with no gap.

Every reader refuses a bad file with a ``ValueError`` of one sentence naming the file and
the problem (not that format, no spike trains, a unit missing from a trial, a unit without
spikes); reading never writes anything.

>>> rec = Recording(units=("a", "b"), trials=[[np.array([0.1, 0.5]), np.array([0.2])]],
...                 t_start=np.array([0.0]), t_stop=np.array([1.0]))
>>> rec.n_units, rec.n_trials, rec.counts().tolist()
(2, 1, [[2, 1]])
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tbnn.core.deprecation import deprecated_attributes
from tbnn.io.bounded import check_size, open_npz

__all__ = ["RECORDING_FORMATS", "MAX_SECONDS", "MAX_CONDITION", "Recording", "from_table", "read_recording"]

#: Largest spike or trial time (s) a recording may hold: about 11.6 days.
MAX_SECONDS = 1e6
#: Conditions are integers of magnitude below this.
MAX_CONDITION = 2**31

RECORDING_FORMATS: dict[str, str] = {".nwb": "nwb", ".nix": "nix", ".csv": "table", ".npz": "table"}
"""File suffix -> the recording format that reads it (``FORMATS`` before; that name is kept,
deprecated: :data:`tbnn.viz.formats.FORMATS` are figure formats)."""
__getattr__ = deprecated_attributes(__name__, {"FORMATS": ("tbnn.io.recording.RECORDING_FORMATS",
                                                           lambda: RECORDING_FORMATS)})


@dataclass
class Recording:
    """Spike trains of recorded units, grouped by trial.

    Attributes
    ----------
    units : tuple of str
        Unit names, in a fixed order.
    trials : list of list of np.ndarray
        ``trials[k][i]``: sorted spike times (s) of unit ``i`` in trial ``k``, absolute
        times within ``[t_start[k], t_stop[k]]``.
    t_start, t_stop : np.ndarray ``[trials]``
        Trial bounds in s.
    conditions : np.ndarray ``[trials]`` of int
        Condition (stimulus) of each trial; all 0 when the file names none.
    source : str
        The file it was read from (or a description).
    """

    units: tuple[str, ...]
    trials: list[list[np.ndarray]]
    t_start: np.ndarray
    t_stop: np.ndarray
    conditions: np.ndarray | None = None
    source: str = "<memory>"
    _stream: list | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.units = tuple(str(u) for u in self.units)
        self.t_start = np.asarray(self.t_start, dtype=float).ravel()
        self.t_stop = np.asarray(self.t_stop, dtype=float).ravel()
        if self.conditions is None:
            self.conditions = np.zeros(len(self.trials), dtype=np.int64)
        self.conditions = np.asarray(self.conditions).astype(np.int64).ravel()
        src = self.source
        if not self.units:
            raise ValueError(f"{src} holds no units.")
        if not self.trials:
            raise ValueError(f"{src} holds no trials.")
        n = len(self.trials)
        if self.t_start.shape != (n,) or self.t_stop.shape != (n,) or self.conditions.shape != (n,):
            raise ValueError(f"{src}: t_start, t_stop and conditions must hold one value per "
                             f"trial ({n}).")
        if np.any(~np.isfinite(self.t_start)) or np.any(~(self.t_stop > self.t_start)):
            raise ValueError(f"{src}: every trial must end after it starts (finite bounds, "
                             f"t_stop > t_start).")
        clean = []
        for k, tr in enumerate(self.trials):
            if len(tr) != len(self.units):
                raise ValueError(f"{src}: trial {k} holds {len(tr)} units, expected "
                                 f"{len(self.units)} (a unit is missing from a trial).")
            row = []
            for i, t in enumerate(tr):
                a = np.sort(np.asarray(t, dtype=float).ravel())
                if a.size and (not np.all(np.isfinite(a)) or a[0] < self.t_start[k]
                               or a[-1] > self.t_stop[k]):
                    raise ValueError(f"{src}: unit {self.units[i]!r} has spike times outside "
                                     f"trial {k} [{self.t_start[k]:g}, {self.t_stop[k]:g}] s.")
                row.append(a)
            clean.append(row)
        self.trials = clean
        empty = [u for i, u in enumerate(self.units) if sum(tr[i].size for tr in clean) == 0]
        if empty:
            raise ValueError(f"{src}: unit {empty[0]!r} has no spikes in any trial (empty unit).")

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def durations(self) -> np.ndarray:
        """Trial durations in s, ``[trials]``."""
        return self.t_stop - self.t_start

    def counts(self) -> np.ndarray:
        """Spike counts, int64 ``[trials, units]``."""
        return np.array([[t.size for t in tr] for tr in self.trials], dtype=np.int64)

    # -- neo views -----------------------------------------------------------------------
    def spiketrains(self, trial: int) -> list:
        """The units' ``neo.SpikeTrain`` objects (s) of one trial, in unit order."""
        import neo

        if not 0 <= int(trial) < self.n_trials:
            raise ValueError(f"trial must be in [0, {self.n_trials - 1}], got {trial!r}.")
        k = int(trial)
        return [neo.SpikeTrain(t, units="s", t_start=self.t_start[k], t_stop=self.t_stop[k],
                               name=u) for u, t in zip(self.units, self.trials[k])]

    def stream_times(self) -> list[np.ndarray]:
        """Each unit's spike times (s) on the stream time axis (trials end to end from 0)."""
        offsets = np.concatenate([[0.0], np.cumsum(self.durations)[:-1]])
        return [np.concatenate([tr[i] - self.t_start[k] + offsets[k]
                                for k, tr in enumerate(self.trials)])
                for i in range(self.n_units)]

    def stream(self) -> list:
        """Each unit's ``neo.SpikeTrain`` (s) of the stream view, ``t_start = 0``,
        ``t_stop`` = the summed trial durations."""
        if self._stream is None:
            import neo

            total = float(self.durations.sum())
            self._stream = [neo.SpikeTrain(np.clip(t, 0.0, total), units="s", t_start=0.0,
                                           t_stop=total, name=u)
                            for u, t in zip(self.units, self.stream_times())]
        return self._stream


# ----------------------------------------------------------------------------------------
def read_recording(path: str | os.PathLike, format: str | None = None) -> Recording:
    """Read recorded spike trains from an NWB, NIX or spike-time table file.

    Parameters
    ----------
    path : str or path-like
        ``.nwb``, ``.nix``, ``.csv`` or ``.npz`` (see the module docstring for the layouts).
    format : {"nwb", "nix", "table"}, optional
        Overrides the choice by suffix.

    Returns
    -------
    Recording

    Raises
    ------
    ValueError
        One sentence naming the file and the problem: missing, unknown suffix, not that
        format, no spike trains, a unit missing from a trial, a unit without spikes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("unit,time\\nA,0.1\\nA,0.4\\nB,0.3\\n")
    >>> rec = read_recording(p)
    >>> rec.units, rec.counts().tolist()
    (('A', 'B'), [[2, 1]])
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"recording {p} does not exist or is not a file.")
    kind = format if format is not None else RECORDING_FORMATS.get(p.suffix.lower())
    if kind not in ("nwb", "nix", "table"):
        if format is not None:
            raise ValueError(f"format must be 'nwb', 'nix' or 'table', got {format!r}.")
        raise ValueError(f"recording {p} has suffix {p.suffix!r}; expected one of "
                         f"{', '.join(RECORDING_FORMATS)}.")
    if kind == "table":
        return _read_table(p)
    return _read_neo(p, kind)


def _read_neo(p: Path, kind: str) -> Recording:
    try:
        if kind == "nwb":
            from neo.io import NWBIO as IO
        else:
            from neo.io import NixIO as IO
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(f"reading {p} needs {'pynwb' if kind == 'nwb' else 'nixio'} (pip install "
                         f"tbnn[bio]): {exc}.") from None
    name = "NWB" if kind == "nwb" else "NIX"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io = IO(str(p), mode="r" if kind == "nwb" else "ro")
            try:
                blocks = io.read_all_blocks(lazy=False)
            finally:
                close = getattr(io, "close", None)
                if close is not None:
                    close()
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not that format"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if kind == "nwb" and "obs_intervals" in msg:
            raise ValueError(f"recording {p}: its NWB units table has no obs_intervals column, which neo's NWB "
                             f"reader needs; add obs_intervals (when each unit was observed), or export the spike "
                             f"times as a CSV table (unit, time).") from None
        raise ValueError(f"recording {p} is not a readable {name} file ({msg}).") from None
    segments = [seg for blk in blocks for seg in blk.segments if seg.spiketrains]
    if not segments:
        raise ValueError(f"recording {p} holds no spike trains.")
    names0 = _unit_names(segments[0].spiketrains)
    trials, t0, t1, cond = [], [], [], []
    for k, seg in enumerate(segments):
        names = _unit_names(seg.spiketrains)
        missing = [u for u in names0 if u not in names]
        if missing or len(names) != len(names0):
            what = missing[0] if missing else min(set(names) - set(names0))
            raise ValueError(f"recording {p}: unit {what!r} is missing from trial {k} (every "
                             f"trial must hold the same units).")
        by_name = dict(zip(names, seg.spiketrains))
        trains = [by_name[u] for u in names0]
        trials.append([st.rescale("s").magnitude.astype(float) for st in trains])
        for column, values in (("spike time", trials[-1]), ("t_start", [st.t_start.rescale("s").magnitude for st in
                                                                        trains])):
            for v in values:
                _check_times(np.atleast_1d(np.asarray(v, float)), column, str(p))
        t0.append(min(float(st.t_start.rescale("s").magnitude) for st in trains))
        t1.append(max(float(st.t_stop.rescale("s").magnitude) for st in trains))
        c = seg.annotations.get("condition", 0)
        try:
            cond.append(int(c))
            if abs(cond[-1]) >= MAX_CONDITION:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"recording {p}: trial {k} has condition annotation {c!r}; conditions must be "
                             f"integers of magnitude below {MAX_CONDITION}.") from None
    return Recording(tuple(names0), trials, np.array(t0), np.array(t1), np.array(cond),
                     source=str(p))


def _unit_names(trains: list) -> list[str]:
    names = [st.name if st.name else f"unit{i}" for i, st in enumerate(trains)]
    if len(set(names)) != len(names):  # unnamed or duplicated: by position
        names = [f"unit{i}" for i in range(len(trains))]
    return [str(n) for n in names]


_TABLE_COLUMNS = ("unit", "time", "trial", "trial_start", "trial_stop", "condition")


def _read_table(p: Path) -> Recording:
    if p.suffix.lower() == ".npz":
        try:
            with open_npz(p, "recording") as z:  # sizes, headers and CRCs checked first
                cols = {k: np.asarray(z[k]) for k in z.files}
        except ValueError as exc:
            if f"{p} is not a recording (" in str(exc):  # not a zip archive at all
                raise ValueError(f"recording {p} is not a readable .npz spike-time table (not a zip "
                                 f"archive).") from None
            raise
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"recording {p} is not a readable .npz spike-time table "
                             f"({type(exc).__name__}).") from None
    else:
        try:
            with open(p, newline="", encoding="utf-8-sig") as fh:  # a UTF-8 BOM (Excel) is not a column name
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"recording {p} is not a readable CSV spike-time table "
                             f"({type(exc).__name__}).") from None
        rows = [r for r in rows if r and any(c.strip() for c in r)]
        if not rows:
            raise ValueError(f"recording {p} is empty (no header, no spike trains).")
        header = [h.strip() for h in rows[0]]
        body = rows[1:]
        if any(len(r) != len(header) for r in body):
            raise ValueError(f"recording {p} has rows whose number of fields differs from "
                             f"the header's ({len(header)}).")
        cols = {h: np.array([r[j].strip() for r in body]) for j, h in enumerate(header)}
    return from_table(cols, source=str(p))


def from_table(columns: dict[str, Any], source: str = "<table>") -> Recording:
    """A :class:`Recording` from spike-time table columns (one entry per spike).

    ``columns`` maps ``unit`` and ``time`` (s), and optionally ``trial``, ``trial_start``,
    ``trial_stop`` and ``condition``, to equal-length sequences (see the module
    docstring). Unknown columns are ignored.

    Raises
    ------
    ValueError
        Missing ``unit`` or ``time`` column, no rows, non-numeric times, inconsistent trial
        bounds or conditions.
    """
    src = source
    n = _check_columns(columns, src)
    units_col = np.asarray(columns["unit"]).astype(str)
    if np.any(np.char.strip(units_col) == ""):
        raise ValueError(f"recording {src}: a row has an empty unit name.")
    time = _numbers(columns, "time", src)
    _check_times(time, "time", src)
    trial = np.asarray(columns["trial"]).astype(str) if "trial" in columns else np.zeros(n, str)
    units, ucode = _codes(units_col)
    trial_ids, tcode = _codes(trial)
    # one array per unit and trial: bounded before any is made
    check_size(float(len(units)) * len(trial_ids) * 112, f"recording {src} ({len(trial_ids)} trials x "
               f"{len(units)} units)")
    bounds = _trial_bounds(columns, src)
    cond = _numbers(columns, "condition", src) if "condition" in columns else np.zeros(n)
    big = np.abs(cond) >= MAX_CONDITION
    if np.any(big):
        raise ValueError(f"recording {src}: column 'condition' holds {cond[big][0]:g}; conditions must be "
                         f"integers of magnitude below {MAX_CONDITION}.")
    trials, t0, t1, conds = [], [], [], []
    # rows sorted by (trial, unit) once: every trial and unit is a slice (linear in the rows)
    order = np.lexsort((ucode, tcode))
    tsorted, usorted = tcode[order], ucode[order]
    tcuts = np.searchsorted(tsorted, np.arange(len(trial_ids) + 1))
    for k, tid in enumerate(trial_ids):
        rows = order[tcuts[k]:tcuts[k + 1]]
        tt = time[rows]
        start, stop = _trial_span(bounds, rows, tt, tid, src)
        c = np.unique(cond[rows])
        if c.size != 1 or c[0] != round(c[0]):
            raise ValueError(f"recording {src}: trial {tid!r} must have one integer condition.")
        ucuts = np.searchsorted(usorted[tcuts[k]:tcuts[k + 1]], np.arange(1, len(units)))
        trials.append(np.split(tt, ucuts))
        t0.append(start)
        t1.append(stop)
        conds.append(int(c[0]))
    return Recording(units, trials, np.array(t0), np.array(t1), np.array(conds), source=src)


def _check_columns(columns: dict[str, Any], src: str) -> int:
    """Refuse a table without ``unit`` or ``time``, without rows, or with columns of unequal
    length; returns the number of rows."""
    for need in ("unit", "time"):
        if need not in columns:
            raise ValueError(f"recording {src} has no {need!r} column (a spike-time table "
                             f"needs 'unit' and 'time').")
    n = len(columns["unit"])
    if n == 0:
        raise ValueError(f"recording {src} holds no spike trains (no rows).")
    for c in _TABLE_COLUMNS:
        if c in columns and len(columns[c]) != n:
            raise ValueError(f"recording {src}: column {c!r} has {len(columns[c])} entries, "
                             f"'unit' has {n}.")
    return n


def _numbers(columns: dict[str, Any], c: str, src: str) -> np.ndarray:
    """Column ``c`` as finite floats."""
    try:
        a = np.asarray(columns[c]).astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"recording {src}: column {c!r} must hold numbers.") from None
    if not np.all(np.isfinite(a)):
        raise ValueError(f"recording {src}: column {c!r} must hold finite numbers.")
    return a


def _trial_bounds(columns: dict[str, Any], src: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``trial_start`` and ``trial_stop`` columns (both or neither; None when neither)."""
    has_bounds = "trial_start" in columns or "trial_stop" in columns
    if has_bounds and not ("trial_start" in columns and "trial_stop" in columns):
        raise ValueError(f"recording {src} needs both 'trial_start' and 'trial_stop' columns, "
                         f"or neither.")
    if not has_bounds:
        return None
    lo = _numbers(columns, "trial_start", src)
    hi = _numbers(columns, "trial_stop", src)
    _check_times(lo, "trial_start", src)
    _check_times(hi, "trial_stop", src)
    return lo, hi


def _trial_span(bounds: tuple[np.ndarray, np.ndarray] | None, rows: np.ndarray, tt: np.ndarray,
                tid: str, src: str) -> tuple[float, float]:
    """A trial's ``(start, stop)``: its one ``trial_start`` and ``trial_stop``, or without
    bounds from 0 s (or its first spike, if earlier) to its last spike."""
    if bounds is None:
        return min(0.0, float(tt.min())), float(tt.max())
    a, b = np.unique(bounds[0][rows]), np.unique(bounds[1][rows])
    if a.size != 1 or b.size != 1:
        raise ValueError(f"recording {src}: trial {tid!r} has more than one "
                         f"trial_start or trial_stop.")
    return float(a[0]), float(b[0])


def _check_times(a: np.ndarray, column: str, src: str) -> None:
    """Refuse times beyond :data:`MAX_SECONDS` (what would make any binning unbounded)."""
    bad = np.abs(a) > MAX_SECONDS
    if np.any(bad):
        raise ValueError(f"recording {src}: column {column!r} holds {a[bad][0]:g} s; times must lie within "
                         f"+-{MAX_SECONDS:g} s (about {MAX_SECONDS / 86400:.0f} days).")


def _codes(a: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Names in order of first appearance and each entry's index among them."""
    uniq, first, inv = np.unique(a, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return tuple(str(uniq[i]) for i in order), rank[inv.reshape(-1)]
