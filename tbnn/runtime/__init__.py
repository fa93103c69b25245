"""Layer 0, the machine: CPU facts and allocator (:mod:`~tbnn.runtime.machine`), device choice
(:mod:`~tbnn.runtime.device`), the scripts' ``--threads``
(:mod:`~tbnn.runtime.threads`). Imports nothing else of tbnn."""
