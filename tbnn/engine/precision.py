r"""Which arithmetic type the engine's integer products run in, chosen once per machine.

float32 is always exact for the engine's integer sums (below :math:`2^{24}`); int8
(``torch._int_mm``, int32 sums; CPU) is exact when every code and input lies within
:math:`\pm 127`; bfloat16 when every partial sum is an integer of magnitude :math:`\le 256`.
The low-precision types are chosen from the CPU's features, the same in every process (int8
with AVX-512 VNNI, AVX-VNNI or AMX-INT8; bfloat16 with AVX-512 BF16 or AMX-BF16), unless the
user ran :func:`calibrate`, which times them once and stores the order with the CPU's name
and the versions. ``TBNN_MATMUL_DTYPE`` / :func:`set_matmul_dtype` and ``TBNN_ENGINE`` /
:func:`set_engine` (packed or dense integer terms) override the choice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tbnn import __version__
from tbnn.io.cache import cache_dir
from tbnn.io.files import atomic_write
from tbnn.runtime.machine import cpu_info

__all__ = ["MATMUL_DTYPES", "ENGINES", "arithmetic", "arithmetic_available", "calibrate", "calibration_path", "stored_calibration", "engine_choice", "pinned_choices", "set_engine", "set_matmul_dtype", "feature_order", "int8_product", "product_type"]

#: choices of ``TBNN_MATMUL_DTYPE`` / :func:`set_matmul_dtype`
MATMUL_DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "int8")
#: choices of ``TBNN_ENGINE`` / :func:`set_engine`
ENGINES: tuple[str, ...] = ("auto", "packed", "dense")


# --------------------------------------------------------------------------------------
# arithmetic type: from the CPU's features, or a stored calibration

_OVERRIDE: dict[str, str] = {}
#: the choices held for a block of work (:func:`pinned_choices`), else ``None``
_PINNED: ContextVar[dict[str, str] | None] = ContextVar("tbnn_pinned_choices", default=None)
_PROBES: dict[str, dict[str, Any]] = {}
_FASTER = 0.8  # calibrate(): a low-precision type is used when its product takes < 0.8x float32's


def set_matmul_dtype(choice: str) -> None:
    """Force the engine's low-precision choice: ``auto`` (probe), ``float32``, ``bfloat16`` or ``int8``."""
    if choice not in MATMUL_DTYPES:
        raise ValueError(f"matmul dtype must be one of {', '.join(MATMUL_DTYPES)}; got {choice!r}.")
    _OVERRIDE["choice"] = choice


def set_engine(choice: str) -> None:
    """Force the engine for linear layers: ``auto`` (packed where the kernel runs), ``packed`` or ``dense``."""
    if choice not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {choice!r}.")
    _OVERRIDE["engine"] = choice


def _choice(key: str = "choice", env_name: str = "TBNN_MATMUL_DTYPE", allowed: tuple[str, ...] = MATMUL_DTYPES) -> str:
    pinned = _PINNED.get()
    if pinned is not None:
        return pinned[key]
    if key in _OVERRIDE:
        return _OVERRIDE[key]
    env = os.environ.get(env_name, "auto").strip().lower() or "auto"
    if env not in allowed:
        raise ValueError(f"{env_name} must be one of {', '.join(allowed)}; got {env!r}.")
    return env


@contextlib.contextmanager
def pinned_choices() -> Iterator[None]:
    """Read :func:`engine_choice` and the matmul choice once and hold them inside the block.

    A simulated batch asks for them a few times per layer, and each read of the environment
    costs about 2 us; :class:`tbnn.engine.session.SimulationSession` holds them for each batch.
    A :func:`set_engine` or an environment change made inside the block applies after it.

    >>> with pinned_choices():
    ...     engine_choice() in ENGINES
    True
    """
    token = _PINNED.set({"engine": _choice("engine", "TBNN_ENGINE", ENGINES), "choice": _choice()})
    try:
        yield
    finally:
        _PINNED.reset(token)


def engine_choice() -> str:
    """The engine asked for: :func:`set_engine`'s choice, else ``TBNN_ENGINE``, else ``auto``.

    >>> engine_choice() in ENGINES
    True
    """
    return _choice("engine", "TBNN_ENGINE", ENGINES)


def int8_product(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` of int8 matrices with int32 sums (exact below :math:`2^{31}`)."""
    return torch._int_mm(a, b, out=out) if out is not None else torch._int_mm(a, b)


def _int8_works(device: torch.device) -> bool:
    """Whether this torch has the int8 product on ``device`` and it is exact on a test product (cached).

    CPU only: on CUDA the int8 kernel has shape rules (rows > 16, multiples of 8) that
    have not been checked here.
    """
    return _int8_test(str(device))


@functools.cache
def _int8_test(where: str) -> bool:
    device = torch.device(where)
    if device.type != "cpu" or not hasattr(torch, "_int_mm"):
        return False
    a = torch.randint(-8, 8, (33, 24), dtype=torch.int8, device=device)
    b = torch.randint(-8, 8, (24, 40), dtype=torch.int8, device=device)
    try:
        got = int8_product(a[:, 3:21], b[3:21])  # strided rows, as the engine's blocks are
    except (RuntimeError, NotImplementedError):
        return False
    return bool(torch.equal(got.to(torch.int64), a[:, 3:21].to(torch.int64) @ b[3:21].to(torch.int64)))


def arithmetic_available(kind: str, device: str | torch.device = "cpu") -> bool:
    """Whether the product type ``kind`` (a :data:`MATMUL_DTYPES` entry) can run on ``device``.

    >>> arithmetic_available("float32")
    True
    """
    if kind not in MATMUL_DTYPES:
        raise ValueError(f"kind must be one of {', '.join(MATMUL_DTYPES)}; got {kind!r}.")
    return kind != "int8" or _int8_works(torch.device(device))


def _time_product(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Best time of two ``[256, 128] x [128, 256]`` block products of 0/1 values in ``dtype``."""
    a = torch.randint(0, 2, (2, 256, 128), device=device).to(dtype)
    b = torch.randint(0, 2, (2, 128, 256), device=device).to(dtype)
    if dtype == torch.int8:
        out = torch.empty(2, 256, 256, dtype=torch.int32, device=device)

        def product():
            for i in range(2):
                int8_product(a[i], b[i], out=out[i])
    else:
        def product():
            torch.bmm(a, b)
    product()  # warm-up
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        product()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _probe(device: torch.device) -> dict[str, Any]:
    key = str(device)
    if key not in _PROBES:
        times = {"float32": _time_product(torch.float32, device), "bfloat16": _time_product(torch.bfloat16, device)}
        if _int8_works(device):
            times["int8"] = _time_product(torch.int8, device)
        fast = sorted((k for k in times if k != "float32" and times[k] < _FASTER * times["float32"]),
                      key=times.__getitem__)
        _PROBES[key] = {**{f"{k}_ms": v * 1e3 for k, v in times.items()}, "int8_available": "int8" in times,
                        "order": fast}
    return _PROBES[key]


def calibration_path(device: str | torch.device = "cpu") -> Path | None:
    """Where :func:`calibrate` stores its result for ``device``'s type (``None``: the cache is off)."""
    folder = cache_dir()
    return None if folder is None else folder / f"arithmetic-{torch.device(device).type}.json"


@functools.cache
def _cpu() -> dict:
    return cpu_info()


def _machine() -> dict[str, str]:
    """What a stored calibration must match: the CPU's name and the torch and tbnn versions."""
    return {"cpu": _cpu()["model"], "torch": torch.__version__, "tbnn": __version__}


@functools.cache
def _stored(where: str) -> dict[str, Any] | None:
    """The stored calibration for ``where`` when it was made on this CPU with these versions."""
    path = calibration_path(where)
    try:
        data = json.loads(path.read_text()) if path is not None and path.is_file() else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or {k: data.get(k) for k in _machine()} != _machine():
        return None
    order = data.get("order")
    if not isinstance(order, list) or not set(order) <= {"int8", "bfloat16"}:
        return None
    return data


def stored_calibration(device: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The calibration stored for ``device``'s type on this CPU with these versions, or ``None``.

    ``None`` also when the file at :func:`calibration_path` was made on another CPU or with
    other torch / tbnn versions (it is then not used). Reads the file; times nothing.

    >>> found = stored_calibration("cpu")
    >>> found is None or set(found["order"]) <= {"int8", "bfloat16"}
    True
    """
    _stored.cache_clear()  # the file may have changed since the last look
    return _stored(str(torch.device(device)))


def calibrate(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Time the product types on ``device`` and store their order for every later process.

    Times two ``[256, 128] x [128, 256]`` products of 0/1 values in float32, bfloat16 and
    int8 (best of 5); a type is kept when it takes less than 0.8 x float32's time, fastest
    first. The result is written (atomically) to :func:`calibration_path` with the CPU's
    name and the torch and tbnn versions, and :func:`arithmetic` uses it while they match.
    Run it on a quiet machine: it is the one place where timings choose the arithmetic.
    Returns what was stored.
    """
    device = torch.device(device)
    _PROBES.pop(str(device), None)
    p = _probe(device)
    data = {**_machine(), "device": str(device), "order": list(p["order"]),
            "timings_ms": {k.removesuffix("_ms"): v for k, v in p.items() if k.endswith("_ms")}}
    path = calibration_path(device)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: fh.write(json.dumps(data, indent=1).encode()))
    _stored.cache_clear()
    return data


def feature_order(device: torch.device) -> tuple[list[str], str]:
    """The low-precision types ``device`` has fast units for (int8 first), and why."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return (["bfloat16"] if bf16 else []), f"CUDA {'with' if bf16 else 'without'} bfloat16"
    if device.type != "cpu":
        return [], f"{device.type}: float32"
    flags = _cpu()["flags"]
    order = (["int8"] if (flags.get("vnni") or flags.get("amx")) and _int8_works(device) else []) + \
        (["bfloat16"] if flags.get("bf16") else [])
    seen = ", ".join(k for k in ("avx2", "avx512", "vnni", "bf16", "amx") if flags.get(k)) or "none"
    return order, f"CPU features ({seen}): {', '.join(order) or 'no'} fast low-precision units"


def arithmetic(device: str | torch.device = "cpu") -> dict[str, Any]:
    r"""The engine's choice of product types on ``device``, and why.

    Returns ``{"low_precision": ..., "order": [...], "reason": ..., "calibration": {...} | None}``:
    ``order`` lists the low-precision types (``int8``, ``bfloat16``) to try, and
    ``low_precision`` is the first of them (or ``float32``). Each product uses the first
    type of ``order`` that is exact for it (int8: every code and input within
    :math:`\pm 127`, int32 sums; bfloat16: every partial sum an integer :math:`\le 256`),
    and float32 (float64 where float32 could round) otherwise. The order comes from the
    CPU's features (see the module), or from a stored :func:`calibrate` of this CPU and
    these versions; a forced choice (``TBNN_MATMUL_DTYPE`` or :func:`set_matmul_dtype`)
    makes it that one type. No timing runs here.

    >>> arithmetic()["low_precision"] in MATMUL_DTYPES
    True
    """
    device = torch.device(device)
    choice, order = _choice(), _order(device)
    low = order[0] if order else "float32"
    if choice != "auto":
        return {"low_precision": choice, "order": order, "reason": f"forced ({choice})", "calibration": None}
    stored = _stored(str(device))
    if stored is not None:
        timed = ", ".join(f"{k} {v:.3f} ms" for k, v in stored.get("timings_ms", {}).items())
        return {"low_precision": low, "order": order, "calibration": stored,
                "reason": f"stored calibration ({timed}) on {stored['cpu']}: {', '.join(order) or 'float32'}"}
    return {"low_precision": low, "order": order, "calibration": None, "reason": feature_order(device)[1]}


def _order(device: torch.device) -> list[str]:
    """The low-precision types to try on ``device``: stored by :func:`calibrate`, from the CPU's features, or forced."""
    choice = _choice()
    if choice == "auto":
        stored = _stored(str(device))
        order = stored["order"] if stored is not None else feature_order(device)[0]
        return [k for k in order if k != "int8" or _int8_works(device)]
    if choice == "int8" and not _int8_works(device):
        raise ValueError(f"matmul dtype int8 is not available on {device} with torch {torch.__version__}; "
                         "use auto, float32 or bfloat16.")
    return [] if choice == "float32" else [choice]


def product_type(device: torch.device, qmax: float, top: float, per: int) -> torch.dtype | None:
    """The fastest low-precision type exact for products of codes ``|Q| <= qmax`` and inputs
    ``|q| <= top`` over ``per`` terms, or ``None`` (use the term dtype)."""
    for kind in _order(device):
        if kind == "int8" and qmax <= 127 and top <= 127:
            return torch.int8
        if kind == "bfloat16" and qmax * per * top <= 256:
            return torch.bfloat16
    return None


