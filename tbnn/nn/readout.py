r"""The spikes-only read-out of a trained network: each neuron layer's per-sample gains and offsets
replaced by constants per block, so that nothing but spikes crosses between layers.

The DAT read-out (Ye et al., arXiv:2409.09245, §3) of a block of neurons fits, for every
sample, a gain and an offset from the analog current: two real numbers per block and sample
that cross to the next layer beside the spikes. :func:`spikes_only` fits instead one gain
:math:`a_b` and one offset :math:`c_b` per block on a calibration set (the training split),
pooled over its samples (as :func:`tbnn.core.quant.pooled_fit`),

.. math::

    a_b = \frac{\mathrm{Cov}(q, t)}{\mathrm{Var}(q) + \lambda}, \qquad c_b = \bar t - a_b \bar q,

(moments over every sample and neuron of block :math:`b`; :math:`t` the read-out's target,
:math:`q` the codes), fixed at inference as BatchNorm's running statistics are. Applied to a
network trained with the per-sample read-out, this gives its spikes-only accuracy; a network
built with ``readout="running"`` is trained for it.

>>> import torch
>>> from tbnn.nn.models import ModelConfig, build_model
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = build_model(ModelConfig(in_features=8, hidden=16, layers=1, block=8)).eval()
>>> x = torch.randn(40, 8)
>>> with spikes_only(net, x):
...     y = net(x)
>>> [n.fixed_readout is None for n in readout_neurons(net)]  # restored on exit
[True, True]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from tbnn.core.quant import to_blocks
from tbnn.nn.neurons import TemporalBinary

__all__ = ["readout_neurons", "calibrate_readout", "spikes_only"]


def readout_neurons(model: nn.Module) -> list[TemporalBinary]:
    """The model's :class:`~tbnn.nn.neurons.TemporalBinary` modules, in ``named_modules`` order."""
    return [m for m in model.modules() if isinstance(m, TemporalBinary)]


def _moments(t: Tensor, q: Tensor, block: int | None) -> Tensor:
    """``[5, nb]`` float64 sums per block over samples and features: count, t, q, t q, q q."""
    tb, valid, n = to_blocks(t.detach().double(), -1, block)
    qb, _, _ = to_blocks(q.detach().double(), -1, block)
    z = torch.zeros((), dtype=tb.dtype, device=tb.device)
    tb, qb = torch.where(valid, tb, z), torch.where(valid, qb, z)
    return torch.stack([n.double() * tb.shape[0], tb.sum((0, 2)), qb.sum((0, 2)), (tb * qb).sum((0, 2)),
                        (qb * qb).sum((0, 2))])


@torch.no_grad()
def calibrate_readout(model: nn.Module, x: Tensor, batch: int = 512) -> dict[int, tuple[Tensor, Tensor]]:
    """Each neuron layer's pooled read-out ``(gain, offset)`` per block over the inputs ``x``, in
    eval mode (keyed by the module's ``id``).

    Layer by layer in network order: a layer is fitted on the currents it receives once the
    layers before it read out with their fitted constants (one pass over ``x`` per layer).
    The moments are summed over batches in float64, so the fit pools all of ``x`` exactly,
    whatever ``batch`` is.

    Raises
    ------
    ValueError
        ``x`` is empty, or the model has no TemporalBinary neuron.
    """
    neurons = readout_neurons(model)
    if not neurons:
        raise ValueError("model must hold a TemporalBinary neuron to calibrate its read-out.")
    if len(x) == 0:
        raise ValueError("x must hold at least one sample to calibrate the read-out.")
    was = model.training
    saved = [n.fixed_readout for n in neurons]
    dev = next(model.parameters()).device
    out: dict[int, tuple[Tensor, Tensor]] = {}
    model.eval()
    try:
        for n in neurons:
            n.fixed_readout = None
        for n in neurons:
            sums: list[Tensor] = []

            def hook(mod: nn.Module, inputs, code) -> None:
                t = code.target if code.target is not None else code.read()
                sums.append(_moments(t, code.q, mod.block).cpu())

            h = n.register_forward_hook(hook)
            try:
                for i in range(0, len(x), batch):
                    model(x[i:i + batch].to(dev))
            finally:
                h.remove()
            cnt, st, sq, stq, sqq = torch.stack(sums).sum(0)
            tbar, qbar = st / cnt, sq / cnt
            cov, var = stq / cnt - tbar * qbar, (sqq / cnt - qbar * qbar).clamp_min(0)
            gain = cov / (var + n.lam) if n.lam > 0 else torch.where(var > 0, cov / var.clamp_min(1e-30), 0 * var)
            out[id(n)] = (gain.float().to(dev), (tbar - gain * qbar).float().to(dev))
            n.fixed_readout = out[id(n)]  # the next layers are fitted on what this one sends
    finally:
        for n, f in zip(neurons, saved):
            n.fixed_readout = f
        model.train(was)
    return out


@contextmanager
def spikes_only(model: nn.Module, x: Tensor, batch: int = 512) -> Iterator[nn.Module]:
    """Within the block, every neuron layer of ``model`` reads out with the constants of
    :func:`calibrate_readout` on ``x`` (the training split): its spikes-only accuracy, and a
    simulation that counts no analog value. Restores the per-sample read-out on exit.

    Raises
    ------
    ValueError
        As :func:`calibrate_readout`.
    """
    fits = calibrate_readout(model, x, batch)
    neurons = readout_neurons(model)
    saved = [n.fixed_readout for n in neurons]
    try:
        for n in neurons:
            n.fixed_readout = fits[id(n)]
        yield model
    finally:
        for n, f in zip(neurons, saved):
            n.fixed_readout = f
