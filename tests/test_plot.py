"""Plot functions: return Figures, draw into a given Axes, save small PNGs, reject bad input."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from tbnn import analysis as ta
from tbnn import plot


@pytest.fixture
def spikes():
    return np.random.default_rng(0).random((6, 8, 20)) < np.linspace(0.01, 0.5, 20)


def _png_ok(fig, tmp_path, name):
    path = plot.save_figure(fig, tmp_path / name)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) < 250_000
    return path


def test_every_plot_returns_a_figure_and_saves_a_small_png(spikes, tmp_path):
    backend = matplotlib.get_backend()
    dt = 1.0
    figs = {
        "raster": plot.raster(spikes, dt_ms=dt, sort_by_rate=True, title="t"),
        "raster_layers": plot.raster({"a": spikes, "b": spikes[:, :, :5]}),
        "raster_2d": plot.raster(spikes[0]),
        "psth": plot.psth(spikes, dt),
        "psth_layers": plot.psth({"a": spikes, "b": spikes[:, :, :3]}, dt),
        "rates": plot.rate_histogram(ta.rate_hz(spikes, dt)),
        "isi": plot.isi_histogram(ta.pooled_isi(spikes, dt), dt_ms=dt,
                                  null=ta.pooled_isi(ta.shuffle_bins(spikes), dt)),
        "isi_nodt": plot.isi_histogram(ta.pooled_isi(spikes, 0.5)),
        "cv": plot.cv_rate_scatter(ta.rate_per_step(spikes), ta.cv(spikes), dt_ms=dt),
        "cv_p": plot.cv_rate_scatter(ta.rate_per_step(spikes), ta.cv(spikes)),
        "corr": plot.correlation_histogram(ta.pairwise_correlations(spikes),
                                           null=ta.pairwise_correlations(ta.shuffle_bins(spikes))),
        "complexity": plot.complexity_plot(ta.complexity_distribution(spikes),
                                           ta.null_complexity(ta.rate_per_step(spikes))),
        "summary": plot.summary_panel([
            {"label": "CV", "network": 0.6, "null": 0.9, "low": 0.7, "high": 1.3},
            {"label": "rate", "network": 250.0, "null": 250.0, "low": 0.1, "high": 5,
             "units": "Hz"},
            {"label": "corr", "network": -0.01, "null": 0.0, "min_scale": 0.3},
            {"label": "undefined", "network": float("nan"), "null": None},
        ], title="summary"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        _png_ok(fig, tmp_path, f"{name}.png")
    assert matplotlib.get_backend() == backend  # no global backend switch


def test_plots_draw_into_a_given_axes(spikes):
    fig, axes = plot.new_figure(8, 3, nrows=1, ncols=3)
    assert plot.raster(spikes, ax=axes[0]) is fig
    assert plot.rate_histogram(ta.rate_hz(spikes, 1.0), ax=axes[1]) is fig
    assert plot.summary_panel([{"label": "x", "network": 1.0}], ax=axes[2]) is fig
    assert len(axes[0].images) == 1
    with pytest.raises(ValueError, match="ax must be a matplotlib Axes"):
        plot.psth(spikes, 1.0, ax="not an axes")


def test_empty_and_silent_inputs_render(tmp_path):
    silent = np.zeros((3, 4, 5), bool)
    figs = [
        plot.raster(silent),
        plot.psth(silent, 1.0),
        plot.rate_histogram(ta.rate_hz(silent, 1.0)),
        plot.isi_histogram(ta.pooled_isi(silent, 1.0), dt_ms=1.0),
        plot.cv_rate_scatter(ta.rate_per_step(silent), ta.cv(silent)),
        plot.correlation_histogram(ta.pairwise_correlations(silent)),
        plot.complexity_plot(ta.complexity_distribution(silent)),
    ]
    for i, fig in enumerate(figs):
        _png_ok(fig, tmp_path, f"s{i}.png")


def test_plot_input_validation(spikes, tmp_path):
    with pytest.raises(ValueError, match="boolean"):
        plot.raster(spikes.astype(float))
    with pytest.raises(ValueError, match="shape"):
        plot.raster(spikes[0, 0])
    with pytest.raises(ValueError, match="same samples and time steps"):
        plot.raster({"a": spikes, "b": spikes[:3]})
    with pytest.raises(ValueError, match="dt_ms"):
        plot.psth(spikes, 0)
    with pytest.raises(ValueError, match="rates_hz"):
        plot.rate_histogram([-1.0])
    with pytest.raises(ValueError, match="isis_ms must hold intervals > 0"):
        plot.isi_histogram([0.0, 1.0])
    with pytest.raises(ValueError, match="p and cv"):
        plot.cv_rate_scatter([0.1, 0.2], [0.9])
    with pytest.raises(ValueError, match="rows must be"):
        plot.summary_panel([])
    with pytest.raises(ValueError, match="rows must be mappings"):
        plot.summary_panel([{"network": 1.0}])
    fig = plot.psth(spikes, 1.0)
    with pytest.raises(ValueError, match=r"path must end in \.png"):
        plot.save_figure(fig, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        plot.save_figure(fig, tmp_path / "no" / "x.png")
