"""The Markdown report (``report.md``) of an analysis, rendered from ``analysis.json``."""

from __future__ import annotations

from typing import Any

from tbnn.analysis.reference import QUALITATIVE

__all__ = ["DT_SOURCES", "format_number", "render_markdown"]

#: How the step duration was set, as the report says it.
DT_SOURCES = {
    "archive": "from the archive",
    "argument": "set by the user",
    "default": "the archive declares no dt_ms; 1 ms assumed, set --dt-ms to change it",
}


def format_number(v: Any) -> str:
    """A number for a report table: ``—`` for None, 3 significant digits, scientific
    notation outside [1e-3, 1e4).

    >>> format_number(None), format_number(0.012345), format_number(123456.0)
    ('—', '0.0123', '1.23e+05')
    """
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(v)


def _recording_table(name: str, cmp_: dict[str, Any], figure: str | None) -> list[str]:
    """The network beside a recording, measure by measure (Elephant's definitions on the recording)."""
    g = format_number
    r = cmp_["recording"]
    L = [f"### `{name}` beside the recording `{r['source']}`\n",
         f"{r['units']} units, {r['trials']} trial(s), {g(r['duration_s'])} s; network read at dt = "
         f"{g(cmp_['dt_ms'])} ms. Null: the network's discrete-time null; the recording's Poisson "
         "process at each unit's own rate.\n",
         "| measure | statistic | network | recording | null (network) | null (recording) | biology |",
         "|---|---|---:|---:|---:|---:|---|"]
    for key, m in cmp_["measures"].items():
        band = m.get("band")
        brange = f"{g(band['low'])}–{g(band['high'])} ({band['citation']})" if band else "—"
        L.append(f"| {key} | {m['statistic']} | {g(m['network']['value'])} | {g(m['recording']['value'])} | "
                 f"{g(m['null']['network'])} | {g(m['null']['recording'])} | {brange} |")
    L.append("")
    if figure:
        L.append(f"![{name} beside the recording]({figure})\n")
    return L


def render_markdown(res: dict[str, Any]) -> str:
    """``report.md`` from the content of ``analysis.json`` (see :mod:`tbnn.analysis.report`).

    >>> res = {"source": {"spikes": "spikes.npz"}, "samples": 1, "timesteps": 2,
    ...        "dt_ms": 1.0, "dt_source": "archive", "simulation": None, "seed": 0,
    ...        "figures": {}, "energy": {"source": "-", "layers": {}, "spikes_per_sample": 0.0,
    ...        "synaptic_ops_per_sample": None}, "layers": {}, "references": []}
    >>> render_markdown(res).splitlines()[0]
    '# Firing statistics: `spikes.npz`'
    """
    L = _header(res) + _how_to_read(res["figures"]) + _energy_table(res["energy"])
    for name, lay in res["layers"].items():
        L += _layer_section(name, lay, res["figures"]["layers"].get(name, {}))
    L += _definition_notes() + _references(res["references"])
    return "\n".join(L)


def _header(res: dict[str, Any]) -> list[str]:
    """Title, input size and time step, the simulation's summary and the shuffle seed."""
    g = format_number
    L = [f"# Firing statistics: `{res['source']['spikes']}`\n",
         f"- {res['samples']} samples × {res['timesteps']} time steps, "
         f"dt = {g(res['dt_ms'])} ms "
         f"({DT_SOURCES.get(res['dt_source'], res['dt_source'])})."]
    if res["simulation"]:
        extras = ", ".join(f"{k} = {g(v)}" for k, v in res["simulation"].items())
        L.append(f"- simulation.json: {extras}.")
    else:
        L.append("- simulation.json: absent (synaptic operations unknown).")
    L.append(f"- Shuffle null seed: {res['seed']}.\n")
    return L


def _how_to_read(figures: dict[str, Any]) -> list[str]:
    """What network, null and biology mean in the tables, and the raster."""
    L = ["## How to read this report\n",
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
         "neurons with fewer than three spikes) are counted in parentheses, never dropped.\n"]
    if figures.get("raster"):
        L.append(f"![raster]({figures['raster']})\n")
    return L


def _energy_table(en: dict[str, Any]) -> list[str]:
    """Spikes and synaptic operations per inference, layer by layer and in total."""
    g = format_number
    L = ["## Energy proxy (per inference)\n",
         f"Source: {en['source']}.\n",
         "| layer | neurons | spikes / sample | spikes / neuron / sample | fanout | "
         "synaptic ops / sample |",
         "|---|---:|---:|---:|---:|---:|"]
    for name, e in en["layers"].items():
        L.append(f"| {name} | {e['neurons']} | {g(e['spikes_per_sample'])} | "
                 f"{g(e['spikes_per_neuron_per_sample'])} | {g(e['fanout'])} | "
                 f"{g(e['synaptic_ops_per_sample'])} |")
    L.append(f"| **total** | | {g(en['spikes_per_sample'])} | | | "
             f"{g(en['synaptic_ops_per_sample'])} |\n")
    return L


def _layer_section(name: str, lay: dict[str, Any], figs: dict[str, Any]) -> list[str]:
    """One layer: its measure table, rate distribution and pairs, figures, the recording
    beside it and the biological ranges used."""
    L = [f"## Layer `{name}`: {lay['neurons']} neurons\n"]
    L += _measure_table(lay["measures"])
    L += _distribution_notes(lay)
    if figs:
        L += _layer_figures(name, figs)
    if lay.get("recording"):
        L.extend(_recording_table(name, lay["recording"], figs.get("recording")))
    L += _biology_sources(lay["measures"])
    return L


def _measure_table(measures: dict[str, Any]) -> list[str]:
    """Measure by measure: network, analytic and shuffled null, biology and verdict."""
    g = format_number
    L = ["| measure | statistic | network | null (analytic) | null (shuffled) | "
         "biology | verdict | n (undefined) |",
         "|---|---|---:|---:|---:|---|---|---:|"]
    for e in measures.values():
        na = e["null"]["analytic"]
        ns = e["null"]["shuffled"]
        bio = e["biology"]
        units = f" {e['units']}" if e["units"] else ""
        brange = (f"{g(bio['low'])}–{g(bio['high'])}{units}" if bio else "—")
        L.append(
            f"| {e['label']}{(' (' + e['units'] + ')') if e['units'] else ''} | "
            f"{e['statistic']} | {g(e['value'])} | {g(na['value']) if na else '—'} | "
            f"{g(ns['value']) if ns else '—'} | {brange} | {e['verdict'] or '—'} | "
            f"{e['summary']['n']} ({e['summary']['n_nan']}) |")
    return L


def _distribution_notes(lay: dict[str, Any]) -> list[str]:
    """The log-normal fit of the rates and the neurons and bins of the pair measures."""
    g = format_number
    rd = lay["rate_distribution"]
    pr = lay["pairs"]
    return ["",
            f"Rate distribution: log-normal fit over {rd['n_fit']} active neurons "
            f"({rd['n_silent']} silent): median {g(rd['median_hz'])} Hz, σ(ln rate) = "
            f"{g(rd['lognormal_sigma'])}, KS p = {g(rd['ks_pvalue'])} (Kolmogorov, optimistic)"
            + (f", Lilliefors p = {g(rd['lilliefors_pvalue'])} ({rd['n_boot']} bootstrap samples): "
               f"log-normal {rd['verdict']}" if rd.get("n_boot") else "") + ". Biology: "
            f"{rd['biology']['statement']} ({rd['biology']['citation']}).",
            f"Pair measures use {pr['neurons_used']} neurons; binned-train correlations "
            f"use bins of {pr['bin_steps']} step(s) = {g(pr['bin_ms'])} ms.\n"]


def _layer_figures(name: str, figs: dict[str, Any]) -> list[str]:
    """The statistics figure with its caption, and the measure-by-measure summary."""
    L = [f"![statistics of {name}]({figs['stats']})\n"]
    if figs.get("caption"):
        L.append(f"*Rate histogram:* {figs['caption']} (the fitted curve is drawn only "
                 "when the Kolmogorov–Smirnov test does not reject it).\n")
    L.append(f"![network, null and biology, measure by measure, of {name}]"
             f"({figs['summary']})\n")
    return L


def _biology_sources(measures: dict[str, Any]) -> list[str]:
    """The biological ranges of a layer's measures and the qualitative statements, cited."""
    L = ["Biological ranges used for this layer:\n"]
    for e in measures.values():
        if e["biology"]:
            L.append(f"- *{e['label']}*: {e['biology']['note']} "
                     f"({e['biology']['citation']})")
    for key, (stmt, cite) in QUALITATIVE.items():
        L.append(f"- *{key.replace('_', ' ')}* (no numeric range): {stmt} ({cite})")
    L.append("")
    return L


def _definition_notes() -> list[str]:
    """How the measures are defined where definitions differ between sources."""
    return ["## Notes on definitions\n",
            "- Definitions follow Elephant 1.2 (`elephant.statistics`, "
            "`elephant.spike_train_correlation`): CV uses ddof 0; a neuron with exactly two "
            "spikes has CV 0 (one interval), as in Elephant; CV2, LV and LvR need three "
            "spikes and are undefined (NaN) otherwise.",
            "- ISIs are taken on the stream train and may span sample boundaries.",
            "- Fano factor, stream view: counts in consecutive windows of T steps (one "
            "sample); trial view: counts across the samples of one class, averaged over "
            "classes. Null: 1 − p in both.",
            "- Noise correlations: Pearson correlation of per-sample counts across the "
            "samples of one class (classes with ≥ 3 samples), averaged over classes.",
            "- Sparseness: Treves–Rolls a = ⟨r⟩²/⟨r²⟩ and Vinje–Gallant S = (1 − a)/(1 − 1/n) "
            "of per-sample counts (Treves & Rolls 1991, Network 2:371; Vinje & Gallant 2000, "
            "Science 287:1273).",
            "- Synchrony: complexity distribution (number of neurons spiking per step) and "
            "Golomb's χ² (Golomb 2007, Scholarpedia 2:1347), 1/N under the null.\n"]


def _references(references: list[str]) -> list[str]:
    """The reference list, one line each, and the final newline."""
    return ["## References\n", *(f"- {r}" for r in references), ""]
