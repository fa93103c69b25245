"""How the simulator runs one batch of a network, whichever kind it is: one adapter per kind.

* :class:`EventRunner` — a network built of :class:`~tbnn.nn.protocol.SpikingNeuron`
  modules (TemporalBinary and the user's own): its ``forward`` runs inside the
  :class:`~tbnn.engine.session.SimulationSession`, which fires each neuron step by step,
  feeds each tbnn layer from the exact integer engine and counts synaptic operations.
* :class:`SelfTimedRunner` — a :class:`~tbnn.nn.protocol.SelfTimedNetwork` (the snnTorch LIF
  baseline): it runs its own time loop and hands back its spikes, which the session records
  and counts; synaptic operations are each neuron's spikes times its synaptic targets.

:func:`runner_for` picks the adapter, so :func:`tbnn.sim.simulate` has no branch per kind.

>>> import torch
>>> from tbnn.nn.neurons import TemporalBinary
>>> runner_for(torch.nn.Sequential(TemporalBinary(2), torch.nn.Linear(4, 2))).layer_names
['0']
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from tbnn.engine.session import SimulationSession
from tbnn.nn.protocol import SelfTimedNetwork, spiking_modules

__all__ = ["EventRunner", "SelfTimedRunner", "runner_for", "spike_layer_names"]


def spike_layer_names(model: nn.Module) -> dict[str, str]:
    """Display name of each spiking module of ``model`` (``named_modules`` name -> name).

    Models that define ``spike_layer_names()`` (those of :mod:`tbnn.nn.models`) name their
    own layers (``input``, ``hidden1``, ...); other models use the module names.
    """
    own = getattr(model, "spike_layer_names", None)
    named = dict(own()) if callable(own) else {}
    return {name: named.get(name, name or "neuron") for name in spiking_modules(model)}


class EventRunner:
    """Runs a network of spiking modules inside a session (event by event, exact integer engine)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = spike_layer_names(model)
        if not self.names:
            raise ValueError("model has no TemporalBinary neurons (nor another module with timesteps, "
                             "encode and fire): nothing spikes to simulate.")
        self.layer_names = list(self.names.values())
        self.ids = {id(mod): self.names[name] for name, mod in model.named_modules() if name in self.names}

    def run(self, x: Tensor, sess: SimulationSession) -> Tensor:
        with sess:
            return self.model(x)

    def synapse_counts(self, sess: SimulationSession, name: str) -> Tensor | None:
        """Synapses that exist from each neuron of layer ``name`` (the session's count)."""
        return sess.synapse_counts(name)

    def synaptic_ops(self, sess: SimulationSession) -> tuple[dict[str, Any], dict[str, Any]]:
        """(operations by existing synapses, operations by every weight position), per layer."""
        return sess.synaptic_ops, sess.dense_ops


class SelfTimedRunner:
    """Runs a :class:`~tbnn.nn.protocol.SelfTimedNetwork` and records the spikes it reports."""

    def __init__(self, model: SelfTimedNetwork) -> None:
        self.model = model
        self.layer_names = list(model.layer_names)
        self.ids: dict[int, str] = {}

    def run(self, x: Tensor, sess: SimulationSession) -> Tensor:
        logits, spikes = self.model.record_spikes(x)
        for name in self.layer_names:
            sess.record_spikes(name, spikes[name])
        return logits

    def synapse_counts(self, sess: SimulationSession, name: str) -> Tensor:
        """Synapses from each neuron of layer ``name``, as the network reports them."""
        return self.model.synaptic_targets(name)

    def synaptic_ops(self, sess: SimulationSession) -> tuple[dict[str, Any], dict[str, Any]]:
        ops = {k: float((sess.neuron_counts[k] * self.synapse_counts(sess, k)).sum()) for k in sess.order}
        return ops, ops


def runner_for(model: nn.Module) -> EventRunner | SelfTimedRunner:
    """The adapter that simulates ``model``."""
    return SelfTimedRunner(model) if isinstance(model, SelfTimedNetwork) else EventRunner(model)
