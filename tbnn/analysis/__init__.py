"""Firing statistics of spiking networks, against a null and biology.

Pure NumPy functions on boolean spike arrays ``[samples, T, neurons]`` (sample-first, the
convention of :mod:`tbnn.io.spikes`) with a declared time step ``dt_ms`` (conventions in
:mod:`tbnn.analysis.rates`); definitions match Elephant 1.2.

Layering: :mod:`tbnn.io.spikes` (archive, checks) < the measure modules < the catalogue <
the report, which alone imports :mod:`tbnn.viz.plot`.

Modules
-------
rates          mean rate (per step, Hz), fraction silent, fraction active per step, time
               histogram / PSTH, log-normal fit of the rate distribution, shuffle null
goodness_of_fit  Kolmogorov–Smirnov test of a normal with fitted parameters (Lilliefors,
               p-value by parametric bootstrap): the log-normal test of the rates
irregularity   ISI, CV, CV2, LV, LvR and their Bernoulli nulls
variability    Fano factor (stream and trial views) and its null 1 - p
correlation    pairwise correlations of binned trains and of counts (noise), complexity,
               synchrony chi^2, and their nulls
sparseness     Treves–Rolls / Vinje–Gallant lifetime and population sparseness, energy proxy
measures       the registry: one record per measure (label, units, definition, statistic,
               log axis, biological band, network / null / recording functions), one file
               per family; the catalogue, figures and recording comparison read it
reference      biological ranges as data (the records' bands), ``verdict``
catalogue      every registered measure of one layer against null and biology:
               ``analyze_spikes``
energy         spikes and synaptic operations per inference
figures        the report's figures (statistics, one panel per measure)
markdown       ``report.md``
raster         ``raster_run`` (``tbnn raster``)
runfiles       inputs and outputs: archive paths, layer selection, JSON
report         ``analyze_run`` (``tbnn analyze``)

>>> import numpy as np
>>> s = np.zeros((2, 4, 3), bool); s[:, ::2, 0] = True
>>> rate_per_step(s).tolist()
[0.5, 0.0, 0.0]
"""

from tbnn.analysis import correlation, irregularity, rates, reference, report, sparseness, variability
from tbnn.analysis.goodness_of_fit import LillieforsResult, ks_normal_statistic, lilliefors_test
from tbnn.analysis.correlation import (
    complexity_distribution,
    complexity_histogram,
    correlation_matrix,
    noise_correlations,
    null_complexity,
    null_synchrony_chi2,
    pairwise_correlations,
    synchrony_chi2,
)
from tbnn.analysis.irregularity import (
    cv,
    cv2,
    isi,
    lv,
    lvr,
    null_cv,
    null_cv2,
    null_lv,
    null_lvr,
    pooled_isi,
)
from tbnn.analysis.rates import (
    fraction_active_per_step,
    fraction_silent,
    lognormal_fit,
    psth,
    rate_distribution,
    rate_hz,
    rate_per_step,
    shuffle_bins,
    spike_counts,
    time_histogram,
)
from tbnn.analysis.measures import MEASURES, Measure, register_measure
from tbnn.analysis.reference import REFERENCES, Reference, verdict
from tbnn.analysis.catalogue import analyze_spikes, summarize
from tbnn.analysis.raster import raster_run
from tbnn.analysis.report import analyze_run
from tbnn.analysis.sparseness import (
    energy_proxy,
    lifetime_sparseness,
    null_lifetime_sparseness,
    null_population_sparseness,
    population_sparseness,
    treves_rolls,
    vinje_gallant,
)
from tbnn.analysis.variability import fano_factor, fano_stream, fano_trial, null_fano
from tbnn.io.spikes import as_stream, to_neo

__all__ = [
    "LillieforsResult",
    "MEASURES",
    "Measure",
    "REFERENCES",
    "Reference",
    "analyze_run",
    "analyze_spikes",
    "as_stream",
    "complexity_distribution",
    "complexity_histogram",
    "correlation",
    "correlation_matrix",
    "cv",
    "cv2",
    "energy_proxy",
    "fano_factor",
    "fano_stream",
    "fano_trial",
    "fraction_active_per_step",
    "fraction_silent",
    "irregularity",
    "isi",
    "ks_normal_statistic",
    "lifetime_sparseness",
    "lilliefors_test",
    "lognormal_fit",
    "lv",
    "lvr",
    "noise_correlations",
    "null_complexity",
    "null_cv",
    "null_cv2",
    "null_fano",
    "null_lifetime_sparseness",
    "null_lv",
    "null_lvr",
    "null_population_sparseness",
    "null_synchrony_chi2",
    "pairwise_correlations",
    "pooled_isi",
    "population_sparseness",
    "psth",
    "raster_run",
    "rate_distribution",
    "rate_hz",
    "rate_per_step",
    "rates",
    "reference",
    "register_measure",
    "report",
    "shuffle_bins",
    "sparseness",
    "spike_counts",
    "summarize",
    "synchrony_chi2",
    "time_histogram",
    "to_neo",
    "treves_rolls",
    "variability",
    "verdict",
    "vinje_gallant",
]
