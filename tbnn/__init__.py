"""tbnn: temporal binary spiking networks trained with the denoising affine transform.

Ye et al., *Robust Training of Neural Networks at Arbitrary Precision and Sparsity*,
arXiv:2409.09245. Subpackages by layer, each importing only those below it:
:mod:`tbnn.core` (quantize, DAT, spike codes, encode / decode, firing) and
:mod:`tbnn.runtime` (machine, device); :mod:`tbnn.engine` (exact integer arithmetic) and
:mod:`tbnn.io` (files, checkpoints, spike archives, datasets, recordings); :mod:`tbnn.nn`
(neurons, layers, models), :mod:`tbnn.parallel` and :mod:`tbnn.viz`; :mod:`tbnn.train`
(``fit``), :mod:`tbnn.sim` (``simulate``) and :mod:`tbnn.analysis`; the command line on top.

The names below are imported on first use (module ``__getattr__``), so ``import tbnn``
and ``tbnn --help`` do not import torch.

>>> import tbnn
>>> [n for n in ("TemporalBinary", "TBLinear", "TBConv1d", "TBConv2d", "simulate", "fit") if n in tbnn.__all__]
['TemporalBinary', 'TBLinear', 'TBConv1d', 'TBConv2d', 'simulate', 'fit']
"""

from __future__ import annotations

from tbnn.runtime import interrupt

if interrupt.launched_as_cli():  # the tbnn command: Ctrl-C from here on is one line and exit 130
    interrupt.exit_on_interrupt()

import importlib  # noqa: E402
from typing import Any  # noqa: E402

from tbnn import compat  # noqa: E402

compat.install()  # old module paths (tbnn.quant, tbnn.engine, ...) keep importing

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "SpikeCode": "core.coding",
    "CodeSpec": "core.codespec",
    "encode": "core.coding",
    "decode": "core.coding",
    "fake_quantize": "core.quant",
    "quantized_matmul": "core.quant",
    "ridge_dequantize": "core.quant",
    "TemporalBinary": "nn.neurons",
    "TBLinear": "nn.layers",
    "TBConv1d": "nn.layers",
    "TBConv2d": "nn.layers",
    "fit": "train.trainer",
    "simulate": "sim.simulator",
    "SimulationResult": "sim.simulator",
    "save_weights": "io.checkpoint",
    "load_weights": "io.checkpoint",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tbnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
