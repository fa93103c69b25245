"""Tests for tbnn.nn.models: config round trip, the four model kinds, execution modes, recording."""

from __future__ import annotations

import json

import pytest
import torch

from tbnn.core.coding import SpikeCode
from tbnn.nn.models import ARCHS, MODEL_KINDS, LIFNet, ModelConfig, TBNet, build_model

SHAPES = [("mlp", None, 64), ("cnn", (8, 8), 64), ("cnn", None, 40)]


def _cfg(**kw):
    base = dict(hidden=24, channels=4, layers=2, timesteps=3)
    base.update(kw)
    return ModelConfig(**base)


def test_config_round_trips_through_json():
    cfgs = [
        ModelConfig(),
        _cfg(model="ste", arch="cnn", image_shape=(8, 8), weight_bits=1.5, sparsity="2:4", lam=0.5,
             block=None, encoding="sigma_delta", readout_bits=None, weight_grid="minmax"),
        _cfg(model="lif", beta=0.8, act_bits=None, timesteps=7),
        _cfg(act_bits=3, timesteps=3, weight_bits=4, readout_bits=8),
    ]
    for cfg in cfgs:
        text = json.dumps(cfg.to_dict())
        back = ModelConfig.from_dict(json.loads(text))
        assert back == cfg
        assert back.to_dict() == cfg.to_dict()
        assert type(back.image_shape) is type(cfg.image_shape)
        # the rebuilt model takes the original's weights
        m1, m2 = build_model(cfg), build_model(json.loads(text))
        m2.load_state_dict(m1.state_dict())


@pytest.mark.parametrize("model", MODEL_KINDS)
@pytest.mark.parametrize("arch,image_shape,nf", SHAPES)
def test_build_every_kind_and_arch(model, arch, image_shape, nf):
    cfg = _cfg(model=model, arch=arch, image_shape=image_shape, in_features=nf)
    net = build_model(cfg)
    assert isinstance(net, LIFNet if model == "lif" else TBNet)
    x = torch.randn(6, nf)
    net.train()
    logits = net(x)
    assert logits.shape == (6, 10) and torch.isfinite(logits).all()
    logits.pow(2).mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # images may come as [B, H, W] too
    if image_shape is not None:
        assert net.eval()(x.reshape(6, *image_shape)).shape == (6, 10)


@pytest.mark.parametrize("model", ["tbn", "ste"])
@pytest.mark.parametrize("arch,image_shape,nf", SHAPES)
def test_modes_agree_on_logits_in_eval(model, arch, image_shape, nf):
    torch.manual_seed(0)
    cfg = _cfg(model=model, arch=arch, image_shape=image_shape, in_features=nf, timesteps=4,
               sparsity="2:4" if arch == "mlp" else None)
    net = build_model(cfg)
    x = torch.randn(8, nf)
    net.train()
    for _ in range(3):  # move BatchNorm off its initial statistics
        net(x + 0.1 * torch.randn_like(x))
    net.eval()
    with torch.no_grad():
        ref = net(x, evaluation="fused")
        for how in ("folded", "step", "exact"):
            torch.testing.assert_close(net(x, evaluation=how), ref, rtol=1e-4, atol=1e-4 * ref.abs().max())
        assert torch.equal(net(x), net(x, evaluation="exact"))  # eval mode defaults to integer codes
    with pytest.raises(ValueError, match="evaluation must be one of"):
        net(x, evaluation="sideways")


@pytest.mark.parametrize("arch,image_shape,nf", SHAPES)
def test_record_returns_codes_per_layer(arch, image_shape, nf):
    cfg = _cfg(arch=arch, image_shape=image_shape, in_features=nf, layers=3 if arch == "mlp" else 2)
    net = build_model(cfg).eval()
    x = torch.randn(5, nf)
    logits, codes = net(x, record=True)
    assert torch.equal(logits, net(x))
    assert list(codes) == net.layer_names == ["input"] + [f"hidden{i + 1}" for i in range(cfg.layers)]
    for code in codes.values():
        assert isinstance(code, SpikeCode)
        s = code.spikes
        assert s.dtype == torch.bool and s.shape[:2] == (cfg.timesteps, 5)
    assert codes["input"].spikes.shape == (cfg.timesteps, 5, nf)
    if arch == "mlp":
        assert codes["hidden1"].spikes.shape == (cfg.timesteps, 5, cfg.hidden)
    hidden = torch.cat([codes[n].spikes.flatten(2) for n in net.layer_names[1:]], -1)
    assert 0 < hidden.float().mean() < 1  # hidden neurons fire, not all the time
    # LIF baseline records boolean spike trains [T, B, features]
    lif = build_model(_cfg(model="lif", arch=arch, image_shape=image_shape, in_features=nf))
    _, rec = lif(x, record=True)
    assert list(rec) == lif.layer_names
    assert all(v.dtype == torch.bool and v.shape[:2] == (cfg.timesteps, 5) for v in rec.values())


def test_tbn_hidden_width_and_weight_levels():
    net = build_model(_cfg(weight_bits=1, readout_bits=1))
    for layer in [*net.layers, net.readout]:
        wq = layer.quantized_weight()
        assert all(row.unique().numel() <= 2 for row in wq)
    flt = build_model(_cfg(model="float"))
    assert all(layer.weight_bits is None for layer in flt.layers)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(model="rnn"), "model"),
        (dict(arch="transformer"), "arch"),
        (dict(in_features=0), "in_features"),
        (dict(n_classes=0), "n_classes"),
        (dict(hidden=-1), "hidden"),
        (dict(hidden=2.5), "hidden"),
        (dict(layers=0), "layers"),
        (dict(channels=0), "channels"),
        (dict(timesteps=0), "timesteps"),
        (dict(timesteps=True), "timesteps"),
        (dict(timesteps=30), "timesteps"),
        (dict(weight_bits=7), "weight_bits"),
        (dict(readout_bits=0), "readout_bits"),
        (dict(act_bits=3, timesteps=4), "act_bits"),
        (dict(encoding="morse"), "encoding"),
        (dict(lam=-0.1), "lam"),
        (dict(lam=float("inf")), "lam"),
        (dict(block=0), "block"),
        (dict(sparsity="3:2"), "sparsity"),
        (dict(beta=0.0), "beta"),
        (dict(beta=1.5), "beta"),
    ],
)
def test_bad_config_values_name_the_field(kw, name):
    with pytest.raises(ValueError, match=name):
        ModelConfig(**kw)


def test_from_dict_rejects_unknown_fields_and_tbnet_rejects_lif():
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"model": "tbn", "hiden": 3})
    with pytest.raises(ValueError, match="lif"):
        TBNet(ModelConfig(model="lif"))
    assert set(ARCHS) == {"mlp", "cnn"}


def test_weight_storage_bits_of_a_bare_layer():
    """A layer on its own counts its weight as codes (1 bit each) plus two 32-bit scalars per row."""
    import tbnn
    from tbnn.nn.models import weight_storage_bits

    bits = weight_storage_bits(tbnn.TBLinear(40, 256))
    assert bits["quantized"] == 40 * 256 * 1 + 256 * 2 * 32
    assert bits["float"] == 256 * 32  # the bias
