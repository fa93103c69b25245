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
    g = format_number
    L: list[str] = []
    src = res["source"]
    L.append(f"# Firing statistics: `{src['spikes']}`\n")
    L.append(f"- {res['samples']} samples × {res['timesteps']} time steps, "
             f"dt = {g(res['dt_ms'])} ms "
             f"({DT_SOURCES.get(res['dt_source'], res['dt_source'])}).")
    if res["simulation"]:
        s = res["simulation"]
        extras = ", ".join(f"{k} = {g(v)}" for k, v in s.items())
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
        L.append(f"| {name} | {e['neurons']} | {g(e['spikes_per_sample'])} | "
                 f"{g(e['spikes_per_neuron_per_sample'])} | {g(e['fanout'])} | "
                 f"{g(e['synaptic_ops_per_sample'])} |")
    L.append(f"| **total** | | {g(en['spikes_per_sample'])} | | | "
             f"{g(en['synaptic_ops_per_sample'])} |\n")

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
            brange = (f"{g(bio['low'])}–{g(bio['high'])}{units}" if bio else "—")
            L.append(
                f"| {e['label']}{(' (' + e['units'] + ')') if e['units'] else ''} | "
                f"{e['statistic']} | {g(e['value'])} | {g(na['value']) if na else '—'} | "
                f"{g(ns['value']) if ns else '—'} | {brange} | {e['verdict'] or '—'} | "
                f"{e['summary']['n']} ({e['summary']['n_nan']}) |")
        rd = lay["rate_distribution"]
        L.append("")
        L.append(f"Rate distribution: log-normal fit over {rd['n_fit']} active neurons "
                 f"({rd['n_silent']} silent): median {g(rd['median_hz'])} Hz, σ(ln rate) = "
                 f"{g(rd['lognormal_sigma'])}, KS p = {g(rd['ks_pvalue'])} (Kolmogorov, optimistic)"
                 + (f", Lilliefors p = {g(rd['lilliefors_pvalue'])} ({rd['n_boot']} bootstrap samples): "
                    f"log-normal {rd['verdict']}" if rd.get("n_boot") else "") + ". Biology: "
                 f"{rd['biology']['statement']} ({rd['biology']['citation']}).")
        pr = lay["pairs"]
        L.append(f"Pair measures use {pr['neurons_used']} neurons; binned-train correlations "
                 f"use bins of {pr['bin_steps']} step(s) = {g(pr['bin_ms'])} ms.\n")
        figs = res["figures"]["layers"].get(name, {})
        if figs:
            L.append(f"![statistics of {name}]({figs['stats']})\n")
            if figs.get("caption"):
                L.append(f"*Rate histogram:* {figs['caption']} (the fitted curve is drawn only "
                         "when the Kolmogorov–Smirnov test does not reject it).\n")
            L.append(f"![network, null and biology, measure by measure, of {name}]"
                     f"({figs['summary']})\n")
        if lay.get("recording"):
            L.extend(_recording_table(name, lay["recording"], figs.get("recording")))
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
