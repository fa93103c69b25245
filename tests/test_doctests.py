"""The ``>>>`` examples in the docstrings of the core modules run and give what they show."""

import doctest
import importlib

import pytest

MODULES = ["tbnn", "tbnn.firing", "tbnn.codes", "tbnn.codes.binary", "tbnn.codes.thermometer",
           "tbnn.codes.latency", "tbnn.codes.rate", "tbnn.codes.sigma_delta", "tbnn.coding", "tbnn.engine",
           "tbnn.neurons", "tbnn.layers", "tbnn.sim", "tbnn.train", "tbnn.userdata", "tbnn.checkpoint", "tbnn.cache",
           "tbnn.machine", "tbnn.kernels.packed", "tbnn.kernels.build"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples failed in {name}"
    assert res.attempted > 0, f"{name} has no example"
