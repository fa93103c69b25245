"""Devices: check a requested device against what this torch build and machine offer.

:func:`resolve_device` accepts ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` (or a
``torch.device``) and refuses, in one sentence, a name torch does not know, a kind this
build lacks (``cuda`` on a CPU-only build) or an index beyond the devices present.
"""

from __future__ import annotations

import re
from typing import Any

import torch

__all__ = ["DEVICE_KINDS", "resolve_device", "default_device", "seed_device"]

#: The device kinds tbnn runs on.
DEVICE_KINDS: tuple[str, ...] = ("cpu", "cuda", "mps")

_NAME = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Any = None, name: str = "device") -> torch.device:
    """The ``torch.device`` for ``device`` (``None``: :func:`default_device`), checked.

    Raises
    ------
    ValueError
        ``device`` is not ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, or this torch build or
        machine does not have it (one sentence naming ``name``).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("bogus")
    Traceback (most recent call last):
    ValueError: device must be cpu, cuda, cuda:N or mps; got 'bogus'.
    """
    if device is None:
        return default_device()
    text = str(device) if isinstance(device, torch.device) else device
    m = _NAME.match(text.strip().lower()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or mps; got {device!r}.")
    kind, index = m[1], m[2]
    if kind == "cpu":
        if index not in (None, "0"):
            raise ValueError(f"{name} {text!r}: the CPU has no index other than 0; use 'cpu'.")
        return torch.device("cpu")
    if kind == "cuda":
        if torch.version.cuda is None and not getattr(torch.version, "hip", None):
            raise ValueError(f"{name} {text!r} is not available: this torch build ({torch.__version__}) has no "
                             f"CUDA support; use 'cpu' or install a CUDA build of torch.")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{name} {text!r} is not available: no CUDA device is visible to this process; use 'cpu'.")
        if index is not None and int(index) >= count:
            raise ValueError(f"{name} {text!r} is not available: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}.")
        return torch.device(text.strip().lower())
    if not _mps_available():
        raise ValueError(f"{name} {text!r} is not available: this torch build or machine has no Apple MPS "
                         f"backend; use 'cpu'.")
    return torch.device("mps")


def seed_device(seed: int, device: torch.device) -> None:
    """Seed the default random generator of ``device`` (and the CPU's), as ``torch.manual_seed``
    does for the draws made there, without its calls for every other backend: on a CPU-only
    machine those record a stack trace each time (about 0.1 ms a call; ``tbnn.simulate`` and
    ``tbnn.evaluate`` seed once or twice per batch).

    >>> seed_device(3, torch.device("cpu")); a = torch.rand(2)
    >>> torch.manual_seed(3); bool(torch.equal(a, torch.rand(2)))  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    True
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)

