"""tbnn: temporal binary spiking networks trained with the denoising affine transform.

Ye et al., *Robust Training of Neural Networks at Arbitrary Precision and Sparsity*,
arXiv:2409.09245. Functional core: :mod:`tbnn.quant` (quantize, DAT), :mod:`tbnn.coding`
(encode, decode); modules: :mod:`tbnn.neurons`, :mod:`tbnn.layers`, :mod:`tbnn.models`;
workflows: :mod:`tbnn.train`, :mod:`tbnn.sim`, :mod:`tbnn.analysis`, :mod:`tbnn.plot`.
"""

__version__ = "0.1.0"

from .coding import SpikeCode, decode, encode  # noqa: E402
from .quant import fake_quantize, quantized_matmul, ridge_dequantize  # noqa: E402

__all__ = ["__version__", "SpikeCode", "decode", "encode", "fake_quantize", "quantized_matmul", "ridge_dequantize"]
