"""``tbnn analyze``: every measure of every layer of a recorded run, against the null and
biology, written as ``analysis.json``, ``report.md`` and figures.

:func:`analyze_run` reads a spike archive (a simulation folder, its ``spikes.npz``, or any
plain ``.npz`` of boolean ``[samples, T, neurons]`` arrays; ``simulation.json`` next to it
when present) and writes ``OUT/analysis.json``, ``OUT/report.md`` and the figures. It
orchestrates the jobs of the other modules: the measure catalogue
(:mod:`tbnn.analysis.catalogue`), the energy accounting (:mod:`tbnn.analysis.energy`),
the figures (:mod:`tbnn.analysis.figures`, drawn by :mod:`tbnn.viz.plot`), the Markdown
(:mod:`tbnn.analysis.markdown`) and the raster (:mod:`tbnn.analysis.raster`).

Layout of ``analysis.json`` (NaN is written as ``null``)::

    {
      "tbnn_analysis_version": 1,
      "source": {"spikes": str, "simulation": str | null},   # relative to OUT
      "dt_ms": float, "dt_source": "archive" | "argument" | "default",
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
      "figures": {"raster": str, "layers": {name: {"stats": str, "summary": str,
                                                    "caption": str}}},
      "references": [str, ...]
    }

``value`` is ``summary[statistic]``; ``n`` counts defined values and ``n_nan`` undefined
ones (e.g. CV2 of neurons with fewer than three spikes), which are never dropped silently.
Paths in ``source`` are relative to the output folder, so a report keeps naming its input
when the folders around it are moved together (e.g. renamed from a staging folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tbnn.viz import plot
from tbnn.analysis.catalogue import analyze_spikes, layer_measures, summarize
from tbnn.analysis.energy import energy_accounting, read_simulation
from tbnn.analysis.figures import comparison_figure, figure_title, stats_figure
from tbnn.analysis.markdown import render_markdown
from tbnn.analysis.raster import default_raster_samples, raster_run
from tbnn.analysis.reference import QUALITATIVE
from tbnn.analysis.runfiles import (
    check_out_dir,
    file_name_for,
    relative_to,
    read_archive,
    select_layers,
    write_bytes,
)
from tbnn.core.validate import check_dt, check_int, json_ready
from tbnn.io.files import check_target, stage_dir
from tbnn.viz.formats import check_formats

__all__ = ["ANALYSIS_VERSION", "analyze_run", "analyze_spikes", "raster_run",
           "read_simulation", "summarize"]

ANALYSIS_VERSION = 1


def analyze_run(simdir: str | os.PathLike, out: str | os.PathLike, dt_ms: float | None = None,
                layer: str | None = None, *, seed: int = 0, bin_steps: int = 1,
                max_pair_neurons: int = 512, neurons: int | None = None,
                formats: tuple[str, ...] = (), recording: str | os.PathLike | None = None,
                overwrite: bool = False, _flag: str = "out") -> dict[str, Any]:
    """Analyse a recorded run and write ``out/analysis.json``, ``out/report.md`` and figures.

    Parameters
    ----------
    simdir : path-like
        Folder written by ``tbnn simulate`` (holding ``spikes.npz`` and, optionally,
        ``simulation.json``), its ``spikes.npz``, or any plain ``.npz`` of boolean
        ``[samples, T, neurons]`` arrays (see :func:`tbnn.io.spikes.load_spikes`).
    out : path-like
        Output folder; created only after the input has been validated. Files are written
        atomically, so a failure leaves earlier results intact.
    dt_ms : float, optional
        Step duration in ms overriding the archive's (must be ``> 0``); an archive that
        declares none is read at 1 ms, and the report says so.
    layer : str, optional
        Analyse only this layer (default: every layer in the archive).
    seed, bin_steps, max_pair_neurons
        See :func:`tbnn.analysis.catalogue.analyze_spikes`.
    neurons : int, optional
        Neurons per layer in the raster (default :data:`tbnn.viz.plot.RASTER_NEURONS`).
    formats : tuple of str
        Also write every figure in these vector formats (``"svg"``, ``"pdf"``).
    overwrite : bool
        Replace an earlier analysis in ``out`` (built beside it and swapped in complete, so
        no stale figure survives); without it ``out`` must be new or empty.
    recording : path-like, optional
        A recorded spike-train file (NWB, NIX, or a CSV / npz spike-time table; see
        :func:`tbnn.io.recording.read_recording`): the same measures are computed on it with
        Elephant's definitions and set beside each layer's in ``analysis.json``
        (``layers[name]["recording"]``), ``report.md`` and ``NAME_recording.png``.

    Returns
    -------
    dict
        The content of ``analysis.json`` (see the module docstring).

    Raises
    ------
    ValueError
        Naming the parameter, on a missing or invalid archive, an unknown layer, a bad
        ``dt_ms``, ``out`` that is a file, or a bad integer option; nothing is written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "rec.npz"), h=np.random.default_rng(0).random((6, 5, 8)) < 0.3)
    >>> res = analyze_run(os.path.join(d, "rec.npz"), os.path.join(d, "ana"))
    >>> res["dt_source"], list(res["layers"]), sorted(os.listdir(os.path.join(d, "ana")))[:3]
    ('default', ['h'], ['.tbnn-manifest.json', 'analysis.json', 'h_stats.png'])
    """
    rec, spikes_path, sim_path, sim = read_archive(simdir)  # simulation.json and spikes_sha256 checked first
    dt = rec.dt_ms if dt_ms is None else check_dt(dt_ms)
    names = select_layers(rec, layer)
    out_dir = check_out_dir(out)
    check_target(out_dir, "analysis", overwrite, _flag)  # refused before any measure is computed
    b = check_int(bin_steps, "bin_steps")
    mp = check_int(max_pair_neurons, "max_pair_neurons", minimum=2)
    check_int(seed, "seed", minimum=0)
    plot.subsample_neurons([0], neurons)  # validates neurons
    formats = check_formats(formats)
    recorded = None
    if recording is not None:  # read (and refuse) the recording before anything is written
        from tbnn.io.recording import read_recording

        recorded = read_recording(recording)

    energy = energy_accounting(rec, sim)
    model, run = _run_identity(sim, spikes_path)
    figs = [("raster.png", _overview_raster(rec, names, dt, model, run, neurons))]
    fig_index: dict[str, Any] = {"raster": "raster.png", "layers": {}}
    used: set[str] = {"raster"}
    layers_out: dict[str, Any] = {}
    for name in names:
        safe, title = file_name_for(name, used), figure_title(name, model, run)
        res, layer_figs, index = _analyze_layer(rec, name, dt, (int(seed), b, mp),
                                                energy["layers"][name], safe, title)
        if recorded is not None:
            layer_figs.append(_beside_recording(res, recorded, rec.labels, dt, safe, title, recording))
            index["recording"] = f"{safe}_recording.png"
        layers_out[name] = res
        figs += layer_figs
        fig_index["layers"][name] = index

    result = json_ready({
        "tbnn_analysis_version": ANALYSIS_VERSION,
        "source": {"spikes": relative_to(spikes_path, out_dir),
                   "simulation": relative_to(sim_path, out_dir) if sim is not None else None},
        "dt_ms": dt,
        "dt_source": ("argument" if dt_ms is not None else
                      "archive" if rec.dt_declared else "default"),
        "samples": rec.samples,
        "timesteps": rec.timesteps,
        "seed": int(seed),
        "simulation": _simulation_summary(sim),
        "energy": energy,
        "layers": layers_out,
        "figures": fig_index,
        "references": _references(layers_out),
    })
    _write_analysis(out_dir, result, figs, formats, overwrite, _flag)
    return result


def _run_identity(sim: dict[str, Any] | None, spikes_path: Path) -> tuple[Any, str]:
    """The model kind (from ``simulation.json``, or None) and the run's name: its folder
    named in ``simulation.json``, else the simulation folder or the archive's file name."""
    model = sim.get("model") if sim else None
    run = (Path(str(sim["run"])).name if sim and sim.get("run") else None) or (
        spikes_path.parent.name if spikes_path.name == "spikes.npz" else spikes_path.name)
    return model, run


def _simulation_summary(sim: dict[str, Any] | None) -> dict[str, Any] | None:
    """The keys of ``simulation.json`` that the analysis repeats (None without one)."""
    sim_keys = ("accuracy", "forward_agreement", "samples", "timesteps", "spikes_per_sample",
                "synaptic_ops_per_sample", "samples_per_second")
    return {k: sim[k] for k in sim_keys if k in sim} if sim is not None else None


def _overview_raster(rec: Any, names: list[str], dt: float, model: Any, run: str,
                     neurons: int | None) -> Any:
    """``raster.png``: the first samples of every analysed layer (one panel each)."""
    n_r = default_raster_samples(rec.samples, rec.timesteps)
    rdata = ({n: rec.layers[n][:n_r] for n in names} if len(names) > 1
             else rec.layers[names[0]][:n_r])
    prefix = f"model {model or 'unknown'} · run {run}" + (
        f" · layer {names[0]}" if len(names) == 1 else "")
    return plot.raster(rdata, dt_ms=dt, title=prefix, neurons=neurons)


def _analyze_layer(rec: Any, name: str, dt: float, options: tuple[int, int, int],
                   energy: dict[str, Any], safe: str,
                   title: str) -> tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any]]:
    """One layer's measures (``options``: seed, bin steps, neurons for pair measures) and
    energy, with its statistics and summary figures (files named from ``safe``):
    ``(result, [(file name, figure)], figure index entry)``."""
    seed, bin_steps, max_pairs = options
    arr = rec.layers[name]
    res, fd = layer_measures(arr, dt, rec.labels, seed, bin_steps, max_pairs, 5.0)
    res["energy"] = energy
    f1, caption = stats_figure(res, fd, arr, dt, title)
    f2 = comparison_figure(res, fd, title)
    figs = [(f"{safe}_stats.png", f1), (f"{safe}_summary.png", f2)]
    index = {"stats": f"{safe}_stats.png", "summary": f"{safe}_summary.png", "caption": caption}
    return res, figs, index


def _beside_recording(res: dict[str, Any], recorded: Any, labels: Any, dt: float, safe: str,
                      title: str, recording: str | os.PathLike) -> tuple[str, Any]:
    """Set a layer beside the recording (``res["recording"]``) and draw it:
    ``(file name, figure)``."""
    from tbnn.analysis.recording_figure import plot_recording_comparison
    from tbnn.analysis.recording_measures import compare_with_recording

    res["recording"] = compare_with_recording(res, recorded, dt, labels=labels)
    return f"{safe}_recording.png", plot_recording_comparison(
        res["recording"], title=f"{title} beside recording {Path(str(recording)).name}")


def _references(layers_out: dict[str, Any]) -> list[str]:
    """Every source cited by a biological range or a qualitative statement, sorted, once each."""
    cites = [e["biology"]["citation"] for L in layers_out.values()
             for e in L["measures"].values() if e["biology"]]
    cites += [c for _, c in QUALITATIVE.values()]
    return sorted({part.strip() for c in cites for part in c.split(";")})


def _write_analysis(out_dir: Path, result: dict[str, Any], figs: list[tuple[str, Any]],
                    formats: tuple[str, ...], overwrite: bool, flag: str) -> None:
    """Write the figures, ``analysis.json`` and ``report.md`` into ``out_dir`` through one
    staging folder (swapped in complete)."""
    text = json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False)
    md = render_markdown(result)
    with stage_dir(out_dir, "analysis", overwrite=overwrite, flag=flag) as tmp:
        for fname, fig in figs:
            plot.save_figure(fig, tmp / fname, formats=tuple(formats))
        write_bytes(tmp / "analysis.json", (text + "\n").encode("utf-8"))
        write_bytes(tmp / "report.md", md.encode("utf-8"))
