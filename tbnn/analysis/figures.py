"""The figures of an analysis report, drawn from the measures of one layer.

* :func:`stats_figure`: PSTH, rate histogram (with the log-normal only where the
  Kolmogorov–Smirnov test does not reject it), ISI histogram on a log axis, CV against rate,
  correlations and complexity;
* :func:`comparison_figure`: one small panel per measure, on its own axis, with the
  network's distribution, the null's, the biological band and its citation, and an
  optional recording's distribution per measure;
* :func:`figure_title`: the one title rule naming model, layer and run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tbnn.viz import plot
from tbnn.analysis import rates
from tbnn.analysis.measures import MEASURES, RegistryView, measure_keys

__all__ = ["FIT_ALPHA", "LOG_MEASURES", "PANEL_MEASURES", "comparison_figure",
           "figure_title", "fit_caption", "stats_figure"]

#: Significance level of the goodness-of-fit test that decides whether a fit is drawn.
FIT_ALPHA = 0.05
#: Measures drawn on a logarithmic axis (they span decades across neurons): a live view of
#: the records' ``log_axis``.
LOG_MEASURES = RegistryView(lambda m: True if m.log_axis else None)
#: Measures of the comparison figures, in order: a live view of the records' ``panel``.
PANEL_MEASURES = RegistryView(lambda m: True if m.panel else None)


def figure_title(layer: str, model: str | None = None, run: str | None = None) -> str:
    """The title of every report figure: model, layer and run.

    >>> figure_title("hidden1", "tbn", "runs/digits")
    'model tbn · layer hidden1 · run runs/digits'
    >>> figure_title("h")
    'model unknown · layer h · run unknown'
    """
    return f"model {model or 'unknown'} · layer {layer} · run {run or 'unknown'}"


def fit_caption(rd: Mapping[str, Any], alpha: float = FIT_ALPHA) -> tuple[bool, str]:
    """Whether the log-normal fit of a rate distribution is drawn, and the caption saying
    why: the Kolmogorov–Smirnov test of the log-rates against the fitted normal, with the
    p-value that accounts for the fitted parameters (``lilliefors_pvalue``, parametric
    bootstrap; Lilliefors 1967, J Am Stat Assoc 62:399) where the entry has it, else the
    Kolmogorov p-value (Massey 1951, J Am Stat Assoc 46:68; optimistic), does not reject it at
    level ``alpha``, or rejects it (histogram alone), or there was nothing to fit.

    >>> fit_caption({"ks_pvalue": 0.0013, "n_fit": 12})
    (False, 'log-normal rejected: KS p = 0.0013 < 0.05 (12 active neurons)')
    >>> fit_caption({"ks_pvalue": 0.6, "lilliefors_pvalue": 0.2, "n_fit": 40, "median_hz": 3.0,
    ...              "lognormal_sigma": 1.0})[1]
    'log-normal not rejected: Lilliefors p = 0.2 ≥ 0.05; median 3 Hz, σ(ln r) = 1.00'
    """
    p = rd.get("lilliefors_pvalue")
    name = "Lilliefors"
    if p is None or not np.isfinite(p):
        p, name = rd.get("ks_pvalue"), "KS"
    if p is None or not np.isfinite(p):
        return False, f"log-normal not fitted ({rd.get('n_fit', 0)} distinct active rates)"
    if p < alpha:
        return False, (f"log-normal rejected: {name} p = {p:.2g} < {alpha:g} "
                       f"({rd['n_fit']} active neurons)")
    return True, (f"log-normal not rejected: {name} p = {p:.2g} ≥ {alpha:g}; median "
                  f"{rd['median_hz']:.3g} Hz, σ(ln r) = {rd['lognormal_sigma']:.2f}")


def stats_figure(res: Mapping[str, Any], fd: Mapping[str, Any], arr: np.ndarray, dt: float,
                 title: str) -> tuple[Any, str]:
    """The six-panel statistics figure of one layer, and its fit caption.

    ``res`` / ``fd`` are the two values returned by
    :func:`tbnn.analysis.catalogue.layer_measures` for ``arr`` (``[samples, T, neurons]``).

    >>> from tbnn.analysis.catalogue import layer_measures
    >>> s = np.random.default_rng(0).random((12, 4, 20)) < 0.2
    >>> res, fd = layer_measures(s, 1.0, None, 0, 1, 64, 5.0)
    >>> fig, caption = stats_figure(res, fd, s, 1.0, figure_title("h"))
    >>> len(fig.axes), caption.split(":")[0]
    (6, 'log-normal not rejected')
    """
    fig, axes = plot.new_figure(10.5, 6.0, nrows=2, ncols=3)
    plot.psth(rates.psth(arr, dt), dt, ax=axes[0, 0])
    axes[0, 0].set_title("PSTH (mean ± s.e.m. over samples)")
    rd = res["rate_distribution"]
    accept, caption = fit_caption(rd)
    fit = rates.LogNormalFit(rd["lognormal_mu"], rd["lognormal_sigma"], rd["median_hz"],
                             rd["n_fit"], rd["n_silent"], rd["ks_statistic"], rd["ks_pvalue"])
    plot.rate_histogram(fd["rate_hz"], ax=axes[0, 1], fit_pdf=fit.pdf if accept else None,
                        fit_label="log-normal fit", caption=caption)
    axes[0, 1].set_title("rate distribution")
    plot.isi_histogram(fd["isis"], ax=axes[0, 2], dt_ms=dt, null=fd["isis_sh"])
    axes[0, 2].set_title("ISI distribution (log time axis)")
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
    fig.suptitle(f"{title}\n{res['neurons']} neurons, {res['samples']} samples × "
                 f"{res['timesteps']} steps, dt = {dt:g} ms")
    return fig, caption


def comparison_figure(res: Mapping[str, Any], fd: Mapping[str, Any], title: str,
                      recording: Mapping[str, Any] | None = None) -> Any:
    """One panel per measure of :data:`PANEL_MEASURES` present in ``res``: the network's
    values, the null's (shuffled draw, else the analytic values), the biological band with
    its citation key, and, when ``recording`` maps a measure key to values, the
    recording's distribution on the same axis.

    >>> from tbnn.analysis.catalogue import layer_measures
    >>> s = np.random.default_rng(0).random((12, 4, 20)) < 0.2
    >>> res, fd = layer_measures(s, 1.0, None, 0, 1, 64, 5.0)
    >>> fig = comparison_figure(res, fd, figure_title("h"), recording={"cv": [0.9, 1.1, 1.0]})
    >>> [t.get_text() for t in fig.legends[0].get_texts()][2]
    'recording'
    """
    panels = []
    dists = fd["distributions"]
    for key in measure_keys(panel=True):
        e = res["measures"].get(key)
        if e is None:
            continue
        d = dists[key]
        null = d["shuffled"] if d["shuffled"] is not None else d["analytic"]
        ref = MEASURES[key].band
        panels.append({
            "label": e["label"], "units": e["units"], "statistic": e["statistic"],
            "network": d["network"], "null": null, "null_label": "null",
            "recording": None if recording is None else recording.get(key),
            "low": ref.low if ref else None, "high": ref.high if ref else None,
            "citation": ref.citation.split(",")[0] if ref else None,
            "log": True if MEASURES[key].log_axis else None,
        })
    return plot.measure_panels(panels, title=f"{title}: network, null and biology")
