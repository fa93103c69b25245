"""Layer 2, modules: :mod:`~tbnn.nn.neurons` (``TemporalBinary``), :mod:`~tbnn.nn.layers`
(``TBLinear``, ``TBConv1d``, ``TBConv2d``), :mod:`~tbnn.nn.models` (the built-in networks),
:mod:`~tbnn.nn.regularize` (activity regulariser). Imports core, engine and io."""
