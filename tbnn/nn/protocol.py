"""What tbnn needs of a spiking module or network: two protocols, found by structure, not by class.

* :class:`SpikingNeuron` — a module that turns a current into a spike code over ``T`` steps,
  in closed form (:meth:`encode`, training and eval) and by firing (:meth:`fire`, while
  simulated). :class:`~tbnn.nn.neurons.TemporalBinary` is one; a user's neuron that has
  the same members is simulated, counted, recorded and regularised the same way.
* :class:`SelfTimedNetwork` — a network that runs its own time loop and hands back its
  spikes per layer, as snnTorch's and SpikingJelly's networks do; the snnTorch LIF
  baseline (:class:`~tbnn.nn.models.LIFNet`) is one. The simulator runs such a network
  through an adapter instead of a branch of its own.

>>> import torch
>>> from tbnn.nn.neurons import TemporalBinary
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), TemporalBinary(2), torch.nn.Linear(4, 2))
>>> list(spiking_modules(net)), isinstance(net[0], SpikingNeuron)
(['1'], False)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["SpikingNeuron", "SelfTimedNetwork", "spiking_modules"]


@runtime_checkable
class SpikingNeuron(Protocol):
    """A layer of spiking neurons: a current ``[B, ...]`` in, a spike code over ``timesteps`` out.

    ``encode(x)`` returns the code in closed form (a :class:`~tbnn.core.coding.SpikeCode`
    whose ``spikes`` are ``[T, B, ...]``); ``fire(x)`` returns the same code with the spikes
    the neurons emitted step by step (``raw``), which the simulator records and counts.
    ``forward(x)`` hands over to the simulation while one runs, as
    :class:`~tbnn.nn.neurons.TemporalBinary` does::

        sess = tbnn.engine.session.active()
        return sess.neuron_output(self, x) if sess is not None else self.encode(x)
    """

    timesteps: int

    def encode(self, x: Tensor) -> Any: ...

    def fire(self, x: Tensor) -> Any: ...


@runtime_checkable
class SelfTimedNetwork(Protocol):
    """A network that runs its own time loop (snnTorch style) and reports its spikes.

    ``layer_names`` lists the spiking layers in network order; ``record_spikes(x)`` returns
    ``(logits, {layer: bool [T, B, neurons]})``; ``synaptic_targets(layer)`` gives, per
    neuron of that layer, the number of synapses its spike reaches (float64 ``[neurons]``).
    """

    layer_names: list[str]

    def record_spikes(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]: ...

    def synaptic_targets(self, name: str) -> Tensor: ...


def spiking_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The :class:`SpikingNeuron` modules of ``model`` by ``named_modules()`` name, in network order."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, SpikingNeuron)}
