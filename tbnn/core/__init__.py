"""Layer 0, the functional core: pure functions on tensors.

:mod:`~tbnn.core.quant` (grids, the ridge read-out, sparsity, the DAT), :mod:`~tbnn.core.codes`
(one file per spike code), :mod:`~tbnn.core.coding` (encode / decode by name),
:mod:`~tbnn.core.codespec` (a neuron's code as one validated record), :mod:`~tbnn.core.firing`
(integrate-and-fire), :mod:`~tbnn.core.validate` (argument checks), :mod:`~tbnn.core.deprecation`
(old names that warn).
Imports nothing else of tbnn.
"""
