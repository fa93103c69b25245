"""The one validation module (:mod:`tbnn.core.validate`) and the one function behind each
former twin: every check takes NumPy arrays and torch tensors alike, names its argument, and
the old names still work (as the same object, or warning and forwarding)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import warnings

import numpy as np
import pytest
import torch

from tbnn.analysis import correlation, rates, variability
from tbnn.core.deprecation import deprecated, deprecated_attributes, renamed_keyword
from tbnn.core.validate import check_dt, check_labels, json_ready
from tbnn.runtime.threads import add_threads_option, set_threads

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_common():
    sys.path.insert(0, str(ROOT / "simulations"))
    try:
        spec = importlib.util.spec_from_file_location("common_under_test", ROOT / "simulations" / "common.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "simulations"))


@pytest.mark.parametrize("value,ok", [(2, 2.0), (np.float32(0.5), 0.5), (np.array([1.5]), 1.5),
                                      (torch.tensor(3.0), 3.0), (0, None), (-1, None), (float("nan"), None),
                                      (True, None), ("2", None), (torch.tensor([1.0, 2.0]), None)])
def test_check_dt(value, ok):
    if ok is None:
        with pytest.raises(ValueError, match="bin_ms must be a finite number of milliseconds > 0; got"):
            check_dt(value, "bin_ms")
    else:
        assert check_dt(value, "bin_ms") == ok


def test_check_dt_is_the_archive_and_analysis_check():
    from tbnn.analysis.rates import rate_hz
    from tbnn.io import spikes

    assert spikes.check_dt is check_dt
    with pytest.raises(ValueError, match="dt_ms must be a finite number of milliseconds > 0"):
        rate_hz(np.ones((3, 2), bool), torch.tensor(0.0))
    with pytest.raises(ValueError, match="dt_ms must be a finite number of milliseconds > 0"):
        spikes.save_spikes("never-written.npz", {"h": np.zeros((2, 3, 4), bool)}, dt_ms=np.float64("inf"))


def test_check_labels_tensors_and_arrays():
    for bad, dtype in ((torch.zeros(3), "torch.float32"), (torch.ones(3, dtype=torch.bool), "torch.bool"),
                       (torch.zeros(3, dtype=torch.bfloat16), "torch.bfloat16"), (np.zeros(3), "float64")):
        with pytest.raises(ValueError, match=f"y must be a 1-D integer array .*got dtype {dtype} and shape"):
            check_labels(bad, 3, "y")
    with pytest.raises(ValueError, match=r"y must be a 1-D integer array .*shape \(3, 1\)"):
        check_labels(torch.zeros(3, 1, dtype=torch.long), None, "y")
    assert check_labels(np.array([2, 0], np.uint8), 2).dtype == np.int64
    assert check_labels(torch.tensor([2, 0], dtype=torch.int16), 2).dtype == torch.int64


def test_old_spike_checks_warn_and_forward():
    from tbnn.io import spikes
    from tbnn.io.spikes import checks

    with pytest.warns(DeprecationWarning, match="tbnn.core.validate.check_int"):
        assert spikes.check_positive_int(np.int64(3), "bins") == 3
    with pytest.warns(DeprecationWarning, match="tbnn.core.validate.check_labels"):
        assert spikes.check_labels(torch.tensor([-1, 2]), 2).tolist() == [-1, 2]  # any integers, as before
    with pytest.warns(DeprecationWarning, match="tbnn.core.validate.check_labels"):
        assert checks.check_int_vector([3, -1], "predictions").dtype == np.int64
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="bins must be an integer >= 2"):
        spikes.check_positive_int(1, "bins", minimum=2)


def test_json_cleaners_are_json_ready():
    from tbnn.io.files import json_safe

    common = _load_common()
    assert json_safe is json_ready and common.clean is json_ready
    obj = {"a": (np.float32(1.5), torch.tensor([1, 2])), 2: float("nan")}
    assert json_ready(obj) == {"a": [1.5, [1, 2]], "2": None}
    json.dumps(json_ready(obj), allow_nan=False)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_binned_counts_is_the_one_counts_function(as_tensor):
    rng = np.random.default_rng(0)
    s = rng.random((3, 5, 4)) < 0.4  # [samples, T, neurons]: stream of 15 steps
    x = torch.from_numpy(s) if as_tensor else s
    c = rates.binned_counts(x, 4)
    want = s.reshape(15, 4)[:12].reshape(3, 4, 4).sum(axis=1)
    np.testing.assert_array_equal(c, want)
    assert c.dtype == np.int64
    np.testing.assert_array_equal(variability.window_counts(x, 4), c)
    np.testing.assert_array_equal(rates.time_histogram(x, 1.0, 4), c.sum(axis=1))
    assert correlation.binned_counts is rates.binned_counts
    with pytest.raises(ValueError, match="window_steps must leave at least 1 whole bin in the 15-step train; got 16"):
        variability.window_counts(x, 16)
    with pytest.raises(ValueError, match="bin_steps must leave at least 2 whole bins"):
        correlation.correlation_matrix(x, bin_steps=8)
    with pytest.raises(ValueError, match="window_steps must be an integer >= 1"):
        variability.window_counts(x, 0)


def test_threads_option_checks_and_sets():
    p = argparse.ArgumentParser(prog="bench")
    add_threads_option(p)
    before = torch.get_num_threads()
    try:
        assert set_threads(p, p.parse_args(["--threads", "1"]).threads) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as err:
        set_threads(p, p.parse_args(["--threads", "0"]).threads)
    assert err.value.code == 2


def test_deprecation_helpers():
    @deprecated("old_f", "new_f")
    def old_f(x):
        return x + 1

    with pytest.warns(DeprecationWarning, match="old_f is deprecated; use new_f instead"):
        assert old_f(1) == 2
    getattr_ = deprecated_attributes("pkg.mod", {"OLD": ("pkg.mod.NEW", lambda: 5)})
    with pytest.warns(DeprecationWarning, match="pkg.mod.OLD is deprecated; use pkg.mod.NEW"):
        assert getattr_("OLD") == 5
    with pytest.raises(AttributeError, match="no attribute 'OTHER'"):
        getattr_("OTHER")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_keyword("f", "mode", "schedule", None, "folded", "step") == "folded"
    with pytest.warns(DeprecationWarning, match=r"f\(mode=...\) is deprecated; use f\(schedule=...\)"):
        assert renamed_keyword("f", "mode", "schedule", "folded", "step", "step") == "folded"
    with pytest.warns(DeprecationWarning):
        assert renamed_keyword("f", "mode", "schedule", "folded", "folded", "step") == "folded"
    with pytest.raises(TypeError, match="both schedule= and its deprecated spelling mode="):
        renamed_keyword("f", "mode", "schedule", "folded", "step", "exact")
    with pytest.raises(ValueError, match="schedule must be one of step, folded; got 'x'"):
        renamed_keyword("f", "mode", "schedule", None, "x", "step", ("step", "folded"))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="mode must be one of step, folded"):
        renamed_keyword("f", "mode", "schedule", "x", "step", "step", ("step", "folded"))
