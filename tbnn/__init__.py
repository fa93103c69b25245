"""tbnn: temporal binary spiking networks trained with the denoising affine transform.

Ye et al., *Robust Training of Neural Networks at Arbitrary Precision and Sparsity*,
arXiv:2409.09245. Functional core: :mod:`tbnn.quant` (quantize, DAT), :mod:`tbnn.codes`
(one class per spike code), :mod:`tbnn.coding` (encode, decode), :mod:`tbnn.engine`
(exact integer-code arithmetic); modules: :mod:`tbnn.neurons`, :mod:`tbnn.layers`,
:mod:`tbnn.models`; workflows: :mod:`tbnn.train` (``fit``), :mod:`tbnn.sim`
(``simulate``), :mod:`tbnn.analysis`, :mod:`tbnn.plot`.

The names below are imported on first use (module ``__getattr__``), so ``import tbnn``
and ``tbnn --help`` do not import torch.

>>> import tbnn
>>> [n for n in ("TemporalBinary", "TBLinear", "TBConv1d", "TBConv2d", "simulate", "fit") if n in tbnn.__all__]
['TemporalBinary', 'TBLinear', 'TBConv1d', 'TBConv2d', 'simulate', 'fit']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "SpikeCode": "coding",
    "encode": "coding",
    "decode": "coding",
    "fake_quantize": "quant",
    "quantized_matmul": "quant",
    "ridge_dequantize": "quant",
    "TemporalBinary": "neurons",
    "TBLinear": "layers",
    "TBConv1d": "layers",
    "TBConv2d": "layers",
    "fit": "train",
    "simulate": "sim",
    "SimulationResult": "sim",
    "save_weights": "checkpoint",
    "load_weights": "checkpoint",
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
