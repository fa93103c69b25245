"""Measures on hand-made trains, silent layers, input validation, biological references."""

import re

import numpy as np
import pytest

from tbnn import analysis as ta
from tbnn.analysis import reference as ref
from tbnn.analysis import sparseness as sp
from tbnn.analysis.report import summarize

# ----------------------------------------------------------------------------------------
# input validation: one sentence naming the argument and what is allowed


@pytest.mark.parametrize(
    "spikes, match",
    [
        (np.zeros((4, 3)), r"spikes must be a boolean array.*got dtype float64"),
        (np.zeros((4, 3), dtype=np.int8), "boolean"),
        ([[0, 1], [1, 0]], "boolean"),
        (np.zeros((2, 2, 2, 2), bool), r"spikes must have shape.*got rank 4"),
        (np.zeros((0, 3), bool), "at least one time step"),
        (np.zeros((3, 0), bool), "at least one"),
        (np.array(True), "rank 0"),
    ],
)
def test_bad_spikes_rejected(spikes, match):
    for f in (ta.rate_per_step, ta.cv, ta.lv, ta.spike_counts, ta.fraction_active_per_step):
        with pytest.raises(ValueError, match=match):
            f(spikes)


@pytest.mark.parametrize("dt", [0, -1.0, float("nan"), float("inf"), "abc", None, True])
def test_bad_dt_rejected(dt):
    s = np.zeros((5, 2), bool)
    for f in (ta.rate_hz, ta.isi, ta.lvr, ta.time_histogram, ta.psth):
        with pytest.raises(ValueError, match="dt_ms must be a finite number of milliseconds > 0"):
            f(s, dt)


def test_other_arguments_rejected():
    s = np.ones((6, 2, 3), bool)
    with pytest.raises(ValueError, match="R_ms"):
        ta.lvr(s, 1.0, R_ms=-1)
    with pytest.raises(ValueError, match="window_steps"):
        ta.fano_stream(s, window_steps=0)
    with pytest.raises(ValueError, match="window_steps must leave at least two windows"):
        ta.fano_stream(s, window_steps=12)
    with pytest.raises(ValueError, match="window_steps is required"):
        ta.fano_stream(s[0], None)
    with pytest.raises(ValueError, match="labels must be a 1-D integer array"):
        ta.fano_trial(s, np.zeros(5, int))
    with pytest.raises(ValueError, match=r"spikes must have shape \[samples, time, neurons\]"):
        ta.fano_trial(s[0], np.zeros(2, int))
    with pytest.raises(ValueError, match="output must be"):
        ta.time_histogram(s, 1.0, output="hz")
    with pytest.raises(ValueError, match="bin_steps"):
        ta.correlation_matrix(s, bin_steps=0)
    with pytest.raises(ValueError, match="measure must be one of"):
        ta.lifetime_sparseness(s, measure="gini")
    with pytest.raises(ValueError, match="responses"):
        ta.vinje_gallant(-np.ones(3))
    with pytest.raises(ValueError, match="intervals"):
        ta.irregularity.cv_of_intervals([1.0, -2.0])
    with pytest.raises(ValueError, match="rates"):
        ta.lognormal_fit([])


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    s = torch.rand(50, 4) < 0.3
    np.testing.assert_allclose(ta.rate_per_step(s), s.float().mean(0).numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------------------
# shapes and hand computations


def test_stream_view_concatenates_samples():
    s = np.zeros((2, 3, 1), bool)
    s[0, 2, 0] = s[1, 0, 0] = True  # one step apart across the sample boundary
    np.testing.assert_allclose(ta.isi(s, 2.0)[0], [2.0])
    assert ta.rate_per_step(s)[0] == pytest.approx(2 / 6)
    np.testing.assert_allclose(ta.rate_hz(s, 2.0), [2 / 6 * 500])
    assert ta.as_stream(s).shape == (6, 1)
    assert ta.rate_per_step(np.array([True, False]))[0] == 0.5  # 1-D: one neuron


def test_hand_computed_irregularity():
    s = np.zeros(20, bool)
    s[[0, 2, 6, 7]] = True  # intervals 2, 4, 1
    isi = np.array([2.0, 4.0, 1.0])
    assert ta.cv(s)[0] == pytest.approx(isi.std() / isi.mean())
    assert ta.cv2(s)[0] == pytest.approx(np.mean([2 * 2 / 6, 2 * 3 / 5]))
    assert ta.lv(s)[0] == pytest.approx(np.mean([3 * (2 / 6) ** 2, 3 * (3 / 5) ** 2]))
    lvr = 3 * np.mean([(1 - 4 * 8 / 36) * (1 + 4 * 5 / 6), (1 - 4 * 4 / 25) * (1 + 4 * 5 / 5)])
    assert ta.lvr(s, 1.0)[0] == pytest.approx(lvr)
    np.testing.assert_allclose(ta.pooled_isi(s, 0.5), isi * 0.5)


def test_all_silent_layer_works_and_reports_nan():
    s = np.zeros((5, 4, 6), bool)
    labels = np.array([0, 0, 1, 1, 1])
    assert ta.fraction_silent(s) == 1.0
    np.testing.assert_array_equal(ta.rate_hz(s, 1.0), 0.0)
    for f in (ta.cv, ta.cv2, ta.lv):
        assert np.all(np.isnan(f(s)))
    assert np.all(np.isnan(ta.lvr(s, 1.0)))
    assert np.all(np.isnan(ta.fano_stream(s)))
    assert np.all(np.isnan(ta.fano_trial(s, labels)))
    assert np.all(np.isnan(ta.pairwise_correlations(s)))
    assert np.all(np.isnan(ta.noise_correlations(s, labels)))
    assert np.isnan(ta.synchrony_chi2(s))
    assert np.all(np.isnan(ta.lifetime_sparseness(s)))
    assert np.all(np.isnan(ta.population_sparseness(s)))
    assert np.isnan(ta.lognormal_fit(ta.rate_hz(s, 1.0)).mu)
    assert ta.isi(s, 1.0)[0].size == 0 and ta.pooled_isi(s, 1.0).size == 0
    np.testing.assert_array_equal(ta.complexity_histogram(s), [20, 0, 0, 0, 0, 0, 0])
    summ = summarize(ta.cv(s))
    assert summ["n"] == 0 and summ["n_nan"] == 6 and np.isnan(summ["median"])


def test_fano_trial_by_class():
    # neuron 0: counts vary across samples of class 0 (1, 3), constant in class 1 (2, 2)
    s = np.zeros((4, 4, 2), bool)
    s[0, :1, 0] = True
    s[1, :3, 0] = True
    s[2, :2, 0] = s[3, :2, 0] = True
    s[:2, 0, 1] = True  # neuron 1: fires once in class 0 samples, never in class 1
    labels = np.array([0, 0, 1, 1])
    f = ta.fano_trial(s, labels)
    assert f[0] == pytest.approx((1.0 / 2.0 + 0.0) / 2)  # var 1, mean 2; then 0
    assert f[1] == 0.0  # class 1 undefined (silent), class 0 gives 0
    # classes with fewer than min_samples are skipped; none left -> NaN
    assert np.all(np.isnan(ta.fano_trial(s, np.array([0, 1, 2, 3]))))


def test_noise_correlations_detect_shared_count_fluctuations():
    rng = np.random.default_rng(0)
    S, T = 300, 20
    labels = rng.integers(0, 3, S)
    gain = rng.uniform(0.05, 0.5, S)[:, None, None]  # shared per-sample fluctuation
    s = rng.random((S, T, 6)) < gain
    nc = ta.noise_correlations(s, labels)
    assert nc.shape == (15,) and nc.mean() > 0.3
    ind = rng.random((S, T, 6)) < 0.2
    assert abs(ta.noise_correlations(ind, labels).mean()) < 0.05
    m = ta.correlation.count_correlation_matrix(s, labels)
    np.testing.assert_allclose(np.diag(m), 1.0)


def test_population_and_lifetime_sparseness_shapes():
    s = np.zeros((4, 3, 5), bool)
    s[0, 0, 0] = True  # sample 0: one neuron responds
    s[1, :, :] = True  # sample 1: all respond equally
    pop = ta.population_sparseness(s)
    assert pop.shape == (4,)
    assert pop[0] == pytest.approx(1.0) and pop[1] == pytest.approx(0.0)
    assert np.all(np.isnan(pop[2:]))
    life = ta.lifetime_sparseness(s)
    assert life.shape == (5,)
    np.testing.assert_allclose(sp.treves_rolls([[0, 0, 4]], axis=1), [1 / 3])


def test_energy_proxy():
    s = {"a": np.ones((2, 3, 4), bool), "b": np.zeros((2, 3, 2), bool)}
    s["b"][0, 0, 0] = True
    e = ta.energy_proxy(s, {"a": 2.0, "b": 10})
    assert e["layers"]["a"]["spikes_per_sample"] == 12
    assert e["layers"]["b"]["spikes_per_sample"] == 0.5
    assert e["layers"]["a"]["synaptic_ops_per_sample"] == 24
    assert e["synaptic_ops_per_sample"] == 24 + 5
    assert e["spikes_per_sample"] == 12.5
    e2 = ta.energy_proxy(s, {"a": 2.0})
    assert e2["layers"]["b"]["synaptic_ops_per_sample"] is None
    assert e2["synaptic_ops_per_sample"] is None
    with pytest.raises(ValueError, match="fanout"):
        ta.energy_proxy(s, {"a": -1})


def test_time_histogram_and_psth():
    s = np.zeros((3, 4, 2), bool)
    s[:, 1, :] = True
    s[0, 3, 0] = True
    np.testing.assert_array_equal(ta.time_histogram(s, 1.0, 4), [3, 2, 2])
    rate, sem = ta.psth(s, 2.0)
    np.testing.assert_allclose(rate, [0, 500, 0, 500 / 6])
    assert sem.shape == (4,) and sem[1] == 0


# ----------------------------------------------------------------------------------------
# biological references


def test_references_have_ranges_and_citations():
    cites = " ".join(r.citation for r in ref.REFERENCES.values())
    for needle in ["Nat Rev Neurosci 15:264", "PLoS Biol 6:e16", "J Neurosci 13:334",
                   "PLoS Comput Biol 5:e1000433", "Nat Neurosci 13:369", "Nat Neurosci 14:811",
                   "Science 327:584", "J Cereb Blood Flow Metab 21:1133", "Curr Biol 13:493",
                   "Science 287:1273"]:
        assert needle in cites
    for r in ref.REFERENCES.values():
        assert r.low < r.high
        assert r.statistic in ("mean", "median")
        assert re.search(r"\d{4}, .+ \d+:\w+", r.citation)
        assert r.note
    assert ref.REFERENCES["fano_trial"].low == 1.0 and ref.REFERENCES["fano_trial"].high == 1.5
    assert ref.REFERENCES["noise_correlation"].high == 0.3


def test_verdict():
    r = ref.REFERENCES["cv"]
    assert ref.verdict(1.0, r) == "inside"
    assert ref.verdict(r.low, r) == "inside" and ref.verdict(r.high, "cv") == "inside"
    assert ref.verdict(0.1, r) == "below"
    assert ref.verdict(5.0, r) == "above"
    assert ref.verdict(float("nan"), r) == "undefined"
    with pytest.raises(ValueError, match="ref must be"):
        ref.verdict(1.0, "nope")
    with pytest.raises(ValueError, match="value must be a number"):
        ref.verdict("x", r)
