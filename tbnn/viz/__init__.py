"""Layer 2, figures: :mod:`~tbnn.viz.style` (one look for every figure) and
:mod:`~tbnn.viz.plot` (rasters and panels). Imports io."""
