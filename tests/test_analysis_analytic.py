"""Analytic checks: Bernoulli null, gamma-renewal trains, regular trains, closed forms."""

import numpy as np
import pytest

from tbnn import analysis as ta
from tbnn.analysis import irregularity as irr
from tbnn.analysis import sparseness as sp


def _bernoulli(p, L, n, seed=0):
    return np.random.default_rng(seed).random((L, n)) < p


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8])
def test_bernoulli_cv_and_fano_match_null(p):
    s = _bernoulli(p, 20000, 40, seed=int(p * 100))
    cv = ta.cv(s)
    assert abs(cv.mean() - np.sqrt(1 - p)) < 0.02
    fano = ta.fano_stream(s, window_steps=20)
    assert abs(fano.mean() - (1 - p)) < 0.03
    np.testing.assert_allclose(ta.null_cv(p), np.sqrt(1 - p))
    np.testing.assert_allclose(ta.null_fano(p), 1 - p)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.7])
def test_bernoulli_local_measures_match_closed_forms(p):
    s = _bernoulli(p, 20000, 40, seed=7)
    dt = 0.5
    assert abs(np.nanmean(ta.lv(s)) - ta.null_lv(p)) < 0.02
    assert abs(np.nanmean(ta.cv2(s)) - ta.null_cv2(p)) < 0.02
    assert abs(np.nanmean(ta.lvr(s, dt)) - ta.null_lvr(p, dt)) < 0.03 * ta.null_lvr(p, dt)


def test_trial_fano_and_shuffle_of_bernoulli():
    rng = np.random.default_rng(3)
    s = rng.random((400, 10, 20)) < 0.3
    labels = rng.integers(0, 4, 400)
    assert abs(np.nanmean(ta.fano_trial(s, labels)) - 0.7) < 0.03
    sh = ta.shuffle_bins(s, seed=1)
    assert sh.shape == s.shape and sh.dtype == np.bool_
    np.testing.assert_array_equal(ta.spike_counts(sh), ta.spike_counts(s))
    assert not np.array_equal(sh, s)
    np.testing.assert_array_equal(sh, ta.shuffle_bins(s, seed=1))  # seeded


def _gamma_train(k, mean_steps, L, rng):
    isis = rng.gamma(k, mean_steps / k, size=int(2 * L / mean_steps) + 10)
    t = np.floor(np.cumsum(isis)).astype(int)
    t = np.unique(t[t < L])
    s = np.zeros(L, bool)
    s[t] = True
    return s


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_gamma_renewal_cv_and_lv(k):
    rng = np.random.default_rng(k)
    s = np.stack([_gamma_train(k, 100, 200_000, rng) for _ in range(8)], axis=1)
    assert abs(np.mean(ta.cv(s)) - 1 / np.sqrt(k)) < 0.04
    assert abs(np.mean(ta.lv(s)) - 3 / (2 * k + 1)) < 0.04


def test_regular_train_is_perfectly_regular():
    s = np.zeros((500, 3), bool)
    s[::5, 0] = True
    s[2::10, 1] = True
    s[:, 2] = True
    for f in (ta.cv, ta.lv, ta.cv2):
        np.testing.assert_array_equal(f(s), 0.0)
    np.testing.assert_array_equal(ta.lvr(s, 1.0), 0.0)
    np.testing.assert_array_equal(ta.fano_stream(s, 10)[:2], 0.0)


def _brute(p, f):
    K = int(np.ceil(40 / p))  # the geometric tail beyond K is below e^-40
    k = np.arange(1, K + 1, dtype=float)
    w = p * (1 - p) ** (k - 1)
    a, b = np.meshgrid(k, k, indexing="ij")
    return float(np.sum(np.outer(w, w) * f(a, b)))


@pytest.mark.parametrize("p", [0.999, 0.9, 0.5, 0.2, 0.05, 0.03])
def test_null_closed_forms_equal_geometric_sums(p):
    np.testing.assert_allclose(irr.null_lv(p), _brute(p, lambda a, b: 3 * ((a - b) / (a + b)) ** 2),
                               rtol=1e-9)
    np.testing.assert_allclose(irr.null_cv2(p), _brute(p, lambda a, b: 2 * abs(a - b) / (a + b)),
                               rtol=1e-9)
    dt, R = 0.7, 5.0
    np.testing.assert_allclose(
        irr.null_lvr(p, dt, R),
        _brute(p, lambda a, b: 3 * (1 - 4 * a * b / (a + b) ** 2) * (1 + 4 * R / (dt * (a + b)))),
        rtol=1e-9)


def test_null_limits():
    # p -> 0: Poisson values; p = 1: perfectly regular; p = 0: undefined
    np.testing.assert_allclose(ta.null_lv([1e-7, 1.0]), [1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(ta.null_cv2([1e-7, 1.0]), [1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(ta.null_lvr(1e-6, 1.0, 5.0), 1 + 4 * 5 * 1e-6, atol=1e-5)
    for f in (ta.null_cv, ta.null_cv2, ta.null_lv, ta.null_fano):
        assert np.isnan(f(0.0))
    assert ta.null_cv(np.array([[0.19, 0.36]])).shape == (1, 2)
    with pytest.raises(ValueError, match="p must"):
        ta.null_cv(1.5)


def test_correlations_of_independent_and_identical_trains():
    s = _bernoulli(0.2, 5000, 10, seed=4)
    c = ta.pairwise_correlations(s)
    assert c.shape == (45,) and abs(c.mean()) < 0.01
    same = np.repeat(s[:, :1], 3, axis=1)
    np.testing.assert_allclose(ta.pairwise_correlations(same), 1.0)
    assert abs(ta.synchrony_chi2(s) - 1 / 10) < 0.02
    assert ta.synchrony_chi2(same) == pytest.approx(1.0)
    assert ta.null_synchrony_chi2(10) == 0.1


def test_complexity_matches_poisson_binomial_null():
    p = np.array([0.05, 0.1, 0.2, 0.4, 0.6])
    s = np.random.default_rng(5).random((40000, 5)) < p
    emp = ta.complexity_distribution(s)
    null = ta.null_complexity(p)
    assert null.shape == (6,) and null.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(emp, null, atol=0.01)
    # brute force over all 2^5 patterns
    pats = np.array(np.meshgrid(*[[0, 1]] * 5)).reshape(5, -1).T
    prob = np.prod(np.where(pats, p, 1 - p), axis=1)
    np.testing.assert_allclose(null, np.bincount(pats.sum(1), weights=prob), rtol=1e-12)


def test_sparseness_definitions_and_null():
    one_hot = np.eye(5)
    np.testing.assert_allclose(sp.vinje_gallant(one_hot, axis=1), 1.0)
    np.testing.assert_allclose(sp.treves_rolls(one_hot, axis=1), 0.2)
    flat = np.ones((3, 4))
    np.testing.assert_allclose(sp.vinje_gallant(flat, axis=1), 0.0)
    np.testing.assert_allclose(sp.treves_rolls(flat, axis=1), 1.0)
    assert np.isnan(sp.treves_rolls(np.zeros(4)))
    # Bernoulli null: analytic vs simulation with many samples
    rng = np.random.default_rng(6)
    p = np.array([0.05, 0.2, 0.5])
    s = rng.random((3000, 8, 3)) < p
    np.testing.assert_allclose(ta.lifetime_sparseness(s), sp.null_lifetime_sparseness(p, 8, 3000),
                               atol=0.02)
    q = rng.uniform(0.05, 0.5, 400)
    s2 = rng.random((50, 8, 400)) < q
    assert abs(ta.population_sparseness(s2).mean() - sp.null_population_sparseness(q, 8)) < 0.02


def test_lognormal_fit_recovers_parameters():
    r = np.random.default_rng(8).lognormal(mean=0.5, sigma=1.2, size=4000)
    fit = ta.lognormal_fit(np.concatenate([r, np.zeros(7)]))
    assert fit.mu == pytest.approx(0.5, abs=0.06)
    assert fit.sigma == pytest.approx(1.2, abs=0.06)
    assert fit.n_fit == 4000 and fit.n_excluded == 7
    assert fit.ks_pvalue > 0.01
