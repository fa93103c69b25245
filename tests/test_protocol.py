"""Spiking modules are found by protocol, not by class: a user's own neuron is simulated,
counted and regularised like TemporalBinary; the snnTorch LIF network runs through its adapter."""

import torch
from torch import nn

import tbnn
from tbnn.engine import session
from tbnn.nn.models import LIFNet, ModelConfig
from tbnn.nn.neurons import TemporalBinary
from tbnn.nn.protocol import SelfTimedNetwork, SpikingNeuron, spiking_modules
from tbnn.nn.regularize import ActivityRegularizer
from tbnn.sim.runners import EventRunner, SelfTimedRunner, runner_for


class OwnNeuron(nn.Module):
    """Not a TemporalBinary: a user's neuron with the protocol's members (a 2-step minmax code)."""

    def __init__(self):
        super().__init__()
        self.timesteps = 2
        self.inner = [TemporalBinary(2, grid="minmax")]  # a list hides it from named_modules

    def forward(self, x):
        sess = session.active()
        return sess.neuron_output(self, x) if sess is not None else self.encode(x)

    def encode(self, x):
        return self.inner[0].encode(x)

    def fire(self, x):
        return self.inner[0].fire(x)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(OwnNeuron(), tbnn.TBLinear(6, 5), TemporalBinary(2), tbnn.TBLinear(5, 3))


def test_protocol_finds_own_neurons_and_not_layers():
    net = _net()
    assert list(spiking_modules(net)) == ["0", "2"]
    assert isinstance(net[0], SpikingNeuron) and not isinstance(net[1], SpikingNeuron)
    assert isinstance(runner_for(net), EventRunner)


def test_own_neuron_is_simulated_and_counted_exactly():
    net, x = _net(), torch.randn(7, 6)
    res = tbnn.simulate(net, x)
    assert res.summary["forward_agreement"] == 1.0
    assert torch.equal(res.logits, net.eval()(x))
    own = res.spikes["0"]  # [N, T, neurons]: the own neuron's spikes, recounted from its code
    code = net[0].encode(x)
    assert own.shape == (7, 2, 6)
    assert (own.transpose(1, 0, 2) == code.spikes.numpy()).all()
    layer0 = res.summary["layers"][0]
    assert layer0["name"] == "0" and layer0["spikes"] == int(own.sum())


def test_regulariser_hooks_own_neurons():
    reg = ActivityRegularizer(_net(), 0.1, weight=1.0, exclude=())
    assert reg.names == ["0", "2"]


def test_lif_network_runs_through_its_adapter():
    net = LIFNet(ModelConfig(model="lif", hidden=8, timesteps=3)).eval()
    assert isinstance(net, SelfTimedNetwork) and isinstance(runner_for(net), SelfTimedRunner)
    x = torch.randn(4, 64)
    res = tbnn.simulate(net, x)
    logits, spikes = net.record_spikes(x)
    assert torch.equal(res.logits, logits)
    h1 = res.summary["layers"][1]
    assert h1["name"] == "hidden1" and h1["spikes"] == int(spikes["hidden1"].sum())
    # synaptic operations: each hidden1 spike reaches every neuron of the next layer
    fan = net.synaptic_targets("hidden1")
    nxt = net.layers[1] if len(net.layers) > 1 else net.readout
    assert torch.equal(fan, torch.full((8,), float(nxt.out_features), dtype=torch.float64))
    assert h1["synaptic_ops"] == float((spikes["hidden1"].sum((0, 1)).double() * fan).sum())
