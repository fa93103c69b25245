"""A simulation session: what tbnn modules do differently while a network is simulated.

:func:`tbnn.simulate` runs the model's own ``forward`` (any Python control flow, skip
connections, pooling, BatchNorm on currents) inside a :class:`SimulationSession`. While
the session is active:

* every :class:`~tbnn.nn.neurons.TemporalBinary` fires by the integrate-and-fire loop
  (:meth:`~tbnn.nn.neurons.TemporalBinary.fire`); its spikes are counted, recorded
  (sample-first, ``[N, T, neurons]``) and tagged with the layer's name;
* every tbnn layer (``TBLinear``, ``TBConv1d``, ``TBConv2d``) takes its input current from
  the exact integer-code engine (:mod:`tbnn.engine`): step by step from the spikes that
  occurred (``schedule="step"``) or from the code at once (``schedule="folded"``), and counts the
  synaptic operations of its input spikes, each spike times the synapses it reaches in
  this layer, credited to the layer that emitted it (so a neuron read by two layers
  counts both);
* the analog values each neuron layer sends beside its spikes are counted: a read-out that
  needs a per-sample gain and offset per block (the DAT's ridge fit, Ye et al.,
  arXiv:2409.09245) sends two numbers per block and sample; a read-out fixed at inference
  (``readout="running"`` or :func:`tbnn.nn.readout.spikes_only`) sends none.

The session is found through a context variable (:func:`active`), so nested models and
threads see only their own.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tbnn.core.coding import SpikeCode
from tbnn.core.deprecation import deprecated_attributes, renamed_keyword, warn_deprecated
from tbnn.engine import integer as engine
from tbnn.engine.precision import pinned_choices
from tbnn.kernels import packed as kernels

__all__ = ["SimulationSession", "active", "spike_counts", "SCHEDULES"]

#: How the simulator schedules its integer arithmetic over the time steps: ``step``
#: (event-driven, spike by spike) or ``folded`` (one product per block with the integer code).
#: The same numbers either way. Called ``mode`` before, a word the layers use for their
#: float evaluation (:data:`tbnn.nn.layers.EVALUATIONS`); ``SESSION_MODES`` is deprecated.
SCHEDULES: tuple[str, ...] = ("step", "folded")
__getattr__ = deprecated_attributes(__name__, {"SESSION_MODES": ("tbnn.engine.session.SCHEDULES", lambda: SCHEDULES)})

_ACTIVE: ContextVar[SimulationSession | None] = ContextVar("tbnn_simulation_session", default=None)


def spike_counts(spikes: Tensor) -> Tensor:
    """Spikes of each neuron summed over time and samples: ``[T, B, F]`` boolean -> ``[F]`` float64.

    >>> spike_counts(torch.tensor([[[True, False]], [[True, True]]])).tolist()
    [2.0, 1.0]
    """
    return engine.spike_sums(spikes.reshape(-1, spikes.shape[-1])).to(torch.float64)


@functools.cache
def _packs_records() -> bool:
    """Whether recorded spikes are kept packed: a compiled kernel, on a little-endian machine (its
    words' bytes are then the neurons in order, as ``np.unpackbits(bitorder="little")`` reads them)."""
    return sys.byteorder == "little" and kernels.kernel() is not None


def _packed(flat: Tensor) -> Tensor:
    """0/1 spikes ``[T, n, F]`` (CPU) packed 64 to a word as one block: ``[T, n, words]`` int64."""
    return kernels.pack_bits(flat if flat.dtype == torch.bool else flat.to(torch.bool), None)


#: Recorded spikes are copied into blocks, one per layer at a time, each kept as one array of its
#: batches: the first block holds 16 batches, each next one twice the last, up to this many bytes.
#: Kept batch by batch as arrays of their own between the batch's larger temporaries, they split
#: the heap, which then grew by about the temporaries' size every batch (W = 256: 0.5 MiB and 128
#: page faults a batch for 72 KiB recorded); a few blocks of growing size leave it whole.
RECORD_BLOCK_BYTES = 32 << 20


def _kept(blocks: dict[str, list], name: str, part: Tensor) -> tuple[np.ndarray, bool]:
    """``part`` ``[n, ...]`` (CPU) copied to the end of layer ``name``'s current block in ``blocks`` (a
    new block when it is full): the block's parts so far as one array ``[N, ...]``, and whether the
    block is new."""
    block, n = blocks.get(name), part.shape[0]
    new = block is None or block[2] + n > len(block[1]) or block[0].shape[1:] != part.shape[1:]
    if new:
        row = max(part.element_size() * math.prod(part.shape[1:]), 1)
        rows = 16 * n if block is None else min(2 * len(block[1]), RECORD_BLOCK_BYTES // row)
        buf = torch.empty(max(rows, n, 1), *part.shape[1:], dtype=part.dtype)  # (numpy-made blocks stalled on huge pages)
        block = blocks[name] = [buf, buf.numpy(), 0]
    buf, arr, used = block
    buf[used:used + n].copy_(part)
    block[2] = used + n
    return arr[:used + n], new


class _Sums:
    """The exact sum (float64 ``[F]``) of integer counts ``[F]`` handed in batch by batch, added
    :data:`SUMMED_AT_ONCE` at a time: one torch operation per batch, on a few hundred numbers,
    cost more than the addition (1.5-3 % of a W = 256 batch for each layer's two tallies)."""

    __slots__ = ("_total", "_pending")

    def __init__(self, total: Tensor) -> None:
        self._total, self._pending = total, []

    def add(self, counts: Tensor) -> None:
        self._pending.append(counts)
        if len(self._pending) >= SUMMED_AT_ONCE:
            self.total()

    def total(self) -> Tensor:
        """The sum so far (CPU float64; exact: integers below 2^53)."""
        pending, self._pending = self._pending, []
        for dtype in {p.dtype for p in pending}:  # stacked by type: the kernel's int32, the recount's float64
            part = torch.stack([p for p in pending if p.dtype == dtype]).sum(0, dtype=torch.float64)
            self._total += part if part.device.type == "cpu" else part.cpu()
        return self._total


#: Batches of counts :class:`_Sums` adds at once.
SUMMED_AT_ONCE = 32


def active() -> SimulationSession | None:
    """The session simulating the current forward pass, or ``None``."""
    return _ACTIVE.get()


class SimulationSession:
    """State of one simulation: names, weight codes, counts and recorded spikes.

    Parameters
    ----------
    names : display name of each neuron module (by ``id``); others get ``neuron<k>``.
    schedule : ``step`` (event-driven) or ``folded`` (one product per block with the code),
        :data:`SCHEDULES`; ``mode=`` is its deprecated spelling.
    record_layers : names of the layers whose spikes are kept (``None``: all).
    record_samples : keep the spikes of the first this many samples (``None``: all);
        counts always cover every sample.
    weight_cache : deprecated: a dict shared between sessions of the same model, for the
        layers' weight codes and fan-outs, trusted without a check. Every session now reuses
        a layer's codes and fan-outs while its weight is bit-for-bit unchanged
        (:func:`tbnn.engine.cached_weight_codes`).
    """

    def __init__(self, names: dict[int, str], schedule: str = "step", record_layers: Iterable[str] | None = None,
                 record_samples: int | None = None, weight_cache: dict | None = None, *,
                 mode: str | None = None) -> None:
        schedule = renamed_keyword("SimulationSession", "mode", "schedule", mode, schedule, "step", SCHEDULES)
        self.names = dict(names)
        self.schedule = schedule
        self.record_layers = None if record_layers is None else set(record_layers)
        self.record_samples = record_samples
        self.order: list[str] = []  # neuron layers in firing order
        self.neurons: dict[str, int] = {}  # neurons per sample of each layer
        self.timesteps: dict[str, int] = {}
        self._counts: dict[str, _Sums] = {}  # spikes of each neuron over every sample (:attr:`neuron_counts`)
        # each reading of a layer's spikes: (neuron layer, reading layer, input shape, its fan-outs) -> [the
        # spikes of each input neuron read there, summed over batches (_Sums), its synapses [F, 2]
        # (existing, every weight position)]; the operations are made from these sums when asked (exact:
        # sums of integers below 2^53, as the per-batch products were)
        self._reads: dict[tuple, list] = {}
        self._merged: dict[str, dict[str, Any]] = {}  # counts merged over the ranks of a torchrun job
        self.analog_values: dict[str, float] = {}  # per-sample gains and offsets sent, over every sample
        self.readers: dict[str, dict[tuple, Tensor]] = {}  # neuron layer -> reading layer -> fan-out
        #: each layer's recorded spikes, in parts of one or more batches: ``[n, T, F]`` bool, or packed
        #: 64 neurons to a word (``[n, T, words]`` int64, :func:`tbnn.kernels.packed.pack_bits`) where
        #: the compiled kernel packs them; :meth:`recorded_spikes` gives the bool array either way
        self.recorded: dict[str, list[np.ndarray]] = {}
        self._packed_features: dict[str, int] = {}  # layers recorded packed -> their neurons per step
        self._record_blocks: dict[str, list] = {}  # layer -> [its record block, as numpy, rows used]
        self.layer_engines: dict[int, str] = {}  # id of each tbnn layer -> the engine that ran it
        self.neuron_engines: dict[str, str] = {}  # each neuron layer -> how it fired: compiled or torch
        self.samples_seen = 0  # samples of finished batches
        self._batch_counts: dict[str, tuple[Tensor, Tensor]] = {}  # layer -> (its latest spikes, their counts)
        self._batch_words: dict[str, tuple[Tensor, Tensor]] = {}  # layer -> (its latest spikes, packed [T, B, w])
        if weight_cache is not None:
            warn_deprecated("SimulationSession(weight_cache=...)", "SimulationSession without it (weight codes are "
                            "now kept by content: tbnn.engine.cached_weight_codes)")
        cache = weight_cache if weight_cache is not None else {}
        self._codes: dict[int, engine.WeightCodes] = cache.setdefault("codes", {})
        self._token = None
        self._pinned: Any = None

    @property
    def neuron_counts(self) -> dict[str, Tensor]:
        """Spikes of each neuron of each layer over every sample so far (float64 ``[F]``)."""
        return {k: v.total() for k, v in self._counts.items()}

    @neuron_counts.setter
    def neuron_counts(self, counts: dict[str, Tensor]) -> None:
        self._counts = {k: _Sums(torch.as_tensor(v, dtype=torch.float64).clone()) for k, v in counts.items()}

    @property
    def spike_counts(self) -> dict[str, int]:
        """Spikes of each neuron layer over every sample so far."""
        if "spike_counts" in self._merged:
            return self._merged["spike_counts"]
        return {k: int(v.sum()) for k, v in self.neuron_counts.items()}

    @property
    def synaptic_ops(self) -> dict[str, float]:
        """Synaptic operations of each neuron layer's spikes (by the synapses that exist) so far."""
        return self._ops(0, "synaptic_ops")

    @property
    def dense_ops(self) -> dict[str, float]:
        """Synaptic operations of each neuron layer's spikes counting every weight position so far."""
        return self._ops(1, "dense_ops")

    def _ops(self, column: int, merged: str) -> dict[str, float]:
        if merged in self._merged:
            return self._merged[merged]
        ops: dict[str, float] = {}
        for (src, *_), (counts, both) in self._reads.items():
            ops[src] = ops.get(src, 0.0) + float(counts.total() @ both[:, column])
        return ops

    @property
    def mode(self) -> str:
        """Deprecated spelling of :attr:`schedule`."""
        warn_deprecated("SimulationSession.mode", "SimulationSession.schedule")
        return self.schedule

    # -- context ------------------------------------------------------------------------
    def __enter__(self) -> SimulationSession:
        self._pinned = pinned_choices()  # the engine's choices read once per batch
        self._pinned.__enter__()
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.reset(self._token)
        self._token = None
        self._pinned.__exit__(*exc)

    def end_batch(self, batch: int) -> None:
        """Mark ``batch`` samples done (recording limits count samples across batches)."""
        self.samples_seen += batch
        self._batch_counts.clear()
        self._batch_words.clear()

    def merge_ranks(self, merge: Callable[..., Any], arrays: dict[str, list[Any]],
                    scalars: list[float]) -> tuple[dict[str, np.ndarray], list[float]]:
        """Merge the sessions of every rank of a ``torchrun`` job into this one, in sample order.

        ``merge`` is :func:`tbnn.parallel.distributed.merge_ranks` (passed in: the engine
        layer does not import the process group). ``arrays`` (per-batch results of the
        caller, e.g. logits) are gathered in sample order with the recorded spikes; spike
        and synaptic-operation counts are summed exactly; the layer layout comes from the
        first rank; ``scalars`` are reduced by maximum. Returns the merged ``arrays`` and
        ``scalars``; the session then holds the whole job's spikes and counts.
        """
        rec = {f"rec/{k}": v for k, v in self.recorded.items()}
        merged, sums, firsts, scalars = merge(
            {**arrays, **rec},
            {"spike_counts": self.spike_counts, "neuron_counts": self.neuron_counts,
             "synaptic_ops": self.synaptic_ops, "dense_ops": self.dense_ops, "analog_values": self.analog_values},
            {"neurons": self.neurons, "timesteps": self.timesteps, "readers": self.readers}, scalars)
        self.recorded = {k: [merged[f"rec/{k}"][:self.record_samples]] if f"rec/{k}" in merged else []
                         for k in firsts["neurons"]}
        self._record_blocks.clear()  # a batch recorded after this starts a part of its own
        self.order = list(firsts["neurons"])
        self.neurons, self.timesteps, self.readers = firsts["neurons"], firsts["timesteps"], firsts["readers"]
        self.neuron_counts = sums["neuron_counts"]
        self._merged = {k: sums[k] for k in ("spike_counts", "synaptic_ops", "dense_ops")}
        self.analog_values = sums["analog_values"]
        return {k: merged[k] for k in arrays if k in merged}, list(scalars)

    # -- neurons --------------------------------------------------------------------------
    def name_of(self, module: nn.Module) -> str:
        if id(module) not in self.names:
            self.names[id(module)] = f"neuron{len(self.names)}"
        return self.names[id(module)]

    def neuron_output(self, neuron: nn.Module, x: Tensor) -> SpikeCode:
        """Fire ``neuron`` on ``x`` by integrate-and-fire; count and record its spikes."""
        counted = getattr(neuron, "fire_counted", None)  # a neuron that counts its spikes as it fires
        code, counts = counted(x) if counted is not None else (neuron.fire(x), None)
        name = self.name_of(neuron)
        self.neuron_engines[name] = "compiled (tbnn.kernels.neuron)" if counts is not None else "torch"
        packed = code.packed if isinstance(code, SpikeCode) else None  # the words the firing packed, if any
        self.record_spikes(name, code.spikes, counts, packed[1] if packed is not None and packed[0] is code.raw else None)
        sends = getattr(neuron, "sends_analog", None)
        analog = 2.0 * code.gain.numel() if sends is None or sends() else 0.0  # a gain and an offset per block
        self.analog_values[name] = self.analog_values.get(name, 0.0) + analog
        return code.with_source(name) if isinstance(code, SpikeCode) else replace(code, source=name)

    def record_spikes(self, name: str, spikes: Tensor, counts: Tensor | None = None,
                      words: Tensor | None = None) -> None:
        """Count (every sample) and record (within the limits) a layer's spikes ``[T, B, ...]``;
        ``counts``: each neuron's spikes ``[F]`` where the firing already counted them; ``words``:
        the spikes packed as :func:`_packed` packs them, where the firing packed them."""
        T, B = spikes.shape[:2]
        flat = spikes if spikes.dim() == 3 else spikes.reshape(T, B, -1)  # (each view costs a dispatch)
        if name not in self.neurons:
            self.order.append(name)
            self.neurons[name], self.timesteps[name] = int(flat.shape[2]), int(T)
            self._counts[name] = _Sums(torch.zeros(flat.shape[2], dtype=torch.float64))
            self.recorded[name] = []
        elif self.neurons[name] != flat.shape[2] or self.timesteps[name] != T:
            raise ValueError(f"neuron layer {name!r} fired twice in one pass with different shapes; "
                             "use a separate TemporalBinary module for each place it is used.")
        counts = spike_counts(flat) if counts is None else counts
        self._batch_counts[name] = (spikes, counts)  # for the layers that read these spikes (same device)
        self._counts[name].add(counts)
        keep = self._keep(name, B)
        if name not in self._packed_features and not self.recorded[name] and _packs_records():
            self._packed_features[name] = int(flat.shape[2])  # this layer is recorded packed
        if name in self._packed_features and flat.device.type == "cpu" and (keep or self.schedule == "step"):
            if words is None or words.shape != (T, B, -(-flat.shape[2] // 64)):
                words = _packed(flat)
            self._batch_words[name] = (spikes, words)  # the step engine reads them packed (step_current)
        if keep:
            kept, new = self._record(name, flat if keep == B else flat[:, :keep], words)
            parts = self.recorded[name]
            if parts and not new:
                parts[-1] = kept  # the block's batches so far, one array
            else:
                parts.append(kept)

    def _record(self, name: str, flat: Tensor, words: Tensor | None) -> tuple[np.ndarray, bool]:
        """A batch's spikes ``[T, n, F]`` kept in the layer's record block (:func:`_kept`: the block so
        far, and whether it is new): packed 64 to a word by the compiled kernel (an eighth of the
        memory; ``words``: the whole batch packed, ``[T, B, words]``), else as bool ``[n, T, F]``."""
        if name not in self._packed_features:
            return _kept(self._record_blocks, name, flat.transpose(0, 1).cpu())
        words = _packed(flat.cpu()) if words is None else words
        return _kept(self._record_blocks, name, (words if words.shape[1] == flat.shape[1] else words[:, :flat.shape[1]])
                     .transpose(0, 1))

    def recorded_spikes(self, name: str) -> np.ndarray | None:
        """Layer ``name``'s recorded spikes, bool ``[N, T, F]`` (sample first), or ``None`` when
        none were recorded."""
        parts = self.recorded.get(name)
        if not parts:
            return None
        if name not in self._packed_features:
            return np.concatenate(parts).astype(bool, copy=False)
        words = np.concatenate(parts)  # [N, T, words] int64, little-endian bit order (checked)
        bits = np.unpackbits(words.view(np.uint8), axis=-1, count=self._packed_features[name], bitorder="little")
        return bits.view(bool)

    def _keep(self, name: str, batch: int) -> int:
        if self.record_layers is not None and name not in self.record_layers:
            return 0
        if self.record_samples is None:
            return batch
        return max(0, min(batch, self.record_samples - self.samples_seen))

    # -- layers ---------------------------------------------------------------------------
    def adopt_weight_codes(self, noted: dict[int, engine.WeightCodes]) -> None:
        """Use these codes (by ``id`` of the layer) for the session's layers: those an eval forward
        of the same network has just checked against the weights by content
        (:func:`tbnn.engine.weights.noting_weight_codes`), rather than checking them again."""
        self._codes.update(noted)

    def weight_codes(self, layer: nn.Module) -> engine.WeightCodes:
        if id(layer) not in self._codes:
            self._codes[id(layer)] = engine.cached_weight_codes(layer)
        return self._codes[id(layer)]

    def layer_current(self, layer: nn.Module, code: SpikeCode) -> Tensor:
        """The layer's input current from ``code`` by the engine, with its synaptic operations counted."""
        wc = self.weight_codes(layer)
        if self.schedule == "step":
            packed = self._batch_words.get(code.source or "input")
            words = packed[1] if packed is not None and packed[0] is code.spikes else None
            current = engine.step_current(layer, code, wc, words)
        else:
            current = engine.exact(layer, code, wc)
        self.layer_engines[id(layer)] = engine.engine_path(wc)
        in_shape = tuple(code.shape[1:]) if code.shape is not None else (code.q.shape[-1],)
        key = ("fanouts", in_shape)  # kept with the codes: made from them and the layer's operator
        if key not in wc.cache:
            fo = engine.fanout(layer, in_shape, wc)
            wc.cache[key] = (fo, torch.stack([fo, engine.fanout(layer, in_shape, wc, dense=True)], 1))
        fo, both = wc.cache[key]  # [F] and [F, 2]: the synapses that exist, and every weight position
        src = code.source or "input"
        counted = self._batch_counts.get(src)
        if counted is not None and counted[0] is code.spikes:  # counted as they were fired
            per_input = counted[1]
        else:
            per_input = spike_counts(code.spikes.reshape(code.timesteps, code.q.shape[0], -1))
        read = self._reads.get((src, id(layer), in_shape, id(both)))
        if read is None:
            read = self._reads[(src, id(layer), in_shape, id(both))] = [_Sums(torch.zeros(len(fo), dtype=torch.float64)),
                                                                        both.cpu()]
        read[0].add(per_input)
        self.readers.setdefault(src, {})[(id(layer), in_shape)] = fo
        return current

    def synapse_counts(self, name: str) -> Tensor | None:
        """Synapses that exist (nonzero weight codes) from each neuron of layer ``name``, summed
        over every layer that reads it (``[F]``); ``None`` if no layer read it.

        Pruned weights are not synapses; :meth:`tbnn.nn.layers.TBConv.weight_positions` counts
        every weight position. ``simulation.json`` stores the mean as the layer's ``fanout``.
        """
        readers = self.readers.get(name)
        if not readers:
            return None
        return torch.stack(list(readers.values())).sum(0)

    def fanout(self, name: str) -> Tensor | None:
        """Deprecated: :meth:`synapse_counts`."""
        warn_deprecated("SimulationSession.fanout", "SimulationSession.synapse_counts")
        return self.synapse_counts(name)
