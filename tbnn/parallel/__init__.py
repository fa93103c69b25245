"""Layer 2, torch.distributed: :mod:`~tbnn.parallel.distributed` (``torchrun`` set-up, sharding,
reductions). Imports core, runtime and io."""
