"""The Lilliefors-style test of a (log-)normal with fitted parameters, by parametric bootstrap."""

import numpy as np
import pytest
import scipy.stats

import tbnn.analysis as ta
from tbnn.analysis.goodness_of_fit import ks_normal_statistic, lilliefors_test


def test_statistic_is_scipy_kstest_on_the_standardized_values():
    rng = np.random.default_rng(3)
    for x in (rng.lognormal(0, 1, 57), rng.normal(5, 2, 200), rng.exponential(1, 31)):
        z = (x - x.mean()) / x.std()
        want = scipy.stats.kstest(z, "norm").statistic
        assert float(ks_normal_statistic(x)) == pytest.approx(want, abs=1e-12)
        assert lilliefors_test(x, n_boot=9).statistic == pytest.approx(want, abs=1e-12)
    rows = rng.normal(size=(4, 20))
    assert ks_normal_statistic(rows) == pytest.approx([ks_normal_statistic(r) for r in rows])


def test_pvalue_matches_scipy_goodness_of_fit():
    x = np.random.default_rng(5).gamma(16.0, 1.0, 60)  # mildly skewed: a p-value away from 0 and 1
    ours = lilliefors_test(x, n_boot=1999, seed=1)
    ref = scipy.stats.goodness_of_fit(scipy.stats.norm, x, statistic="ks", n_mc_samples=1999,
                                      rng=np.random.default_rng(2))
    # scipy standardizes with the n - 1 standard deviation, we with the maximum-likelihood one
    # (as lognormal_fit): two calibrated versions of one test, equal p-values up to Monte Carlo error
    z1 = (x - x.mean()) / x.std(ddof=1)
    assert ref.statistic == pytest.approx(scipy.stats.kstest(z1, "norm").statistic, abs=1e-12)
    assert ours.statistic == pytest.approx(ref.statistic, abs=0.002)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=0.04)  # two Monte Carlo estimates of one p (~0.2)
    assert 0.1 < ours.pvalue < 0.35


def test_normal_samples_are_rejected_about_alpha_of_the_time():
    # under the null the bootstrap p-value is uniform: about 5 % of normal samples are rejected
    rng = np.random.default_rng(0)
    rejected = [lilliefors_test(rng.normal(3.0, 0.7, 60), n_boot=199, seed=s).pvalue < 0.05 for s in range(200)]
    assert 0.01 <= np.mean(rejected) <= 0.10
    # the Kolmogorov p-value with fitted parameters is optimistic: it rejects far less often
    kolmogorov = [ta.lognormal_fit(np.exp(rng.normal(0, 1, 60)), n_boot=0).ks_pvalue < 0.05 for _ in range(200)]
    assert np.mean(kolmogorov) < 0.01


def test_lognormal_rates_not_rejected_bimodal_and_exponential_rejected():
    rng = np.random.default_rng(1)
    rates = np.concatenate([rng.lognormal(-3.0, 0.8, 300), np.zeros(12)])
    fit = ta.lognormal_fit(rates, n_boot=499, seed=0)
    assert fit.n_fit == 300 and fit.n_excluded == 12 and fit.n_boot == 499
    assert fit.verdict() == "not rejected at 5 %"
    bimodal = np.concatenate([rng.lognormal(-4.0, 0.2, 150), rng.lognormal(-1.0, 0.2, 150)])
    assert ta.lognormal_fit(bimodal, n_boot=499).verdict() == "rejected at 5 %"
    # exponential rates: log-rates are skewed to the left (a Gumbel), not normal
    assert ta.lognormal_fit(rng.exponential(0.05, 300), n_boot=499).verdict() == "rejected at 5 %"
    assert ta.lognormal_fit([0.0, 0.1, 0.1]).verdict() == "not tested"


def test_refusals():
    with pytest.raises(ValueError, match="x must be a 1-D array of finite numbers"):
        lilliefors_test([[1.0, 2.0]])
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
        lilliefors_test([1.0, 2.0, 4.0], n_boot=0)
    with pytest.raises(ValueError, match="n_boot must be an integer >= 0"):
        ta.lognormal_fit([1.0, 2.0], n_boot=-1)
    assert np.isnan(lilliefors_test([1.0, 1.0, 1.0]).pvalue)


def test_counted_rates_need_their_ties_broken():
    # log-normal rates counted over 1800 steps (a layer's test split): ties among equal counts
    # make the continuous test reject; spreading each rate over its quantum restores the level
    rng = np.random.default_rng(0)
    L, raw, spread = 1800, [], []
    for i in range(40):
        k = rng.binomial(L, np.minimum(1.0, rng.lognormal(np.log(0.005), 1.0, 256)))
        raw.append(ta.lognormal_fit(k / L, n_boot=99, seed=i).lilliefors_pvalue < 0.05)
        fit = ta.lognormal_fit(k / L, n_boot=99, seed=i, quantum=1 / L)
        spread.append(fit.lilliefors_pvalue < 0.05)
        assert fit.n_excluded == int((k == 0).sum())  # silent neurons stay excluded and counted
    assert np.mean(raw) > 0.25 and np.mean(spread) <= 0.12
    with pytest.raises(ValueError, match="quantum must be a finite number >= 0"):
        ta.lognormal_fit([1.0, 2.0], quantum=-1.0)
