"""Analyse a simulation run against the discrete-time null and biology; draw rasters.

:func:`analyze_run` reads ``SIMDIR/spikes.npz`` (and ``SIMDIR/simulation.json`` when
present), and writes ``OUT/analysis.json``, ``OUT/report.md`` and PNG figures next to it.
:func:`analyze_spikes` does the same analysis on arrays from Python and returns the
per-layer dictionary. :func:`raster_run` draws a raster of a run to a PNG.

Layout of ``analysis.json`` (NaN is written as ``null``)::

    {
      "tbnn_analysis_version": 1,
      "source": {"spikes": str, "simulation": str | null},
      "dt_ms": float, "dt_source": "archive" | "argument",
      "samples": int, "timesteps": int, "seed": int,
      "simulation": {accuracy, samples, timesteps, spikes_per_sample,
                     synaptic_ops_per_sample, ...} | null,
      "energy": {"source", "spikes_per_sample", "synaptic_ops_per_sample",
                 "layers": {name: {neurons, spikes_per_sample,
                                   spikes_per_neuron_per_sample, fanout,
                                   synaptic_ops_per_sample, synaptic_ops_source}}},
      "layers": {name: {
          "neurons", "samples", "timesteps", "dt_ms",
          "measures": {key: {
              "label", "units", "definition", "statistic", "value",
              "summary": {"mean", "median", "std", "min", "max", "n", "n_nan"},
              "null": {"analytic": {"value", "summary"} | null,
                       "shuffled": {"value", "summary"} | null, "note"},
              "biology": {"measure", "low", "high", "units", "statistic",
                          "citation", "note"} | null,
              "verdict": "inside" | "below" | "above" | "undefined" | null}},
          "rate_distribution": {lognormal fit, "biology": {statement, citation}},
          "complexity": {"network", "null_analytic", "null_shuffled"},
          "pairs": {"neurons_used", "bin_steps", "bin_ms"}}},
      "figures": {"raster": str, "layers": {name: {"stats": str, "summary": str}}},
      "references": [str, ...]
    }

``value`` is ``summary[statistic]``; ``n`` counts defined values and ``n_nan`` undefined
ones (e.g. CV2 of neurons with fewer than three spikes), which are never dropped silently.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tbnn.analysis import correlation as corr
from tbnn.analysis import irregularity as irr
from tbnn.analysis import rates
from tbnn.analysis import sparseness as sp
from tbnn.analysis import variability as var
from tbnn.analysis.reference import QUALITATIVE, REFERENCES, verdict
from tbnn.fileio import atomic_write
from tbnn.spikefile import SpikeRecord, load_spikes

__all__ = ["analyze_run", "analyze_spikes", "raster_run", "read_simulation", "summarize"]

ANALYSIS_VERSION = 1
_SUMMARY_FIELDS = ("mean", "median", "std", "min", "max", "n", "n_nan")


# ----------------------------------------------------------------------------------------
def summarize(values: Any) -> dict[str, float | int]:
    """Summary of a set of values: mean, median, std (ddof 0), min, max over the defined
    (non-NaN) values, ``n`` defined values and ``n_nan`` undefined ones."""
    v = np.asarray(values, dtype=float).ravel()
    nan = np.isnan(v)
    d = v[~nan]
    if d.size == 0:
        out: dict[str, Any] = {k: float("nan") for k in _SUMMARY_FIELDS[:5]}
    else:
        out = {"mean": float(d.mean()), "median": float(np.median(d)), "std": float(d.std()),
               "min": float(d.min()), "max": float(d.max())}
    out["n"] = int(d.size)
    out["n_nan"] = int(nan.sum())
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


_DEFS = {
    "rate_hz": ("firing rate", "Hz",
                "r_i = n_i / (L dt) over the stream train (Elephant mean_firing_rate)"),
    "rate_per_step": ("spike probability per step", "", "p_i = n_i / L"),
    "fraction_silent": ("fraction of silent neurons", "", "neurons with no spike in any sample"),
    "fraction_active": ("fraction of neurons active per step", "",
                        "mean over steps of the fraction of neurons spiking in that step"),
    "isi_ms": ("inter-spike interval", "ms", "I_k = t_{k+1} - t_k, pooled over neurons"),
    "cv": ("CV of ISIs", "", "std(I)/mean(I), ddof 0 (Elephant cv)"),
    "cv2": ("CV2", "", "mean 2|I_{k+1}-I_k|/(I_{k+1}+I_k) (Holt et al. 1996; Elephant cv2)"),
    "lv": ("LV", "", "mean 3(I_k-I_{k+1})^2/(I_k+I_{k+1})^2 (Shinomoto et al. 2003; Elephant lv)"),
    "lvr": ("LvR (R = 5 ms)", "",
            ("3/(n-1) sum (1-4 I_k I_{k+1}/(I_k+I_{k+1})^2)(1+4R/(I_k+I_{k+1})) "
             "(Shinomoto et al. 2009; Elephant lvr)")),
    "fano_stream": ("Fano factor, stream view", "",
                    ("Var/mean of counts in consecutive windows of T steps of the stream "
                     "train (Elephant fanofactor)")),
    "fano_trial": ("Fano factor, trial view", "",
                   "Var/mean of counts across samples of one class, averaged over classes"),
    "correlation": ("pairwise correlation of binned trains", "",
                    "Pearson r of binned stream trains (Elephant correlation_coefficient)"),
    "noise_correlation": ("spike-count noise correlation", "",
                          "Pearson r of counts across samples of one class, averaged over classes"),
    "synchrony_chi2": ("synchrony chi^2", "",
                       "Var(population mean)/mean single-neuron variance (Golomb 2007)"),
    "lifetime_sparseness": ("lifetime sparseness (Vinje-Gallant)", "",
                            "S = (1-a)/(1-1/n) over samples, a = <r>^2/<r^2>"),
    "population_sparseness": ("population sparseness (Vinje-Gallant)", "",
                              "S = (1-a)/(1-1/n) over neurons, per sample"),
    "lifetime_activity_ratio": ("lifetime activity ratio (Treves-Rolls)", "",
                                "a = <r>^2/<r^2> over samples"),
    "population_activity_ratio": ("population activity ratio (Treves-Rolls)", "",
                                  "a = <r>^2/<r^2> over neurons, per sample"),
}


def _entry(key: str, values: Any, analytic: Any = None, shuffled: Any = None,
           statistic: str = "median", note: str = "", mask_analytic: bool = True
           ) -> dict[str, Any]:
    label, units, definition = _DEFS[key]
    ref = REFERENCES.get(key)
    stat = ref.statistic if ref is not None else statistic
    vals = np.asarray(values, dtype=float).ravel()
    summ = summarize(vals)
    value = summ[stat]
    null: dict[str, Any] = {"analytic": None, "shuffled": None, "note": note}
    if analytic is not None:
        a = np.asarray(analytic, dtype=float).ravel()
        if mask_analytic and a.shape == vals.shape:
            a = a[~np.isnan(vals)]  # same neurons/pairs as the network's defined values
        s = summarize(a)
        null["analytic"] = {"value": s[stat], "summary": s}
    if shuffled is not None:
        s = summarize(shuffled)
        null["shuffled"] = {"value": s[stat], "summary": s}
    return {
        "label": label,
        "units": units,
        "definition": definition,
        "statistic": stat,
        "value": value,
        "summary": summ,
        "null": null,
        "biology": ref.as_dict() if ref is not None else None,
        "verdict": verdict(value, ref) if ref is not None else None,
    }


def _trim(dist: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    nz = np.flatnonzero(dist > tol)
    return dist[: (nz.max() + 1 if nz.size else 1)]


def _layer_analysis(arr: np.ndarray, dt: float, labels: np.ndarray | None, seed: int,
                    bin_steps: int, max_pair_neurons: int, R_ms: float
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    S, T, N = arr.shape
    sh = rates.shuffle_bins(arr, seed=seed)
    p = rates.rate_per_step(arr)
    p_sh = rates.rate_per_step(sh)
    m: dict[str, Any] = {}
    same = "equal to the network's by construction (the null fires at each neuron's own p)"
    r_hz = rates.rate_hz(arr, dt)
    m["rate_hz"] = _entry("rate_hz", r_hz, r_hz, rates.rate_hz(sh, dt), note=same)
    m["rate_per_step"] = _entry("rate_per_step", p, p, p_sh, statistic="mean", note=same)
    fs = rates.fraction_silent(arr)
    m["fraction_silent"] = _entry("fraction_silent", [fs], [fs], [rates.fraction_silent(sh)],
                                  statistic="mean", note=same)
    m["fraction_active"] = _entry("fraction_active", rates.fraction_active_per_step(arr),
                                  [p.mean()], rates.fraction_active_per_step(sh),
                                  mask_analytic=False, note="analytic: mean p over neurons")
    im = irr.interval_measures(arr, dt, R_ms)
    im_sh = irr.interval_measures(sh, dt, R_ms)
    isis, isis_sh, cv = im["isi_ms"], im_sh["isi_ms"], im["cv"]
    m["isi_ms"] = _entry("isi_ms", isis, None, isis_sh, statistic="median",
                         note="shuffled only; the null's ISIs are geometric with mean dt/p")
    defined = "analytic: closed form at each neuron's p, over the neurons where the network " \
              "value is defined"
    m["cv"] = _entry("cv", cv, irr.null_cv(p), im_sh["cv"], note=defined + "; sqrt(1-p)")
    m["cv2"] = _entry("cv2", im["cv2"], irr.null_cv2(p), im_sh["cv2"], note=defined)
    m["lv"] = _entry("lv", im["lv"], irr.null_lv(p), im_sh["lv"], note=defined)
    m["lvr"] = _entry("lvr", im["lvr"], irr.null_lvr(p, dt, R_ms), im_sh["lvr"], note=defined)
    if S >= 2:
        m["fano_stream"] = _entry("fano_stream", var.fano_stream(arr), var.null_fano(p),
                                  var.fano_stream(sh), note=defined + "; 1-p, window = T steps")
    if labels is not None:
        m["fano_trial"] = _entry("fano_trial", var.fano_trial(arr, labels), var.null_fano(p),
                                 var.fano_trial(sh, labels), note=defined + "; 1-p")
    # pairs: a seeded subset of neurons if the layer is large
    if N > max_pair_neurons:
        idx = np.sort(np.random.default_rng(seed).choice(N, max_pair_neurons, replace=False))
    else:
        idx = np.arange(N)
    pairs_info = {"neurons_used": int(idx.size), "bin_steps": int(bin_steps),
                  "bin_ms": bin_steps * dt}
    c_net = c_sh = np.array([])
    if idx.size >= 2 and S * T // bin_steps >= 2:
        c_net = corr.pairwise_correlations(arr[:, :, idx], bin_steps)
        c_sh = corr.pairwise_correlations(sh[:, :, idx], bin_steps)
        m["correlation"] = _entry("correlation", c_net, np.zeros_like(c_net), c_sh,
                                  statistic="mean", note="analytic: 0 for independent neurons")
    nc = nc_sh = None
    if labels is not None and idx.size >= 2:
        nc = corr.noise_correlations(arr[:, :, idx], labels)
        nc_sh = corr.noise_correlations(sh[:, :, idx], labels)
        m["noise_correlation"] = _entry("noise_correlation", nc, np.zeros_like(nc), nc_sh,
                                        note="analytic: 0 for independent neurons")
    m["synchrony_chi2"] = _entry("synchrony_chi2", [corr.synchrony_chi2(arr)],
                                 [corr.null_synchrony_chi2(N)], [corr.synchrony_chi2(sh)],
                                 statistic="mean", mask_analytic=False,
                                 note="analytic: 1/N for independent neurons")
    if S >= 2:
        m["lifetime_sparseness"] = _entry(
            "lifetime_sparseness", sp.lifetime_sparseness(arr),
            sp.null_lifetime_sparseness(p, T, S), sp.lifetime_sparseness(sh),
            note=defined + "; counts Binomial(T, p), ratio of expectations")
        m["lifetime_activity_ratio"] = _entry(
            "lifetime_activity_ratio", sp.lifetime_sparseness(arr, "treves_rolls"),
            sp.null_lifetime_sparseness(p, T, S, "treves_rolls"),
            sp.lifetime_sparseness(sh, "treves_rolls"), note=defined)
    if N >= 2:
        m["population_sparseness"] = _entry(
            "population_sparseness", sp.population_sparseness(arr),
            [sp.null_population_sparseness(p, T)], sp.population_sparseness(sh),
            statistic="mean", mask_analytic=False,
            note="analytic: counts Binomial(T, p_i), ratio of expectations")
        m["population_activity_ratio"] = _entry(
            "population_activity_ratio", sp.population_sparseness(arr, "treves_rolls"),
            [sp.null_population_sparseness(p, T, "treves_rolls")],
            sp.population_sparseness(sh, "treves_rolls"), statistic="mean",
            mask_analytic=False, note="analytic: counts Binomial(T, p_i)")
    fit = rates.lognormal_fit(r_hz)
    stmt, cite = QUALITATIVE["rate_distribution"]
    rate_dist = {
        "lognormal_mu": fit.mu, "lognormal_sigma": fit.sigma, "median_hz": fit.median_hz,
        "n_fit": fit.n_fit, "n_silent": fit.n_excluded, "ks_statistic": fit.ks_statistic,
        "ks_pvalue": fit.ks_pvalue,
        "biology": {"statement": stmt, "citation": cite},
    }
    complexity = {
        "network": _trim(corr.complexity_distribution(arr)),
        "null_analytic": _trim(corr.null_complexity(p)),
        "null_shuffled": _trim(corr.complexity_distribution(sh)),
    }
    result = {
        "neurons": int(N), "samples": int(S), "timesteps": int(T), "dt_ms": dt,
        "measures": m, "rate_distribution": rate_dist, "complexity": complexity,
        "pairs": pairs_info,
    }
    figdata = {"p": p, "rate_hz": r_hz, "cv": cv, "isis": isis, "isis_sh": isis_sh,
               "corr": c_net, "corr_sh": c_sh, "noise": nc, "noise_sh": nc_sh}
    return result, figdata


def analyze_spikes(spikes: Any, dt_ms: float, labels: Any = None, *, seed: int = 0,
                   bin_steps: int = 1, max_pair_neurons: int = 512, R_ms: float = 5.0
                   ) -> dict[str, Any]:
    """Every measure of one layer against its null and biology (the per-layer dict of
    ``analysis.json``, with NaN as float NaN).

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]``
    dt_ms : float
        Step duration in ms (``> 0``).
    labels : int array ``[samples]``, optional
        Class of each sample; needed for the trial-view Fano factor and noise correlations.
    seed : int
        Seed of the shuffle null (and of the neuron subset for pair measures).
    bin_steps : int
        Bin width of the binned-train correlations, in steps.
    max_pair_neurons : int
        Pair measures use at most this many neurons (a seeded random subset).
    R_ms : float
        LvR refractoriness constant.
    """
    arr = rates.check_spikes(spikes, ndims=(3,))
    dt = rates.check_dt(dt_ms)
    lab = None if labels is None else rates.check_labels(labels, arr.shape[0])
    b = rates.check_positive_int(bin_steps, "bin_steps")
    mp = rates.check_positive_int(max_pair_neurons, "max_pair_neurons", minimum=2)
    irr._check_R(R_ms)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    return _layer_analysis(arr, dt, lab, int(seed), b, mp, float(R_ms))[0]


# ----------------------------------------------------------------------------------------
def read_simulation(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``simulation.json`` (or the one in a folder); None if absent.

    Raises ValueError if it exists but is not a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "simulation.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable simulation.json ({exc}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


def _fanout(sim: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if not sim or not isinstance(sim.get("layers"), list):
        return out
    for entry in sim["layers"]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            f = entry.get("fanout")
            if isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) \
                    and f >= 0:
                out[entry["name"]] = float(f)
    return out


def _energy(rec: SpikeRecord, sim: dict[str, Any] | None) -> dict[str, Any]:
    """Energy proxy of every layer: spikes from the archive; synaptic operations from the
    simulator's exact per-layer count when simulation.json describes the same samples,
    else spikes x (mean) fanout."""
    fan = _fanout(sim)
    energy = sp.energy_proxy(rec.layers, fan)
    exact: dict[str, float] = {}
    if sim and sim.get("samples") == rec.samples and isinstance(sim.get("layers"), list):
        for entry in sim["layers"]:
            if isinstance(entry, dict) and entry.get("name") in rec.layers:
                ops = entry.get("synaptic_ops")
                if isinstance(ops, (int, float)) and not isinstance(ops, bool) \
                        and math.isfinite(ops) and ops >= 0:
                    exact[entry["name"]] = float(ops) / rec.samples
    total: float | None = 0.0
    for name, e in energy["layers"].items():
        if name in exact:
            e["synaptic_ops_per_sample"] = exact[name]
            e["synaptic_ops_source"] = "simulation.json (exact count)"
        elif e["synaptic_ops_per_sample"] is not None:
            e["synaptic_ops_source"] = "spikes x fanout from simulation.json"
        else:
            e["synaptic_ops_source"] = None
        ops = e["synaptic_ops_per_sample"]
        total = None if (total is None or ops is None) else total + ops
    energy["synaptic_ops_per_sample"] = total
    energy["source"] = ("spikes from spikes.npz; synaptic operations from simulation.json"
                        if fan or exact else
                        "spikes from spikes.npz; no simulation.json fanout, so synaptic "
                        "operations are unknown")
    return energy


def _resolve(simdir: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(simdir)
    if p.is_dir():
        return p / "spikes.npz", p / "simulation.json"
    if p.is_file():
        return p, p.parent / "simulation.json"
    raise ValueError(f"simdir must be a folder written by `tbnn simulate` (or its spikes.npz), "
                     f"{p} does not exist.")


def _select_layers(rec: SpikeRecord, layer: str | None) -> list[str]:
    if layer is None:
        return rec.layer_names
    if layer not in rec.layers:
        raise ValueError(f"layer must be one of {', '.join(rec.layer_names)}, got {layer!r}.")
    return [layer]


def _safe_name(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    safe, k = base, 1
    while safe in used:
        k += 1
        safe = f"{base}_{k}"
    used.add(safe)
    return safe


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def _check_out_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder for the analysis, {out} is a file.")
    return out


def _raster_samples(S: int, T: int) -> int:
    return int(max(1, min(S, 10, max(1, 400 // T))))


_SUMMARY_ROWS = ["rate_hz", "cv", "cv2", "lv", "lvr", "fano_stream", "fano_trial",
                 "correlation", "noise_correlation", "fraction_active", "lifetime_sparseness",
                 "population_sparseness"]


def _summary_rows(measures: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key in _SUMMARY_ROWS:
        e = measures.get(key)
        if e is None:
            continue
        null = e["null"]["analytic"] or e["null"]["shuffled"]
        bio = e["biology"]
        rows.append({"label": f"{e['label']} ({e['statistic']})", "network": e["value"],
                     "null": null["value"] if null else None,
                     "low": bio["low"] if bio else None, "high": bio["high"] if bio else None,
                     "units": e["units"],
                     "min_scale": 0.3 if key in ("correlation", "noise_correlation") else None})
    return rows


def _layer_figures(name: str, arr: np.ndarray, dt: float, res: dict[str, Any],
                   fd: dict[str, Any]):
    from tbnn import plot

    fig, axes = plot.new_figure(10.5, 5.6, nrows=2, ncols=3)
    plot.psth(arr, dt, ax=axes[0, 0])
    axes[0, 0].set_title("PSTH")
    plot.rate_histogram(fd["rate_hz"], ax=axes[0, 1])
    axes[0, 1].set_title("rate distribution")
    plot.isi_histogram(fd["isis"], ax=axes[0, 2], dt_ms=dt, null=fd["isis_sh"])
    axes[0, 2].set_title("ISI distribution")
    plot.cv_rate_scatter(fd["p"], fd["cv"], ax=axes[1, 0], dt_ms=dt)
    axes[1, 0].set_title("irregularity vs rate")
    if fd["noise"] is not None:
        plot.correlation_histogram(fd["noise"], ax=axes[1, 1], null=fd["noise_sh"],
                                   xlabel="spike-count noise correlation")
        axes[1, 1].set_title("noise correlations")
    else:
        plot.correlation_histogram(fd["corr"], ax=axes[1, 1], null=fd["corr_sh"],
                                   xlabel="correlation of binned trains")
        axes[1, 1].set_title("pairwise correlations")
    cx = res["complexity"]
    plot.complexity_plot(cx["network"], cx["null_analytic"], ax=axes[1, 2])
    axes[1, 2].set_title("synchrony (complexity)")
    fig.suptitle(f"layer {name}: {res['neurons']} neurons, {res['samples']} samples × "
                 f"{res['timesteps']} steps, dt = {dt:g} ms", fontsize=9)
    rows = _summary_rows(res["measures"])
    sfig = plot.summary_panel(rows, title=f"layer {name}: network vs Bernoulli null vs biology")
    return fig, sfig


def analyze_run(simdir: str | os.PathLike, out: str | os.PathLike, dt_ms: float | None = None,
                layer: str | None = None, *, seed: int = 0, bin_steps: int = 1,
                max_pair_neurons: int = 512) -> dict[str, Any]:
    """Analyse a simulation run and write ``out/analysis.json``, ``out/report.md`` and figures.

    Parameters
    ----------
    simdir : path-like
        Folder written by ``tbnn simulate`` (holding ``spikes.npz`` and, optionally,
        ``simulation.json``), or the ``spikes.npz`` itself.
    out : path-like
        Output folder; created only after the input has been validated. Files are written
        atomically, so a failure leaves earlier results intact.
    dt_ms : float, optional
        Step duration in ms overriding the archive's (must be ``> 0``).
    layer : str, optional
        Analyse only this layer (default: every layer in the archive).
    seed, bin_steps, max_pair_neurons
        See :func:`analyze_spikes`.

    Returns
    -------
    dict
        The content of ``analysis.json`` (see the module docstring).
    """
    spikes_path, sim_path = _resolve(simdir)
    rec = load_spikes(spikes_path)
    dt = rec.dt_ms if dt_ms is None else rates.check_dt(dt_ms)
    names = _select_layers(rec, layer)
    sim = read_simulation(sim_path)
    out_dir = _check_out_dir(out)
    b = rates.check_positive_int(bin_steps, "bin_steps")
    mp = rates.check_positive_int(max_pair_neurons, "max_pair_neurons", minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")

    energy = _energy(rec, sim)
    sim_keys = ("accuracy", "forward_agreement", "samples", "timesteps", "spikes_per_sample",
                "synaptic_ops_per_sample", "samples_per_second")
    sim_summary = {k: sim[k] for k in sim_keys if k in sim} if sim is not None else None

    layers_out: dict[str, Any] = {}
    figs: list[tuple[str, Any]] = []
    fig_index: dict[str, Any] = {"raster": "raster.png", "layers": {}}
    used: set[str] = {"raster"}
    from tbnn import plot

    n_r = _raster_samples(rec.samples, rec.timesteps)
    rfig = plot.raster({n: rec.layers[n][:n_r] for n in names} if len(names) > 1
                       else rec.layers[names[0]][:n_r], dt_ms=dt,
                       title=f"first {n_r} sample(s)" + (f", layer {names[0]}"
                                                         if len(names) == 1 else ""))
    figs.append(("raster.png", rfig))
    for name in names:
        arr = rec.layers[name]
        res, fd = _layer_analysis(arr, dt, rec.labels, int(seed), b, mp, 5.0)
        res["energy"] = energy["layers"][name]
        layers_out[name] = res
        safe = _safe_name(name, used)
        f1, f2 = _layer_figures(name, arr, dt, res, fd)
        figs += [(f"{safe}_stats.png", f1), (f"{safe}_summary.png", f2)]
        fig_index["layers"][name] = {"stats": f"{safe}_stats.png",
                                     "summary": f"{safe}_summary.png"}

    cites = [e["biology"]["citation"] for L in layers_out.values()
             for e in L["measures"].values() if e["biology"]]
    cites += [c for _, c in QUALITATIVE.values()]
    refs = sorted({part.strip() for c in cites for part in c.split(";")})
    result = {
        "tbnn_analysis_version": ANALYSIS_VERSION,
        "source": {"spikes": str(spikes_path),
                   "simulation": str(sim_path) if sim is not None else None},
        "dt_ms": dt,
        "dt_source": "archive" if dt_ms is None else "argument",
        "samples": rec.samples,
        "timesteps": rec.timesteps,
        "seed": int(seed),
        "simulation": sim_summary,
        "energy": energy,
        "layers": layers_out,
        "figures": fig_index,
        "references": refs,
    }
    result = _jsonable(result)
    text = json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False)
    md = _markdown(result)

    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, fig in figs:
        plot.save_figure(fig, out_dir / fname)
    _write_atomic(out_dir / "analysis.json", (text + "\n").encode("utf-8"))
    _write_atomic(out_dir / "report.md", md.encode("utf-8"))
    return result


# ----------------------------------------------------------------------------------------
def _g(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(v)


def _markdown(res: dict[str, Any]) -> str:
    L: list[str] = []
    src = res["source"]
    L.append(f"# Firing statistics: `{src['spikes']}`\n")
    L.append(f"- {res['samples']} samples × {res['timesteps']} time steps, "
             f"dt = {_g(res['dt_ms'])} ms "
             f"({'from the archive' if res['dt_source'] == 'archive' else 'set by the user'}).")
    if res["simulation"]:
        s = res["simulation"]
        extras = ", ".join(f"{k} = {_g(v)}" for k, v in s.items())
        L.append(f"- simulation.json: {extras}.")
    else:
        L.append("- simulation.json: absent (synaptic operations unknown).")
    L.append(f"- Shuffle null seed: {res['seed']}.\n")
    L.append("## How to read this report\n")
    L.append(
        "Each neuron's spikes over all samples, presented one after another, form one spike "
        "train with time step dt (the *stream view*, as in a recording). **Network** is the "
        "statistic named in the table (median across neurons, or mean) of the measured "
        "values. **Null** is the discrete-time null model: every neuron firing independently "
        "in each step with its own probability p. *Analytic* gives its exact value "
        "(CV = √(1−p), Fano = 1−p, LV = q−p+2p²(−ln p−q)/q², correlations 0, …); *shuffled* "
        "measures the same statistic after permuting each neuron's time bins (seeded). The "
        "right comparison for a binary network is the null at the same p, not the Poisson "
        "value 1. **Biology** is the range reported for cortex in vivo (sources below); the "
        "verdict places the network value against it. Rates in Hz, and so their verdict, "
        "depend on the declared dt. *n* counts defined values; undefined ones (e.g. CV2 of "
        "neurons with fewer than three spikes) are counted in parentheses, never dropped.\n")
    if res["figures"].get("raster"):
        L.append(f"![raster]({res['figures']['raster']})\n")

    en = res["energy"]
    L.append("## Energy proxy (per inference)\n")
    L.append(f"Source: {en['source']}.\n")
    L.append("| layer | neurons | spikes / sample | spikes / neuron / sample | fanout | "
             "synaptic ops / sample |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for name, e in en["layers"].items():
        L.append(f"| {name} | {e['neurons']} | {_g(e['spikes_per_sample'])} | "
                 f"{_g(e['spikes_per_neuron_per_sample'])} | {_g(e['fanout'])} | "
                 f"{_g(e['synaptic_ops_per_sample'])} |")
    L.append(f"| **total** | | {_g(en['spikes_per_sample'])} | | | "
             f"{_g(en['synaptic_ops_per_sample'])} |\n")

    for name, lay in res["layers"].items():
        L.append(f"## Layer `{name}`: {lay['neurons']} neurons\n")
        L.append("| measure | statistic | network | null (analytic) | null (shuffled) | "
                 "biology | verdict | n (undefined) |")
        L.append("|---|---|---:|---:|---:|---|---|---:|")
        for e in lay["measures"].values():
            na = e["null"]["analytic"]
            ns = e["null"]["shuffled"]
            bio = e["biology"]
            units = f" {e['units']}" if e["units"] else ""
            brange = (f"{_g(bio['low'])}–{_g(bio['high'])}{units}" if bio else "—")
            L.append(
                f"| {e['label']}{(' (' + e['units'] + ')') if e['units'] else ''} | "
                f"{e['statistic']} | {_g(e['value'])} | {_g(na['value']) if na else '—'} | "
                f"{_g(ns['value']) if ns else '—'} | {brange} | {e['verdict'] or '—'} | "
                f"{e['summary']['n']} ({e['summary']['n_nan']}) |")
        rd = lay["rate_distribution"]
        L.append("")
        L.append(f"Rate distribution: log-normal fit over {rd['n_fit']} active neurons "
                 f"({rd['n_silent']} silent): median {_g(rd['median_hz'])} Hz, σ(ln rate) = "
                 f"{_g(rd['lognormal_sigma'])}, KS p = {_g(rd['ks_pvalue'])}. Biology: "
                 f"{rd['biology']['statement']} ({rd['biology']['citation']}).")
        pr = lay["pairs"]
        L.append(f"Pair measures use {pr['neurons_used']} neurons; binned-train correlations "
                 f"use bins of {pr['bin_steps']} step(s) = {_g(pr['bin_ms'])} ms.\n")
        figs = res["figures"]["layers"].get(name, {})
        if figs:
            L.append(f"![statistics of {name}]({figs['stats']})\n")
            L.append(f"![summary of {name}]({figs['summary']})\n")
        L.append("Biological ranges used for this layer:\n")
        for e in lay["measures"].values():
            if e["biology"]:
                L.append(f"- *{e['label']}*: {e['biology']['note']} "
                         f"({e['biology']['citation']})")
        for key, (stmt, cite) in QUALITATIVE.items():
            L.append(f"- *{key.replace('_', ' ')}* (no numeric range): {stmt} ({cite})")
        L.append("")

    L.append("## Notes on definitions\n")
    L.append("- Definitions follow Elephant 1.2 (`elephant.statistics`, "
             "`elephant.spike_train_correlation`): CV uses ddof 0; a neuron with exactly two "
             "spikes has CV 0 (one interval), as in Elephant; CV2, LV and LvR need three "
             "spikes and are undefined (NaN) otherwise.")
    L.append("- ISIs are taken on the stream train and may span sample boundaries.")
    L.append("- Fano factor, stream view: counts in consecutive windows of T steps (one "
             "sample); trial view: counts across the samples of one class, averaged over "
             "classes. Null: 1 − p in both.")
    L.append("- Noise correlations: Pearson correlation of per-sample counts across the "
             "samples of one class (classes with ≥ 3 samples), averaged over classes.")
    L.append("- Sparseness: Treves–Rolls a = ⟨r⟩²/⟨r²⟩ and Vinje–Gallant S = (1 − a)/(1 − 1/n) "
             "of per-sample counts (Treves & Rolls 1991, Network 2:371; Vinje & Gallant 2000, "
             "Science 287:1273).")
    L.append("- Synchrony: complexity distribution (number of neurons spiking per step) and "
             "Golomb's χ² (Golomb 2007, Scholarpedia 2:1347), 1/N under the null.\n")
    L.append("## References\n")
    for r in res["references"]:
        L.append(f"- {r}")
    L.append("")
    return "\n".join(L)


# ----------------------------------------------------------------------------------------
def _parse_range(samples: Any, S: int) -> tuple[int, int]:
    if not isinstance(samples, str):
        raise ValueError(f"samples must be a string 'A:B' of sample indices, got {samples!r}.")
    m = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", samples)
    if not m:
        raise ValueError(f"samples must be a string 'A:B' of sample indices, got {samples!r}.")
    a = int(m.group(1)) if m.group(1) else 0
    b = int(m.group(2)) if m.group(2) else S
    if not (0 <= a < b <= S):
        raise ValueError(f"samples must be 'A:B' with 0 <= A < B <= {S} (the archive holds "
                         f"{S} samples), got {samples!r}.")
    return a, b


def raster_run(simdir: str | os.PathLike, out_png: str | os.PathLike, layer: str | None = None,
               sample: int | None = None, samples: str | None = None, *,
               sort_by_rate: bool = False) -> Path:
    """Draw a raster of a simulation run to ``out_png``.

    Parameters
    ----------
    simdir : path-like
        Folder written by ``tbnn simulate`` (or its ``spikes.npz``).
    out_png : path-like
        Output ``.png``; its folder is created after validation; written atomically.
    layer : str, optional
        One layer; default all layers, stacked and coloured by layer.
    sample : int, optional
        One sample index.
    samples : str, optional
        A range ``"A:B"`` of sample indices (half-open, as a Python slice).
        Default (neither given): the first few samples.
    sort_by_rate : bool
        Order neurons by spike count.

    Returns
    -------
    Path of the PNG written.
    """
    from tbnn import plot

    spikes_path, _ = _resolve(simdir)
    rec = load_spikes(spikes_path)
    names = _select_layers(rec, layer)
    S = rec.samples
    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise ValueError(f"out_png must be a file name ending in .png, got {str(out)!r}.")
    if out.exists() and out.is_dir():
        raise ValueError(f"out_png must be a file name ending in .png, {out} is a folder.")
    if sample is not None and samples is not None:
        raise ValueError("give either sample or samples, not both.")
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) \
                or not 0 <= sample < S:
            raise ValueError(f"sample must be an integer in [0, {S - 1}] (the archive holds "
                             f"{S} samples), got {sample!r}.")
        a, b = int(sample), int(sample) + 1
    elif samples is not None:
        a, b = _parse_range(samples, S)
    else:
        a, b = 0, _raster_samples(S, rec.timesteps)
    data = ({n: rec.layers[n][a:b] for n in names} if len(names) > 1
            else rec.layers[names[0]][a:b])
    what = f"sample {a}" if b - a == 1 else f"samples {a}–{b - 1}"
    title = f"{what}" + (f", layer {names[0]}" if len(names) == 1 else "")
    fig = plot.raster(data, dt_ms=rec.dt_ms, sort_by_rate=sort_by_rate, title=title,
                      sample_offset=a)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot.save_figure(fig, out)
    return out
