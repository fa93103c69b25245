"""Functional core: quantization as additive noise, undone by the denoising affine transform.

Implements the method of Ye et al., *Robust Training of Neural Networks at Arbitrary
Precision and Sparsity*, arXiv:2409.09245, §3. Every function here is
a pure function on tensors and is differentiable.

For a tensor ``x`` cut into blocks of ``B`` contiguous elements along ``dim`` (the axis a
following matmul contracts):

1. grid map ``u = f(x)``: affine ``u = L (x - lo) / (hi - lo) - 1/2`` on a grid of ``L = 2^k``
   levels (``lo``, ``hi`` detached block statistics), or linear ``u = x / s`` for ternary and
   sparse codes;
2. quantization as additive noise ``q = u + sg(round_clip(u) - u)``: the rounding residual is
   the only detached quantity;
3. ridge dequantization of the *original* ``x`` on ``q`` within the block::

       g(q) = Cov(x, q) / (Var(q) + lam) * (q - mean q) + mean x        (affine)
       g(q) = mean(q x) / (mean(q^2) + lam) * q                          (linear)

   with population statistics. Gradients flow through ``q`` and every statistic.

The STE baseline replaces ``g`` by the fixed inverse grid map ``x^ = s_f q + b_f``.

One file per job: :mod:`.spec` (what is accepted), :mod:`.blocks`, :mod:`.ridge` (the
read-out), :mod:`.sparsity`, :mod:`.grid` (codes, :class:`BlockCodes`), :mod:`.fast` (the fused
autograd path), :mod:`.dat` (``quantize``, ``fake_quantize``), :mod:`.matmul`, :mod:`.running` (statistics
pooled over samples, for grids and read-outs that do not depend on the sample).

Every dequantized block is affine in its integer codes, ``x^ = gain * q + offset``; the
:class:`BlockCodes` record holds exactly that, which gives the integer matmul shortcut
:func:`quantized_matmul`.
"""

from __future__ import annotations

from tbnn.core.quant.blocks import from_blocks, to_blocks
from tbnn.core.quant.dat import fake_quantize, quantize, quantize_reference
from tbnn.core.quant.fast import affine_fast, compile_wanted, grid_values
from tbnn.core.quant.grid import BlockCodes, affine_codes, dequantize, grid_range
from tbnn.core.quant.matmul import quantized_matmul
from tbnn.core.quant.running import block_scale, pooled_fit
from tbnn.core.quant.ridge import ridge_dequantize, ridge_fit
from tbnn.core.quant.sparsity import magnitude_mask, nm_mask
from tbnn.core.quant.spec import (
    GRIDS,
    METHODS,
    TARGETS,
    WEIGHT_BITS,
    QuantSpec,
    check_finite,
    parse_sparsity,
    validate_bits,
)

__all__ = ["QuantSpec", "TARGETS", "WEIGHT_BITS", "METHODS", "GRIDS", "BlockCodes", "ridge_dequantize", "ridge_fit", "fake_quantize", "quantize", "grid_values", "dequantize", "quantized_matmul", "nm_mask", "magnitude_mask", "parse_sparsity", "validate_bits", "check_finite", "to_blocks", "from_blocks", "grid_range", "quantize_reference", "compile_wanted", "affine_fast", "affine_codes", "block_scale", "pooled_fit"]
