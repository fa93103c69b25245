"""A neuron's spike code as one validated record: ``TemporalBinary(code=CodeSpec(...))`` is
the same neuron as the arguments given one by one, and a bad field is named."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tbnn
from tbnn.core.codespec import NEURON_GRIDS, CodeSpec
from tbnn.core.coding import SCHEMES
from tbnn.nn.neurons import TemporalBinary


@pytest.mark.parametrize("kwargs", [
    dict(timesteps=4),
    dict(timesteps=3, grid="minmax", block=8, lam=0.1),
    dict(timesteps=5, scheme="sigma_delta", grid="meanstd", target="relu", method="ste"),
    dict(timesteps=2, grid="running", block=None),
])
def test_code_spec_and_arguments_make_the_same_neuron(kwargs):
    a = TemporalBinary(code=CodeSpec(**kwargs))
    b = TemporalBinary(**kwargs)
    assert a.code == b.code and repr(a) == repr(b)
    for field in dataclasses.fields(CodeSpec):
        assert getattr(a, field.name) == getattr(b, field.name)
    x = torch.randn(6, 16)
    torch.manual_seed(0)
    ca = a(x)
    torch.manual_seed(0)
    cb = b(x)
    assert torch.equal(ca.q, cb.q) and torch.equal(ca.decode(), cb.decode())


def test_code_spec_is_frozen_and_resolves_its_target():
    spec = CodeSpec(4)
    assert spec.target == "relu" and CodeSpec(4, grid="minmax").target == "x"
    assert CodeSpec(4, grid="minmax", target="relu").target == "relu"
    assert spec.kwargs() == {"timesteps": 4, "scheme": "binary", "lam": 0.01, "block": 128, "grid": "rectify",
                             "target": "relu", "method": "dat"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.timesteps = 8
    assert set(NEURON_GRIDS) == {"minmax", "meanstd", "rectify", "running"}
    assert tbnn.CodeSpec is CodeSpec and "CodeSpec" in tbnn.__all__


@pytest.mark.parametrize("kwargs,msg", [
    (dict(timesteps=0), "timesteps must be an integer >= 1"),
    (dict(timesteps=25), "timesteps must be <= 24 for the binary code"),
    (dict(timesteps=2.0), "timesteps must be an integer"),
    (dict(timesteps=2, scheme="morse"), "scheme must be one of " + ", ".join(SCHEMES)),
    (dict(timesteps=2, lam=-1), "lam must be a finite number >= 0"),
    (dict(timesteps=2, block=0), "block must be a positive integer or None"),
    (dict(timesteps=2, grid="unit"), "grid must be one of minmax, meanstd, rectify, running"),
    (dict(timesteps=2, target="y"), "target must be one of x, relu"),
    (dict(timesteps=2, method="sgd"), "method must be one of dat, ste, ste_clip"),
])
def test_code_spec_errors_name_the_field(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        CodeSpec(**kwargs)
    with pytest.raises(ValueError, match=msg):
        TemporalBinary(**kwargs)  # the arguments one by one go through the same checks


def test_code_given_twice_or_not_at_all_is_refused():
    with pytest.raises(ValueError, match="code already holds timesteps, grid; pass the code either"):
        TemporalBinary(4, grid="minmax", code=CodeSpec(4))
    with pytest.raises(ValueError, match="timesteps must be given"):
        TemporalBinary()
    with pytest.raises(ValueError, match="code must be a tbnn.core.codespec.CodeSpec; got dict"):
        TemporalBinary(code={"timesteps": 4})
    n = TemporalBinary(code=CodeSpec(4, block=8), readout="running", features=16)  # the neuron's own options stay
    assert n.readout == "running" and n.running_gain.shape == (2,)
