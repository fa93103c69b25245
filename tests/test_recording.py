"""Recordings in: NWB / NIX / table readers, measures equal to Elephant's and to the analytic
values of renewal processes, bad-file refusals, and the network-beside-recording comparison."""

from __future__ import annotations

import datetime
import json
import math
import warnings

import numpy as np
import pytest

neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")
es = pytest.importorskip("elephant.statistics")
stc = pytest.importorskip("elephant.spike_train_correlation")
from elephant.conversion import BinnedSpikeTrain  # noqa: E402
from elephant.spike_train_generation import (  # noqa: E402
    StationaryGammaProcess,
    StationaryPoissonProcess,
)

from tbnn.analysis.recording_measures import compare_with_recording, recording_measures  # noqa: E402
from tbnn.io.recording import read_recording  # noqa: E402  # noqa: E402

K = 3  # gamma order
RATE = 20.0  # Hz
N_GAMMA, N_POISSON = 8, 8
TRIALS, TRIAL_S = 10, 4.0
TOTAL = TRIALS * TRIAL_S
DT_MS = 5.0
R_MS = 5.0


def _trains():
    """One long train per unit (the stream), cut into trials below."""
    np.random.seed(1234)
    out = []
    for i in range(N_GAMMA + N_POISSON):
        if i < N_GAMMA:
            p = StationaryGammaProcess(RATE * pq.Hz, shape_factor=K, t_start=0 * pq.s,
                                       t_stop=TOTAL * pq.s)
        else:
            p = StationaryPoissonProcess(RATE * pq.Hz, t_start=0 * pq.s, t_stop=TOTAL * pq.s)
        st = p.generate_spiketrain().rescale("s")
        st.name = f"u{i:02d}"
        out.append(st)
    return out


def _block(trains, drop=None, empty=None):
    blk = neo.Block(name="rec", session_start_time=datetime.datetime(2025, 1, 1,
                                                                      tzinfo=datetime.timezone.utc))
    for k in range(TRIALS):
        seg = neo.Segment(name=f"trial{k}")
        for i, st in enumerate(trains):
            if drop is not None and (k, i) == drop:
                continue
            t = st.magnitude
            sel = t[(t >= k * TRIAL_S) & (t < (k + 1) * TRIAL_S)]
            if empty is not None and i == empty:
                sel = sel[:0]
            seg.spiketrains.append(neo.SpikeTrain(sel, units="s", t_start=k * TRIAL_S,
                                                  t_stop=(k + 1) * TRIAL_S, name=st.name))
        blk.segments.append(seg)
    return blk


def _write_nwb(path, blk):
    from neo.io import NWBIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        NWBIO(str(path), mode="w").write_all_blocks([blk])


def _write_nix(path, blk):
    from neo.io import NixIO

    with NixIO(str(path), mode="ow") as io:
        io.write_block(blk)


def _table(trains):
    rows = []
    for st in trains:
        for t in st.magnitude:
            k = int(t // TRIAL_S)
            rows.append((st.name, float(t), k, k * TRIAL_S, (k + 1) * TRIAL_S))
    return rows


def _write_csv(path, rows):
    with open(path, "w") as fh:
        fh.write("unit,time,trial,trial_start,trial_stop\n")
        for u, t, k, a, b in rows:
            fh.write(f"{u},{t!r},{k},{a!r},{b!r}\n")


def _write_npz(path, rows):
    u, t, k, a, b = zip(*rows)
    np.savez(path, unit=np.array(u), time=np.array(t), trial=np.array(k),
             trial_start=np.array(a), trial_stop=np.array(b))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    trains = _trains()
    blk = _block(trains)
    _write_nwb(d / "r.nwb", blk)
    _write_nix(d / "r.nix", blk)
    rows = _table(trains)
    _write_csv(d / "r.csv", rows)
    _write_npz(d / "r.npz", rows)
    return d, trains


@pytest.fixture(scope="module")
def measures(files):
    d, _ = files
    return recording_measures(read_recording(d / "r.npz"), DT_MS, bin_ms=10.0, R_ms=R_MS)


# ---------------------------------------------------------------------------------------
# readers
@pytest.mark.parametrize("name", ["r.nwb", "r.nix", "r.csv", "r.npz"])
def test_reader_round_trip(files, name):
    d, trains = files
    rec = read_recording(d / name)
    assert rec.units == tuple(st.name for st in trains)
    assert rec.n_trials == TRIALS
    np.testing.assert_allclose(rec.t_start, np.arange(TRIALS) * TRIAL_S)
    np.testing.assert_allclose(rec.durations, TRIAL_S)
    for st, t in zip(trains, rec.stream_times()):
        np.testing.assert_allclose(t, st.magnitude, rtol=0, atol=1e-12)
    assert rec.counts().sum() == sum(len(st) for st in trains)


@pytest.mark.parametrize("name", ["r.nwb", "r.nix", "r.csv"])
def test_measures_equal_across_formats(files, measures, name):
    d, _ = files
    m = recording_measures(read_recording(d / name), DT_MS, bin_ms=10.0, R_ms=R_MS)
    for key, e in measures.items():
        np.testing.assert_allclose(m[key]["values"], e["values"], rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=key)


# ---------------------------------------------------------------------------------------
# equal to Elephant on the generated trains (the stream), 1e-9
def test_equal_to_elephant(files, measures):
    _, trains = files
    m = measures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = [float(es.mean_firing_rate(st).rescale("Hz")) for st in trains]
        isis = [es.isi(st).rescale("ms").magnitude for st in trains]
        cv = [float(es.cv(v)) for v in isis]
        cv2 = [float(es.cv2(v, with_nan=True)) for v in isis]
        lv = [float(es.lv(v, with_nan=True)) for v in isis]
        lvr = [float(es.lvr(v * pq.ms, R=R_MS * pq.ms, with_nan=True)) for v in isis]
        fano = [float(es.fanofactor([st.time_slice(k * TRIAL_S * pq.s, (k + 1) * TRIAL_S * pq.s)
                                     for k in range(TRIALS)])) for st in trains]
        bst = BinnedSpikeTrain(trains, bin_size=10 * pq.ms)
        corr = stc.correlation_coefficient(bst)
        active = BinnedSpikeTrain(trains, bin_size=DT_MS * pq.ms).to_bool_array().mean(0)
    iu = np.triu_indices(len(trains), k=1)
    expect = {"rate_hz": rate, "isi_ms": np.concatenate(isis), "cv": cv, "cv2": cv2, "lv": lv,
              "lvr": lvr, "fano_stream": fano, "fano_trial": fano, "correlation": corr[iu],
              "fraction_active": active}
    for key, v in expect.items():
        np.testing.assert_allclose(m[key]["values"], v, rtol=1e-9, atol=1e-9, err_msg=key)


def test_noise_correlation_and_sparseness_definitions(measures, files):
    d, _ = files
    rec = read_recording(d / "r.npz")
    c = rec.counts().astype(float)  # [trials, units], one condition
    r = np.corrcoef(c.T)
    np.testing.assert_allclose(measures["noise_correlation"]["values"],
                               r[np.triu_indices(c.shape[1], k=1)], rtol=1e-9, atol=1e-12)
    resp = c / TRIAL_S
    a_life = resp.mean(0) ** 2 / (resp**2).mean(0)
    np.testing.assert_allclose(measures["lifetime_sparseness"]["values"],
                               (1 - a_life) / (1 - 1 / TRIALS), rtol=1e-9)
    a_pop = resp.mean(1) ** 2 / (resp**2).mean(1)
    np.testing.assert_allclose(measures["population_sparseness"]["values"],
                               (1 - a_pop) / (1 - 1 / c.shape[1]), rtol=1e-9)


# ---------------------------------------------------------------------------------------
# analytic values of the renewal processes, within sampling error (4 standard errors)
def _gamma_cv2(k):
    return math.gamma(2 * k) / (k * math.gamma(k) ** 2 * 4 ** (k - 1))


def test_gamma_cv2_closed_form_by_quadrature():
    from scipy import integrate, stats

    for k in (1, 2, 3, 5):
        num, _ = integrate.quad(lambda b, k=k: 2 * abs(2 * b - 1) * stats.beta.pdf(b, k, k), 0, 1,
                                points=[0.5])
        assert math.isclose(num, _gamma_cv2(k), rel_tol=1e-8)


def _check(values, analytic, key):
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert abs(v.mean() - analytic) < 4 * se + 1e-12, (key, v.mean(), analytic, se)


def test_analytic_values(measures):
    m = measures
    lam = RATE / 1000.0  # per ms
    g, p = slice(0, N_GAMMA), slice(N_GAMMA, None)
    analytic = {
        "cv": (1 / math.sqrt(K), 1.0),
        "cv2": (_gamma_cv2(K), 1.0),
        "lv": (3 / (2 * K + 1), 1.0),
        # gamma: a/(a+b) ~ Beta(k,k) independent of a+b ~ Gamma(2k, k lam), E[1/(a+b)] = k lam/(2k-1)
        "lvr": (3 / (2 * K + 1) * (1 + 4 * R_MS * K * lam / (2 * K - 1)), 1 + 4 * R_MS * lam),
        # counts of a renewal process in long windows: Fano -> CV^2
        "fano_stream": (1 / K, 1.0),
        "rate_hz": (RATE, RATE),
    }
    for key, (a_gamma, a_poisson) in analytic.items():
        vals = np.asarray(m[key]["values"])
        _check(vals[g], a_gamma, key + " gamma")
        _check(vals[p], a_poisson, key + " poisson")
    # independent units: correlations 0; fraction active per bin: 1 - exp(-rate dt)
    _check(m["correlation"]["values"], 0.0, "correlation")
    _check(m["noise_correlation"]["values"], 0.0, "noise_correlation")
    assert abs(m["fraction_active"]["value"] - m["fraction_active"]["null"]["value"]) < 0.01
    assert m["cv"]["null"]["value"] == 1.0


def test_measures_can_fail(files):
    """The analytic checks are sharp enough to see a wrong gamma order."""
    _, trains = files
    with pytest.raises(AssertionError):
        _check([float(es.cv(es.isi(st).magnitude)) for st in trains[:N_GAMMA]],
               1 / math.sqrt(K + 1), "cv wrong order")


# ---------------------------------------------------------------------------------------
# bad files: one sentence naming the file, ValueError, nothing written
def _refuse(path, match):
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(ValueError, match=match) as exc:
        read_recording(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_bad_files(tmp_path, files):
    _, trains = files
    (tmp_path / "junk.nwb").write_text("not an nwb file")
    _refuse(tmp_path / "junk.nwb", "not a readable NWB file")
    (tmp_path / "junk.nix").write_bytes(b"\x00\x01garbage")
    _refuse(tmp_path / "junk.nix", "not a readable NIX file")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04broken")
    _refuse(tmp_path / "junk.npz", "not a readable .npz")
    (tmp_path / "r.txt").write_text("unit,time\n")
    _refuse(tmp_path / "r.txt", "suffix")
    _refuse(tmp_path / "missing.csv", "does not exist")
    (tmp_path / "nounit.csv").write_text("neuron,time\na,0.1\n")
    _refuse(tmp_path / "nounit.csv", "no 'unit' column")
    (tmp_path / "empty.csv").write_text("unit,time\n")
    _refuse(tmp_path / "empty.csv", "no spike trains")
    (tmp_path / "nan.csv").write_text("unit,time\na,abc\n")
    _refuse(tmp_path / "nan.csv", "must hold numbers")
    (tmp_path / "outside.csv").write_text("unit,time,trial_start,trial_stop\na,5,0,1\n")
    _refuse(tmp_path / "outside.csv", "outside trial")
    # NWB without spike trains; NIX with a unit missing from a trial; NIX with an empty unit
    nospk = neo.Block(name="b", session_start_time=datetime.datetime(2025, 1, 1,
                                                                      tzinfo=datetime.timezone.utc))
    seg = neo.Segment(name="s")
    seg.epochs.append(neo.Epoch(times=[0.0] * pq.s, durations=[1.0] * pq.s, labels=["x"]))
    nospk.segments.append(seg)
    _write_nwb(tmp_path / "nospk.nwb", nospk)
    _refuse(tmp_path / "nospk.nwb", "holds no spike trains")
    _write_nix(tmp_path / "missing_unit.nix", _block(trains[:3], drop=(2, 1)))
    _refuse(tmp_path / "missing_unit.nix", "unit 'u01' is missing from trial 2")
    _write_nwb(tmp_path / "empty_unit.nwb", _block(trains[:3], empty=2))
    _refuse(tmp_path / "empty_unit.nwb", "unit 'u02' has no spikes")


def test_table_without_trials(tmp_path):
    (tmp_path / "r.csv").write_text("unit,time\nA,0.5\nB,0.25\nA,1.5\nA,2.0\n")
    rec = read_recording(tmp_path / "r.csv")
    assert rec.units == ("A", "B") and rec.n_trials == 1
    assert rec.t_start.tolist() == [0.0] and rec.t_stop.tolist() == [2.0]
    assert rec.counts().tolist() == [[3, 1]]


# ---------------------------------------------------------------------------------------
# network beside recording
def test_compare_with_recording(files):
    d, _ = files
    rec = read_recording(d / "r.npz")
    rng = np.random.default_rng(0)
    spikes = rng.random((60, 4, 12)) < 0.1
    labels = np.repeat(np.arange(3), 20)
    out = compare_with_recording(spikes, rec, DT_MS, labels=labels)
    json.dumps(out)  # JSON-able
    ms = out["measures"]
    for key in ("rate_hz", "cv", "cv2", "lv", "lvr", "fano_stream", "fano_trial", "correlation",
                "noise_correlation", "lifetime_sparseness", "population_sparseness",
                "fraction_active"):
        assert key in ms, key
        e = ms[key]
        assert set(e) >= {"network", "recording", "null", "band", "verdict"}
    # the network value is its own analysis's, the recording's is recording_measures'
    from tbnn.analysis.report import analyze_spikes

    net = analyze_spikes(spikes, DT_MS, labels)
    assert ms["rate_hz"]["network"]["value"] == pytest.approx(net["measures"]["rate_hz"]["value"])
    rm = recording_measures(rec, DT_MS, window_ms=4 * DT_MS, bin_ms=DT_MS)
    assert ms["cv"]["recording"]["value"] == pytest.approx(rm["cv"]["value"])
    assert ms["fano_stream"]["recording"]["value"] == pytest.approx(rm["fano_stream"]["value"])
    assert ms["rate_hz"]["band"]["low"] == 0.1
    # the same from the analysis dict; a different dt is refused
    out2 = compare_with_recording(net, rec, DT_MS)
    assert out2["measures"]["cv"] == ms["cv"]
    with pytest.raises(ValueError, match="dt_ms"):
        compare_with_recording(net, rec, 2 * DT_MS)
    with pytest.raises(ValueError, match="network"):
        compare_with_recording({"x": 1}, rec, DT_MS)


def test_comparison_figure(files, tmp_path):
    from tbnn.analysis.recording_figure import plot_recording_comparison

    d, _ = files
    rec = read_recording(d / "r.npz")
    spikes = np.random.default_rng(0).random((40, 4, 10)) < 0.1
    out = compare_with_recording(spikes, rec, DT_MS, labels=np.repeat(np.arange(2), 20))
    png = tmp_path / "cmp.png"
    plot_recording_comparison(out, png, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="comparison"):
        plot_recording_comparison({"measures": {}}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_conditions_group_the_trial_view(tmp_path):
    rows = ["unit,time,trial,trial_start,trial_stop,condition"]
    rng = np.random.default_rng(3)
    counts = {}
    for k in range(8):
        c = k % 2
        for u in ("a", "b", "c"):
            n = int(rng.integers(1, 9)) + (6 if c and u == "a" else 0)
            counts[(k, u)] = n
            for t in np.sort(rng.uniform(k, k + 1, n)):
                rows.append(f"{u},{float(t)!r},{k},{k},{k + 1},{c}")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    rec = read_recording(tmp_path / "c.csv")
    assert rec.conditions.tolist() == [0, 1] * 4
    m = recording_measures(rec, window_ms=500.0)
    for i, u in enumerate(("a", "b", "c")):
        per = []
        for c in (0, 1):
            n = np.array([counts[(k, u)] for k in range(8) if k % 2 == c], dtype=float)
            per.append(n.var() / n.mean())
        assert m["fano_trial"]["values"][i] == pytest.approx(np.mean(per), rel=1e-12)
    (tmp_path / "bad.csv").write_text("unit,time,trial,condition\na,0.1,0,0\na,0.2,0,1\n")
    with pytest.raises(ValueError, match="one integer condition"):
        read_recording(tmp_path / "bad.csv")
