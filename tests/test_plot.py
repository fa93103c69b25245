"""Plot functions: return Figures, draw into a given Axes, save small PNGs, reject bad input;
every figure kind has labelled axes and no overlapping text; one neuron-subsample rule."""

import matplotlib
import numpy as np
import pytest
from figcheck import check_figure, overlapping_texts
from matplotlib.figure import Figure

from tbnn import analysis as ta
from tbnn.viz import plot


@pytest.fixture
def spikes():
    return np.random.default_rng(0).random((6, 8, 20)) < np.linspace(0.01, 0.5, 20)


def _png_ok(fig, tmp_path, name):
    path = plot.save_figure(fig, tmp_path / name)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) < 250_000
    return path


def _panels(spikes, recording=False):
    cv = ta.cv(spikes)
    return [
        {"label": "firing rate", "units": "Hz", "network": ta.rate_hz(spikes, 1.0),
         "null": ta.rate_hz(ta.shuffle_bins(spikes), 1.0), "low": 0.1, "high": 5.0,
         "citation": "Buzsáki & Mizuseki 2014", "log": True, "statistic": "median",
         "recording": np.array([0.5, 2.0, 3.0]) if recording else None},
        {"label": "CV of ISIs", "network": cv, "null": ta.null_cv(ta.rate_per_step(spikes)),
         "low": 0.7, "high": 1.3, "citation": "Softky & Koch 1993"},
        {"label": "pairwise correlation of binned trains", "network":
            ta.pairwise_correlations(spikes)},
        {"label": "Fano factor", "network": [0.0, 0.5, 2.0, 50.0], "log": True},
    ]


def test_every_plot_returns_a_figure_and_saves_a_small_png(spikes, tmp_path):
    backend = matplotlib.get_backend()
    dt = 1.0
    figs = {
        "raster": plot.raster(spikes, dt_ms=dt, sort_by_rate=True, title="t"),
        "raster_layers": plot.raster({"a": spikes, "b": spikes[:, :, :5]}),
        "raster_2d": plot.raster(spikes[0]),
        "psth": plot.psth(ta.psth(spikes, dt), dt),
        "psth_layers": plot.psth({"a": ta.psth(spikes, dt), "b": ta.psth(spikes[:, :, :3], dt)},
                                 dt),
        "rates": plot.rate_histogram(ta.rate_hz(spikes, dt)),
        "rates_fit": plot.rate_histogram(ta.rate_hz(spikes, dt),
                                         fit_pdf=ta.lognormal_fit(ta.rate_hz(spikes, dt)).pdf,
                                         caption="log-normal accepted: KS p = 0.5"),
        "isi": plot.isi_histogram(ta.pooled_isi(spikes, dt), dt_ms=dt,
                                  null=ta.pooled_isi(ta.shuffle_bins(spikes), dt)),
        "isi_nodt": plot.isi_histogram(ta.pooled_isi(spikes, 0.5)),
        "cv": plot.cv_rate_scatter(ta.rate_per_step(spikes), ta.cv(spikes), dt_ms=dt),
        "cv_p": plot.cv_rate_scatter(ta.rate_per_step(spikes), ta.cv(spikes)),
        "corr": plot.correlation_histogram(ta.pairwise_correlations(spikes),
                                           null=ta.pairwise_correlations(ta.shuffle_bins(spikes))),
        "complexity": plot.complexity_plot(ta.complexity_distribution(spikes),
                                           ta.null_complexity(ta.rate_per_step(spikes))),
        "panels": plot.measure_panels(_panels(spikes), title="model tbn · layer h · run r"),
        "panels_rec": plot.measure_panels(_panels(spikes, recording=True)),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        check_figure(fig)
        _png_ok(fig, tmp_path, f"{name}.png")
    assert matplotlib.get_backend() == backend  # no global backend switch


def test_plots_draw_into_a_given_axes(spikes):
    fig, axes = plot.new_figure(8, 3, nrows=1, ncols=3)
    assert plot.raster(spikes, ax=axes[0]) is fig
    assert plot.rate_histogram(ta.rate_hz(spikes, 1.0), ax=axes[1]) is fig
    assert plot.isi_histogram(ta.pooled_isi(spikes, 1.0), ax=axes[2]) is fig
    with pytest.raises(ValueError, match="ax must be a matplotlib Axes"):
        plot.psth(ta.psth(spikes, 1.0), 1.0, ax="not an axes")
    with pytest.raises(ValueError, match="ax can hold one layer"):
        plot.raster({"a": spikes, "b": spikes}, ax=axes[0])


def test_empty_and_silent_inputs_render(tmp_path):
    silent = np.zeros((3, 4, 5), dtype=bool)
    for i, fig in enumerate([
        plot.raster(silent),
        plot.psth(ta.psth(silent, 1.0), 1.0),
        plot.rate_histogram(ta.rate_hz(silent, 1.0)),
        plot.isi_histogram(ta.pooled_isi(silent, 1.0), dt_ms=1.0),
        plot.cv_rate_scatter(ta.rate_per_step(silent), ta.cv(silent)),
        plot.correlation_histogram(ta.pairwise_correlations(silent)),
        plot.complexity_plot(ta.complexity_distribution(silent)),
        plot.measure_panels([{"label": "rate", "units": "Hz", "network": np.zeros(5),
                              "log": True}]),
    ]):
        check_figure(fig)
        _png_ok(fig, tmp_path, f"s{i}.png")


def test_zeros_and_outliers_stay_visible():
    # a CV = 0 neuron is drawn (not hidden on the axis) and counted
    fig = plot.cv_rate_scatter([0.1, 0.2, 0.3], [0.0, 0.9, 1.1])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] < 0
    assert any("CV = 0 (1)" in t.get_text() for t in ax.get_legend().get_texts())
    # silent neurons get their own bar, counted in the legend
    fig = plot.rate_histogram([0.0, 0.0, 1.0, 3.0, 100.0])
    assert any("2 silent" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    # values <= 0 on a log panel are counted in the axis label
    fig = plot.measure_panels([{"label": "Fano", "network": [0.0, 0.0, 1.0, 300.0],
                                "log": True}])
    assert "2 values ≤ 0" in fig.axes[0].get_xlabel()
    # ISIs on a log axis
    fig = plot.isi_histogram([1.0, 2.0, 1200.0], dt_ms=1.0)
    assert fig.axes[0].get_xscale() == "log"


def test_one_subsample_rule_for_every_raster():
    counts = np.arange(10_000) % 7
    even = plot.subsample_neurons(counts, 200)
    assert even.size == 200 and even[0] == 0 and even[-1] == 9_999
    assert np.all(np.diff(even) > 0) and np.ptp(np.diff(even)) <= 1
    active = plot.subsample_neurons(counts, 50, by="active")
    assert np.all(counts[active] == 6)
    assert plot.subsample_neurons(counts[:30], 200).tolist() == list(range(30))
    # a big layer: the default shows RASTER_NEURONS rows, the title says which
    big = np.random.default_rng(1).random((2, 5, 10_000)) < 0.05
    small = np.random.default_rng(2).random((2, 5, 256)) < 0.3
    fig = plot.raster({"input": small, "hidden": big}, dt_ms=1.0)
    check_figure(fig)
    title = fig._suptitle.get_text().replace("\n", " ")
    k = plot.RASTER_NEURONS
    assert f"hidden: {k} of 10000 neurons (evenly spaced)" in title
    assert f"input: {k} of 256 neurons (evenly spaced)" in title
    assert fig.axes[1].get_images()[0].get_array().shape == (k, 10)
    fig = plot.raster(big, neurons=30, select="active")
    assert "30 of 10000 neurons (most active)" in fig.axes[0].get_title().replace("\n", " ")
    # the neuron axis shows the neurons' own indices
    assert fig.axes[0].get_yticklabels()[0].get_text() != ""
    with pytest.raises(ValueError, match="neurons must be an integer >= 1"):
        plot.raster(big, neurons=0)
    with pytest.raises(ValueError, match="by must be 'even' or 'active'"):
        plot.subsample_neurons(counts, 5, by="random")


def test_overlap_checker_can_fail():
    fig, ax = plot.new_figure(2, 2)
    ax.text(0.5, 0.5, "one long label")
    ax.text(0.5, 0.5, "another long label")
    assert overlapping_texts(fig)


def test_plot_input_validation(spikes, tmp_path):
    with pytest.raises(ValueError, match="boolean"):
        plot.raster(spikes.astype(float))
    with pytest.raises(ValueError, match="shape"):
        plot.raster(spikes[0, 0])
    with pytest.raises(ValueError, match="same samples"):
        plot.raster({"a": spikes, "b": spikes[:3]})
    with pytest.raises(ValueError, match="dt_ms"):
        plot.psth(ta.psth(spikes, 1.0), 0)
    with pytest.raises(ValueError, match="rates must be a pair"):
        plot.psth(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="rates_hz"):
        plot.rate_histogram([-1.0])
    with pytest.raises(ValueError, match="isis_ms must hold intervals > 0"):
        plot.isi_histogram([0.0, 1.0])
    with pytest.raises(ValueError, match="p and cv"):
        plot.cv_rate_scatter([0.1, 0.2], [0.9])
    with pytest.raises(ValueError, match="panels must be"):
        plot.measure_panels([])
    with pytest.raises(ValueError, match="panels must be mappings"):
        plot.measure_panels([{"network": [1.0]}])
    fig = plot.psth(ta.psth(spikes, 1.0), 1.0)
    with pytest.raises(ValueError, match="must end in .png, .pdf or .svg"):
        plot.save_figure(fig, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        plot.save_figure(fig, tmp_path / "no" / "x.png")
    p = plot.save_figure(fig, tmp_path / "v.png", formats=("svg", "pdf"))
    assert (tmp_path / "v.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "v.pdf").read_bytes()[:4] == b"%PDF" and p.exists()
