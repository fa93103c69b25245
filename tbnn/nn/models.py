"""Models built from a JSON-serialisable config: temporal binary networks and their baselines.

One builder makes four variants of the same architecture:

* ``tbn``: temporal binary network. Input encoded as spikes over ``T`` steps; every layer
  takes spikes and has quantized weights (DAT per output channel); hidden units are
  :class:`~tbnn.nn.neurons.TemporalBinary` neurons after a BatchNorm (the paper's recipe);
  the read-out decodes the last spike train and gives logits.
* ``ste``: the same with the straight-through estimator in place of the DAT.
* ``float``: the same architecture in full precision with ReLU (the float floor).
* ``lif``: snnTorch leaky integrate-and-fire neurons with a surrogate gradient, rate-coded
  input over ``T`` steps, the same widths; logits are the read-out current averaged over time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tbnn.core.coding import SCHEMES, SpikeCode, check_timesteps
from tbnn.nn.layers import EVALUATIONS, TBConv1d, TBConv2d, TBLayer, TBLinear, conv_fanout
from tbnn.nn.neurons import READOUTS, THRESHOLDS, TemporalBinary
from tbnn.core.quant import GRIDS, WEIGHT_BITS, parse_sparsity
from tbnn.core.deprecation import renamed_keyword
from tbnn.core.validate import check_block, check_choice, check_int, check_lam, check_number

__all__ = ["MODEL_KINDS", "ARCHS", "HIDDEN_GRIDS", "ModelConfig", "TBNet", "LIFNet", "build_model", "weight_storage_bits"]

MODEL_KINDS: tuple[str, ...] = ("tbn", "ste", "float", "lif")
ARCHS: tuple[str, ...] = ("mlp", "cnn")
#: Grids of the hidden neurons (:mod:`tbnn.nn.neurons`).
HIDDEN_GRIDS: tuple[str, ...] = ("rectify", "running")


@dataclass
class ModelConfig:
    r"""Everything needed to rebuild a model; round-trips through JSON (``to_dict``/``from_dict``).

    ``layers`` counts hidden layers (MLP) or convolution layers (CNN, widths ``channels``,
    then ``2*channels``; stride 2 after the first). ``act_bits`` is the activation code
    width; for the ``binary`` code it equals ``timesteps``. ``first_layer_bits`` is the
    weight width of the first layer (the one reading the encoded input; ``None``: the
    same as ``weight_bits``), as ``readout_bits`` is the read-out's (``None``: float).

    Sparse firing (:mod:`tbnn.nn.neurons`): ``hidden_grid`` is the hidden neurons' grid
    (``rectify``: scaled by each block's maximum per sample; ``running``: by a running scale,
    so a whole block can be silent); ``readout`` is every neuron layer's read-out (``sample``:
    a gain and an offset per block and sample; ``running``: per block only, from running
    statistics: spikes alone cross between layers); ``adaptive_threshold`` (``None``, ``layer``
    or ``neuron``) gives every hidden layer the thresholds the homeostatic rate controller
    moves (:mod:`tbnn.nn.homeostasis`); ``input_encoding`` is the
    encoder's spike code (default: ``encoding``); ``input_headroom`` (``None`` or :math:`g \ge 1`)
    gives the encoder's grid the headroom that the input rate controller moves (the top of the
    grid at :math:`lo + g\,(hi - lo)`: the largest inputs fire fewer spikes).
    """

    model: str = "tbn"
    arch: str = "mlp"
    in_features: int = 64
    image_shape: tuple[int, ...] | None = None
    n_classes: int = 10
    hidden: int = 256
    layers: int = 2
    channels: int = 32
    timesteps: int = 4
    weight_bits: float = 1
    readout_bits: float | None = 1
    first_layer_bits: float | None = None
    act_bits: int | None = None
    sparsity: str | None = None
    lam: float = 0.01
    block: int | None = 128
    encoding: str = "binary"
    weight_grid: str = "meanstd"
    beta: float = 0.9
    threshold: float = 1.0
    input_seed: int = 0
    hidden_grid: str = "rectify"
    readout: str = "sample"
    adaptive_threshold: str | None = None
    input_encoding: str | None = None
    input_headroom: float | None = None

    def __post_init__(self) -> None:
        if self.image_shape is not None:
            self.image_shape = tuple(int(v) for v in self.image_shape)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what is allowed."""
        check_choice(self.model, MODEL_KINDS, "model")
        check_choice(self.arch, ARCHS, "arch")
        for name in ("in_features", "n_classes", "hidden", "layers", "channels", "timesteps"):
            check_int(getattr(self, name), name)
        check_choice(self.weight_bits, WEIGHT_BITS, "weight_bits")
        if self.readout_bits is not None:
            check_choice(self.readout_bits, WEIGHT_BITS, "readout_bits")
        if self.first_layer_bits is not None:
            check_choice(self.first_layer_bits, WEIGHT_BITS, "first_layer_bits")
        check_choice(self.encoding, SCHEMES, "encoding")
        if self.model != "lif":
            check_timesteps(self.timesteps, self.encoding)
        if self.act_bits is not None and (self.encoding != "binary" or self.act_bits != self.timesteps):
            raise ValueError(
                f"act_bits must equal timesteps ({self.timesteps}) with the binary code "
                f"(a T-step binary neuron carries T bits); got {self.act_bits!r}.")
        check_lam(self.lam)
        check_block(self.block)
        check_choice(self.weight_grid, GRIDS, "weight_grid")
        if self.image_shape is not None:
            if len(self.image_shape) not in (1, 2) or min(self.image_shape) < 1:
                raise ValueError(f"image_shape must be 1 or 2 positive sizes; got {self.image_shape!r}.")
            if math.prod(self.image_shape) != self.in_features:
                raise ValueError(f"image_shape {self.image_shape} must hold in_features={self.in_features} values.")
        parse_sparsity(self.sparsity)
        if self.arch == "cnn" and self.image_shape is None and self.in_features < 4:
            raise ValueError("arch 'cnn' needs image_shape or a 1-D input of at least 4 features.")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 < self.beta <= 1:
            raise ValueError(f"beta must lie in (0, 1]; got {self.beta!r}.")
        check_number(self.threshold, "threshold")
        check_int(self.input_seed, "input_seed", minimum=0)
        check_choice(self.hidden_grid, HIDDEN_GRIDS, "hidden_grid")
        check_choice(self.readout, READOUTS, "readout")
        if self.adaptive_threshold is not None:
            check_choice(self.adaptive_threshold, THRESHOLDS, "adaptive_threshold")
        if self.input_encoding is not None:
            check_choice(self.input_encoding, SCHEMES, "input_encoding")
            if self.model != "lif":
                check_timesteps(self.timesteps, self.input_encoding)
        if self.input_headroom is not None:
            if self.model not in ("tbn", "ste"):
                raise ValueError(f"input_headroom needs a temporal binary model (tbn or ste), whose input encoder "
                                 f"it widens; got model {self.model!r}.")
            check_number(self.input_headroom, "input_headroom", minimum=1.0, inclusive=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape) if self.image_shape is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"model config has unknown fields {sorted(unknown)}; allowed: {sorted(names)}.")
        return cls(**d)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as the first layer takes it (channels first for a CNN)."""
        if self.arch == "mlp":
            return (self.in_features,)
        if self.image_shape is not None:
            return (1, *self.image_shape)
        return (1, self.in_features)


def _layer_specs(cfg: ModelConfig) -> list[dict]:
    """The hidden layers as dicts: kind, sizes, and the shape of their output per sample."""
    specs = []
    shape = cfg.input_shape
    if cfg.arch == "mlp":
        width = cfg.in_features
        for _ in range(cfg.layers):
            specs.append(dict(kind="linear", in_=width, out=cfg.hidden, in_shape=(width,), out_shape=(cfg.hidden,)))
            width = cfg.hidden
        return specs
    nd = len(shape) - 1
    ch = shape[0]
    for i in range(cfg.layers):
        out_ch = cfg.channels if i == 0 else 2 * cfg.channels
        stride = 1 if i == 0 else 2
        k = 3 if nd == 2 else 5
        pad = k // 2
        spatial = tuple((s + 2 * pad - k) // stride + 1 for s in shape[1:])
        specs.append(dict(kind=f"conv{nd}d", in_=ch, out=out_ch, k=k, stride=stride, pad=pad,
                          in_shape=shape, out_shape=(out_ch, *spatial)))
        shape, ch = (out_ch, *spatial), out_ch
    return specs


class TBNet(nn.Module):
    """Temporal binary network (``tbn``), its STE twin (``ste``) and its float twin (``float``).

    ``forward(x, evaluation=None, record=False)`` returns logits ``[B, classes]``; with
    ``record=True`` it returns ``(logits, codes)`` where ``codes`` maps each spiking layer
    (``input``, ``hidden1``, ...) to its :class:`~tbnn.core.coding.SpikeCode`. ``evaluation``
    overrides every layer's (``fused`` / ``folded`` / ``step`` / ``exact``:
    :data:`tbnn.nn.layers.EVALUATIONS`); ``mode`` is its deprecated spelling.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.model == "lif":
            raise ValueError("model 'lif' is built by LIFNet, not TBNet.")
        self.cfg = cfg
        spiking = cfg.model != "float"
        method = "ste" if cfg.model == "ste" else "dat"
        wbits = cfg.weight_bits if spiking else None
        wkw = dict(method=method, lam=cfg.lam, sparsity=cfg.sparsity if spiking else None,
                   weight_grid=cfg.weight_grid)
        nkw = dict(scheme=cfg.encoding, lam=cfg.lam, block=cfg.block, method=method)
        self.specs = _layer_specs(cfg)
        rkw = dict(readout=cfg.readout)
        enc_kw = dict(nkw, scheme=cfg.input_encoding or cfg.encoding)
        self.encoder = (TemporalBinary(cfg.timesteps, grid="minmax", features=cfg.in_features,
                                       headroom=cfg.input_headroom, **enc_kw, **rkw)
                        if spiking else None)
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.neurons = nn.ModuleList()
        first_bits = cfg.first_layer_bits if spiking and cfg.first_layer_bits is not None else wbits
        for i, sp in enumerate(self.specs):
            bits = first_bits if i == 0 else wbits
            if sp["kind"] == "linear":
                layer = TBLinear(sp["in_"], sp["out"], weight_bits=bits, **wkw)
                norm = nn.BatchNorm1d(sp["out"])
            else:
                conv = TBConv1d if sp["kind"] == "conv1d" else TBConv2d
                layer = conv(sp["in_"], sp["out"], sp["k"], stride=sp["stride"], padding=sp["pad"],
                             weight_bits=bits, **wkw)
                norm = (nn.BatchNorm1d if sp["kind"] == "conv1d" else nn.BatchNorm2d)(sp["out"])
            self.layers.append(layer)
            self.norms.append(norm)
            self.neurons.append(TemporalBinary(cfg.timesteps, grid=cfg.hidden_grid, features=math.prod(sp["out_shape"]),
                                               adaptive_threshold=cfg.adaptive_threshold, **nkw, **rkw)
                                if spiking else nn.ReLU())
        feat = math.prod(self.specs[-1]["out_shape"])
        rbits = cfg.readout_bits if spiking else None
        self.readout = TBLinear(feat, cfg.n_classes, weight_bits=rbits, **wkw)

    @property
    def layer_names(self) -> list[str]:
        """Names of the spiking layers in network order."""
        return ["input"] + [f"hidden{i + 1}" for i in range(len(self.layers))]

    def spike_layer_names(self) -> dict[str, str]:
        """Display name of each neuron module (``named_modules`` name -> ``input``, ``hidden1``, ...)."""
        if self.encoder is None:
            return {}
        return {"encoder": "input", **{f"neurons.{i}": f"hidden{i + 1}" for i in range(len(self.neurons))}}

    def forward(self, x: Tensor, evaluation: str | None = None, record: bool = False, *, mode: str | None = None):
        evaluation = renamed_keyword("TBNet.forward", "mode", "evaluation", mode, evaluation, None, stacklevel=6)
        if evaluation is not None:
            check_choice(evaluation, EVALUATIONS, "mode" if mode is not None else "evaluation")
        x = x.reshape(x.shape[0], *self.cfg.input_shape)
        codes: dict[str, SpikeCode] = {}
        h = self.encoder(x) if self.encoder is not None else x
        if isinstance(h, SpikeCode):
            codes["input"] = h
        for i, (layer, norm, neuron) in enumerate(zip(self.layers, self.norms, self.neurons)):
            h = neuron(norm(layer(h, evaluation)))
            if isinstance(h, SpikeCode):
                codes[f"hidden{i + 1}"] = h
        if isinstance(h, SpikeCode):
            h = replace(h, shape=None)  # the read-out takes the features flat
        else:
            h = h.flatten(1)
        logits = self.readout(h, evaluation)
        return (logits, codes) if record else logits


class LIFNet(nn.Module):
    """snnTorch leaky integrate-and-fire baseline (``lif``): same widths, surrogate gradient.

    Input: Bernoulli rate code over ``T`` steps of the min-max scaled input
    (``snntorch.spikegen.rate``); hidden: ``Linear``/``Conv`` -> ``snn.Leaky(beta, threshold)``
    with the fast-sigmoid surrogate; logits: the read-out current averaged over the ``T`` steps.
    Membrane update (reset by subtraction, Eshraghian et al. 2023, snnTorch):

    .. math::

        U_t = \\beta U_{t-1} + I_t - S_{t-1}\\,\\theta, \\qquad S_t = [U_t > \\theta]

    In training mode the input spikes are drawn from the global torch generator (seeded by
    the training seed and saved in checkpoints, so a resumed run repeats them). In eval mode
    they are drawn, sample by sample, from a ``torch.Generator`` seeded by ``cfg.input_seed``
    and the sample's own values: the evaluation of a sample is the same in every call,
    whatever the batch it is in and whatever the global random state.

    >>> net = LIFNet(ModelConfig(model="lif", hidden=8, timesteps=3)).eval()
    >>> x = torch.randn(5, 64)
    >>> bool(torch.equal(net(x), net(x))) and bool(torch.equal(net(x)[2:], net(x[2:])))
    True
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        self.cfg = cfg
        self.specs = _layer_specs(cfg)
        self.layers = nn.ModuleList()
        self.lifs = nn.ModuleList()
        for sp in self.specs:
            if sp["kind"] == "linear":
                self.layers.append(nn.Linear(sp["in_"], sp["out"]))
            else:
                conv = nn.Conv1d if sp["kind"] == "conv1d" else nn.Conv2d
                self.layers.append(conv(sp["in_"], sp["out"], sp["k"], stride=sp["stride"], padding=sp["pad"]))
            with torch.device("cpu"):  # scalar buffers; lets the net be built on the meta device
                self.lifs.append(snn.Leaky(beta=cfg.beta, threshold=cfg.threshold,
                                           spike_grad=surrogate.fast_sigmoid(slope=25)))
        self.readout = nn.Linear(math.prod(self.specs[-1]["out_shape"]), cfg.n_classes)

    @property
    def layer_names(self) -> list[str]:
        return ["input"] + [f"hidden{i + 1}" for i in range(len(self.layers))]

    def _eval_uniform(self, x: Tensor) -> Tensor:
        """Uniform draws ``[T, B, ...]``, each sample's from its own seeded generator."""
        import hashlib

        T = self.cfg.timesteps
        host = x.detach().to("cpu", torch.float32).contiguous()
        draws = []
        for row in host:
            h = hashlib.blake2b(row.numpy().tobytes(), digest_size=8,
                                key=int(self.cfg.input_seed).to_bytes(8, "little"))
            g = torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & (2**63 - 1))
            draws.append(torch.rand((T, *row.shape), generator=g))
        u = torch.stack(draws, 1) if draws else torch.empty((T, *x.shape))
        return u.to(x.device)

    def encode(self, x: Tensor) -> Tensor:
        """Rate code ``[T, B, ...]`` of ``x`` min-max scaled per sample to ``[0, 1]``."""
        flat = x.flatten(1)
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        v = ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape(x.shape)
        if self.training:
            u = torch.rand(self.cfg.timesteps, *x.shape, device=x.device)
        else:
            u = self._eval_uniform(x)
        return (u < v).to(x.dtype)

    def forward(self, x: Tensor, evaluation: str | None = None, record: bool = False, *, mode: str | None = None):
        """Logits ``[B, classes]`` (with ``record``: and the spikes); ``evaluation`` is
        :class:`TBNet`'s argument, without effect here (``mode``: its deprecated spelling)."""
        renamed_keyword("LIFNet.forward", "mode", "evaluation", mode, evaluation, None, stacklevel=6)
        x = x.reshape(x.shape[0], *self.cfg.input_shape)
        spikes_in = self.encode(x)
        mems = [lif.init_leaky() for lif in self.lifs]
        rec: dict[str, list[Tensor]] = {name: [] for name in self.layer_names}
        out = 0.0
        for t in range(self.cfg.timesteps):
            h = spikes_in[t]
            rec["input"].append(h)
            for i, (layer, lif) in enumerate(zip(self.layers, self.lifs)):
                h, mems[i] = lif(layer(h), mems[i])
                rec[f"hidden{i + 1}"].append(h)
            out = out + self.readout(h.flatten(1))
        logits = out / self.cfg.timesteps
        if not record:
            return logits
        return logits, {k: torch.stack(v).flatten(2).bool() for k, v in rec.items()}

    def record_spikes(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``(logits, {layer: bool [T, B, neurons]})`` (:class:`~tbnn.nn.protocol.SelfTimedNetwork`)."""
        return self.forward(x, record=True)

    def synaptic_targets(self, name: str) -> Tensor:
        """Synapses each neuron of the layer ``name`` reaches in the next layer (float64, per sample)."""
        i = self.layer_names.index(name)
        nxt = self.layers[i] if i < len(self.layers) else self.readout
        shape = self.cfg.input_shape if i == 0 else self.specs[i - 1]["out_shape"]
        if isinstance(nxt, nn.Conv1d | nn.Conv2d):
            conv = F.conv1d if isinstance(nxt, nn.Conv1d) else F.conv2d

            def op(x: Tensor, w: Tensor) -> Tensor:
                return conv(x, w, None, nxt.stride, nxt.padding, nxt.dilation, nxt.groups)

            return conv_fanout(op, nxt.weight, tuple(shape)).flatten()
        return torch.full((math.prod(shape),), float(nxt.out_features), dtype=torch.float64)


def build_model(cfg: ModelConfig | dict) -> nn.Module:
    """Build the model a config describes (a :class:`ModelConfig` or its dict)."""
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    return LIFNet(cfg) if cfg.model == "lif" else TBNet(cfg)


def weight_storage_bits(model: nn.Module) -> dict[str, int]:
    """Bits needed to store a model for inference.

    Quantized weights cost their code width per element (ternary: log2(3) bits) plus two
    32-bit scalars (gain, offset) per output channel; an ``M:N`` sparse weight stores
    ``M/N`` of its codes plus ``ceil(log2(C(N, M)))`` index bits per group of ``N``; a
    magnitude-pruned one stores its kept codes plus a 1-bit mask. Float tensors (float
    weights, biases, BatchNorm) cost 32 bits per element. Returns ``total``, ``quantized``
    (the quantized weights with their scales) and ``float`` bits.
    """

    quantized, dense = 0, 0
    counted: set[str] = set()
    for modname, mod in model.named_modules():
        if isinstance(mod, TBLayer) and mod.weight_bits is not None:
            w = mod.weight
            counted.add(f"{modname}.weight" if modname else "weight")  # a bare layer: no prefix
            n, out = w.numel(), w.shape[0]
            bits = math.log2(3) if mod.weight_bits == 1.5 else float(mod.weight_bits)
            sp = parse_sparsity(mod.sparsity)
            if isinstance(sp, tuple):
                keep, group = sp
                codes = n * keep / group * bits + (n / group) * math.ceil(math.log2(math.comb(group, keep)))
            elif isinstance(sp, float):
                codes = n * (1 - sp) * bits + n
            else:
                codes = n * bits
            quantized += math.ceil(codes) + 2 * 32 * out
    for name, t in model.state_dict().items():  # persistent tensors only
        if name in counted or not t.is_floating_point():
            continue
        dense += 32 * t.numel()
    return {"total": quantized + dense, "quantized": quantized, "float": dense}
