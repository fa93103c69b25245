"""Compiled kernels: the packed AND + popcount engine of binary layers (:mod:`tbnn.kernels.packed`),
the binary neuron's integrate-and-fire, checked against its code in the same pass
(:mod:`tbnn.kernels.fire`), and the whole binary neuron of a simulation, grid, codes, firing and
check in one pass (:mod:`tbnn.kernels.neuron`).

The C source ships with the package and is built on first use (:mod:`tbnn.kernels.build`);
with no compiler the engine keeps its dense products (one line on stderr says so).
"""

from .packed import (
    PackedWeights,
    Planes,
    bit_planes,
    block_terms,
    kernel,
    kernel_path,
    pack_bits,
    pack_weights,
    row_terms,
    step_planes,
)

__all__ = ["PackedWeights", "Planes", "bit_planes", "block_terms", "kernel", "kernel_path", "pack_bits",
           "pack_weights", "row_terms", "step_planes"]
