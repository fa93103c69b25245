"""Cross-checks against Elephant 1.2 on the same spike trains, edge cases included."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbnn import analysis as ta
from tbnn.io.spikes import to_neo

es = pytest.importorskip("elephant.statistics")
BinnedSpikeTrain = pytest.importorskip("elephant.conversion").BinnedSpikeTrain
correlation_coefficient = pytest.importorskip(
    "elephant.spike_train_correlation").correlation_coefficient
neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning",
                                        "ignore::DeprecationWarning")


def _trains(seed=0, L=240):
    """[L, N] trains: random rates plus neurons with 0, 1, 2, 3 spikes, a regular one and
    one that fires in every step."""
    rng = np.random.default_rng(seed)
    p = np.array([0.02, 0.05, 0.1, 0.3, 0.6])
    rand = rng.random((L, p.size)) < p
    edge = np.zeros((L, 6), bool)
    edge[[5], 1] = True
    edge[[3, 100], 2] = True
    edge[[3, 50, 200], 3] = True
    edge[::7, 4] = True
    edge[:, 5] = True
    return np.concatenate([rand, edge], axis=1)


def _es_scalar(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(f(*args, **kw))


@pytest.mark.parametrize("dt", [1.0, 0.5, 0.25])
def test_mean_rate_and_isi_equal_elephant(dt):
    s = _trains()
    trains = to_neo(s, dt)
    np.testing.assert_allclose(
        ta.rate_hz(s, dt),
        [float(es.mean_firing_rate(t).rescale(pq.Hz)) for t in trains], rtol=1e-12)
    ours = ta.isi(s, dt)
    for t, mine in zip(trains, ours):
        np.testing.assert_allclose(mine, es.isi(t).rescale(pq.ms).magnitude, rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_cv_cv2_lv_lvr_equal_elephant_including_edge_cases(dt):
    s = _trains(1)
    trains = to_neo(s, dt)
    want = {"cv": [], "cv2": [], "lv": [], "lvr": [], "lvr2": []}
    for t in trains:
        i = es.isi(t).rescale(pq.ms)
        want["cv"].append(_es_scalar(es.cv, i.magnitude))
        want["cv2"].append(_es_scalar(es.cv2, i.magnitude, with_nan=True))
        want["lv"].append(_es_scalar(es.lv, i.magnitude, with_nan=True))
        want["lvr"].append(_es_scalar(es.lvr, i, R=5 * pq.ms, with_nan=True))
        want["lvr2"].append(_es_scalar(es.lvr, i, R=2 * pq.ms, with_nan=True))
    kw = {"rtol": 1e-10, "atol": 1e-12, "equal_nan": True}
    np.testing.assert_allclose(ta.cv(s), want["cv"], **kw)
    np.testing.assert_allclose(ta.cv2(s), want["cv2"], **kw)
    np.testing.assert_allclose(ta.lv(s), want["lv"], **kw)
    np.testing.assert_allclose(ta.lvr(s, dt), want["lvr"], **kw)
    np.testing.assert_allclose(ta.lvr(s, dt, R_ms=2.0), want["lvr2"], **kw)
    im = ta.irregularity.interval_measures(s, dt)  # the one-pass form used by the report
    for key in ("cv", "cv2", "lv", "lvr"):
        np.testing.assert_allclose(im[key], want[key], **kw)
    np.testing.assert_allclose(im["isi_ms"], np.concatenate(ta.isi(s, dt)))
    np.testing.assert_allclose(ta.irregularity.interval_measures(s, dt, 2.0)["lvr"],
                               want["lvr2"], **kw)
    # the edge neurons: 0 spikes, 1, 2, 3 spikes (columns 5..8)
    cv, cv2 = ta.cv(s), ta.cv2(s)
    assert np.isnan(cv[5]) and np.isnan(cv[6])  # 0 and 1 spike: no interval
    assert cv[7] == 0.0  # 2 spikes: one interval, Elephant's CV is 0
    assert np.isnan(cv2[7]) and np.isfinite(cv2[8])  # CV2 needs 3 spikes
    assert cv[9] == 0 and ta.lv(s)[9] == 0  # regular
    assert cv[10] == 0 and ta.lv(s)[10] == 0 and ta.lvr(s, dt)[10] == 0  # fires every step


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.sampled_from([1.0, 0.5, 2.0]))
def test_single_train_measures_match_elephant_property(bits, dt):
    s = np.array(bits, dtype=bool)
    (t,) = to_neo(s, dt)
    i = es.isi(t).rescale(pq.ms)
    kw = {"rtol": 1e-10, "atol": 1e-12, "equal_nan": True}
    np.testing.assert_allclose(ta.cv(s)[0], _es_scalar(es.cv, i.magnitude), **kw)
    np.testing.assert_allclose(ta.cv2(s)[0], _es_scalar(es.cv2, i.magnitude, with_nan=True), **kw)
    np.testing.assert_allclose(ta.lv(s)[0], _es_scalar(es.lv, i.magnitude, with_nan=True), **kw)
    np.testing.assert_allclose(ta.lvr(s, dt)[0],
                               _es_scalar(es.lvr, i, R=5 * pq.ms, with_nan=True), **kw)
    np.testing.assert_allclose(ta.rate_hz(s, dt)[0],
                               float(es.mean_firing_rate(t).rescale(pq.Hz)), rtol=1e-12)
    # the interval-vector forms agree too
    if i.size:
        np.testing.assert_allclose(ta.irregularity.lv_of_intervals(i.magnitude),
                                   ta.lv(s)[0], **kw)
        np.testing.assert_allclose(ta.irregularity.cv_of_intervals(i.magnitude),
                                   ta.cv(s)[0], **kw)


@pytest.mark.parametrize("window", [None, 4, 12])
def test_fano_factor_equals_elephant(window):
    rng = np.random.default_rng(2)
    S, T = 12, 8
    s = rng.random((S, T, 6)) < np.array([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
    s[:, :, 2] &= (np.arange(S) % 3 == 0)[:, None]  # some over-dispersion
    w = T if window is None else window
    stream = s.reshape(S * T, -1)
    n_win = stream.shape[0] // w
    per_window = [to_neo(stream[k * w:(k + 1) * w], 1.0) for k in range(n_win)]
    want = [_es_scalar(es.fanofactor, [pw[i] for pw in per_window]) for i in range(6)]
    got = ta.fano_stream(s, window)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[0])  # silent neuron: NaN as in Elephant
    assert got[5] == 0.0  # always firing: no variance


@pytest.mark.parametrize("bin_steps, fast", [(1, True), (1, False), (3, True), (4, False)])
def test_correlation_coefficient_equals_elephant(bin_steps, fast):
    s = _trains(3)
    dt = 0.5
    trains = to_neo(s, dt)
    L = s.shape[0]
    bst = BinnedSpikeTrain(trains, bin_size=bin_steps * dt * pq.ms, t_start=0 * pq.ms,
                           t_stop=L * dt * pq.ms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = correlation_coefficient(bst, fast=fast)
    got = ta.correlation_matrix(s, bin_steps)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.all(np.isnan(got[5]))  # empty train: NaN row, as Elephant


@pytest.mark.parametrize("output", ["counts", "mean", "rate"])
@pytest.mark.parametrize("bin_steps", [1, 5])
def test_time_histogram_equals_elephant(output, bin_steps):
    s = _trains(4)
    dt = 0.5
    trains = to_neo(s, dt)
    h = es.time_histogram(trains, bin_size=bin_steps * dt * pq.ms, output=output)
    want = h.rescale(pq.Hz).magnitude.ravel() if output == "rate" else h.magnitude.ravel()
    np.testing.assert_allclose(ta.time_histogram(s, dt, bin_steps, output), want, rtol=1e-12)


def test_complexity_histogram_equals_elephant():
    s = _trains(5)[:, :9]  # without the always-firing neuron
    dt = 1.0
    trains = to_neo(s, dt)
    c = es.Complexity(trains, sampling_rate=1 / (dt * pq.ms), bin_size=dt * pq.ms,
                      binary=True, spread=0)
    want = np.asarray(c.complexity_histogram)
    got = ta.complexity_histogram(s)
    np.testing.assert_array_equal(got[: want.size], want)
    assert np.all(got[want.size:] == 0)
    np.testing.assert_allclose(
        ta.time_histogram(s, dt), c.time_histogram.magnitude.ravel(), rtol=0)
