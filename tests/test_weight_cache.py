"""A layer's weight codes kept between ``simulate`` calls: reused only while nothing they depend on changed.

Each test changes one thing a layer's codes (or the engine's terms derived from them) depend
on — the weight in place, a single zero's sign, the bias, ``lam``, a ``load_state_dict``, a
convolution's stride — and checks that the next simulation equals one made from scratch
(the kept codes dropped), not the one before the change.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tbnn
from tbnn.engine import integer as engine


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(tbnn.TemporalBinary(4, block=16, grid="minmax"), tbnn.TBLinear(12, 32),
                         nn.BatchNorm1d(32), tbnn.TemporalBinary(4, block=16), tbnn.TBLinear(32, 5)).eval()


def _x(n: int = 40) -> torch.Tensor:
    return torch.randn(n, 12, generator=torch.Generator().manual_seed(1))


def _fresh_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    engine.clear_weight_codes()
    return tbnn.simulate(model, x).logits


def test_codes_are_kept_between_calls_and_give_the_same_simulation():
    model, x = _net(), _x()
    first = tbnn.simulate(model, x)
    kept = engine.cached_weight_codes(model[1])
    second = tbnn.simulate(model, x)
    assert engine.cached_weight_codes(model[1]) is kept  # the second call made no new codes
    assert torch.equal(first.logits, second.logits) and second.summary["forward_agreement"] == 1.0


def _edit_weight(model):
    with torch.no_grad():
        model[1].weight[:, :6] *= -1.0


def _edit_bias(model):
    with torch.no_grad():
        model[1].bias.add_(3.0)


def _edit_lam(model):
    model[1].lam = 0.5


def _load_other_weights(model):
    model.load_state_dict(_net(seed=7).state_dict())


@pytest.mark.parametrize("edit", [_edit_weight, _edit_bias, _edit_lam, _load_other_weights])
def test_a_change_is_seen_by_the_next_simulation(edit):
    model, x = _net(), _x()
    before = tbnn.simulate(model, x).logits
    kept = engine.cached_weight_codes(model[1])
    edit(model)
    after = tbnn.simulate(model, x)
    assert engine.cached_weight_codes(model[1]) is not kept
    assert not torch.equal(after.logits, before)  # the change matters to the output...
    assert torch.equal(after.logits, _fresh_logits(model, x))  # ...and the new output is the fresh one
    assert after.summary["forward_agreement"] == 1.0


def test_a_zero_changing_sign_is_a_different_weight():
    layer = tbnn.TBLinear(8, 3)
    with torch.no_grad():
        layer.weight[0, 0] = 0.0
    kept = engine.cached_weight_codes(layer)
    with torch.no_grad():
        layer.weight[0, 0] = -0.0
    assert engine.cached_weight_codes(layer) is not kept


def test_a_convolution_with_another_stride_gets_new_terms():
    torch.manual_seed(0)
    conv = tbnn.TBConv1d(2, 3, 3).eval()
    enc = tbnn.TemporalBinary(4, block=4, grid="minmax").eval()
    with torch.no_grad():
        spikes = enc(torch.randn(6, 2, 12))
        before = conv(spikes)  # keeps the codes and the offsets' response at stride 1
        kept = engine.cached_weight_codes(conv)
        conv.stride = (2,)
        after = conv(spikes)
    assert engine.cached_weight_codes(conv) is not kept
    assert after.shape[-1] == 5 != before.shape[-1]
    assert torch.equal(after, engine.exact(conv, spikes, engine.weight_codes(conv)))


def test_a_layer_without_a_settings_key_is_quantized_afresh():
    class Plain(tbnn.TBLinear):
        weight_codes_key = None

    layer = Plain(8, 3)
    assert engine.cached_weight_codes(layer) is not engine.cached_weight_codes(layer)


def test_the_exact_evaluation_does_not_fake_quantize_the_float_weight(monkeypatch):
    model, x = _net(), _x()
    with torch.no_grad():
        code = model[0](x)

    def refuse():
        raise AssertionError("quantized_weight called on the integer-code path")

    monkeypatch.setattr(model[1], "quantized_weight", refuse)
    with torch.no_grad():
        assert model[1](code).shape == (40, 32)  # eval mode: the exact path
