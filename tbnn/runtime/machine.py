"""The machine a measurement ran on: CPU model and the vector units that decide its speed.

Speed figures mean little without the CPU they were measured on: bfloat16 and int8
arithmetic is fast only where the CPU has units for it (AVX-512 BF16, AMX), so every
benchmark prints :func:`describe_cpu` next to its tables.

>>> info = cpu_info()
>>> sorted(info["flags"])
['amx', 'avx2', 'avx512', 'bf16', 'vnni']
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_info", "describe_cpu", "tune_allocator", "describe_allocator"]

#: Summary flags and the ``/proc/cpuinfo`` (``lscpu``) flags that imply each.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "bf16": ("avx512_bf16", "amx_bf16"),
    "amx": ("amx_tile", "amx_bf16", "amx_int8"),
    "vnni": ("avx512_vnni", "avx_vnni", "amx_int8"),
}


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _proc_cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "flags") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def cpu_info() -> dict:
    """``{"model": str, "cpus": int, "flags": {"avx2", "avx512", "bf16", "amx", "vnni": bool}, "raw": [...]}``.

    Read from ``lscpu`` (else ``/proc/cpuinfo``, else :func:`platform.processor`); flags that
    cannot be read are reported ``False``. ``raw`` lists the matching raw flag names.
    """
    ls = _lscpu()
    proc = _proc_cpuinfo() if not ls.get("Flags") or not ls.get("Model name") else {}
    model = ls.get("Model name") or proc.get("model name") or platform.processor() or platform.machine()
    raw = set((ls.get("Flags") or proc.get("flags") or "").split())
    flags = {name: any(f in raw for f in names) for name, names in FLAG_GROUPS.items()}
    hits = sorted(f for names in FLAG_GROUPS.values() for f in names if f in raw)
    return {"model": model or "unknown CPU", "cpus": os.cpu_count() or 1, "flags": flags, "raw": hits}


def describe_cpu() -> str:
    """One line: the CPU model, its logical CPUs and which of AVX2 / AVX-512 / BF16 / AMX / VNNI it has."""
    info = cpu_info()
    yn = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["flags"].items())
    raw = f" ({' '.join(info['raw'])})" if info["raw"] else ""
    return f"CPU: {info['model']}, {info['cpus']} logical CPUs; {yn}{raw}"


#: glibc ``mallopt`` parameters (``malloc.h``)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_MAX = 32 << 20  # glibc's ceiling for the mmap threshold on 64-bit machines


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc's malloc reuse freed memory instead of handing it back to the system.

    PyTorch's CPU tensors come from ``malloc``. With glibc's defaults a block above the
    mmap threshold (128 KiB at start, raised as such blocks are freed) is mapped afresh
    each time and page-faulted as it is first written, and free memory at the top of the
    heap beyond the trim threshold is returned to the system. The simulator makes
    megabyte-sized temporaries in every batch, so how often it page-faults depends on what
    the process did before: on the digits MLP, in fresh processes, the step engine took
    up to 1,010 minor page faults per pass of the test split (6.7–9.0 ms of CPU) and at
    most 10 once tuned (6.5–7.1 ms) (``benchmarks/bench_malloc.py``).

    This sets the mmap threshold to ``mmap_threshold`` (at most 32 MiB) and the trim
    threshold to ``trim_threshold``, **for the whole process**: up to ``trim_threshold``
    bytes of freed memory stay with the process. The ``tbnn`` command calls it; a Python
    program calls it when it wants the same. Returns whether it was applied (``False``
    off glibc, e.g. on macOS or musl, where it does nothing).

    Raises
    ------
    ValueError
        ``mmap_threshold`` is not in ``1 .. 32 MiB``, or ``trim_threshold`` is negative.

    >>> tune_allocator(mmap_threshold=64 << 20)
    Traceback (most recent call last):
    ...
    ValueError: mmap_threshold must be between 1 and 33554432 bytes (glibc's ceiling); got 67108864.
    """
    if isinstance(mmap_threshold, bool) or not isinstance(mmap_threshold, int) or not 1 <= mmap_threshold <= _MMAP_MAX:
        raise ValueError(f"mmap_threshold must be between 1 and {_MMAP_MAX} bytes (glibc's ceiling); "
                         f"got {mmap_threshold!r}.")
    if isinstance(trim_threshold, bool) or not isinstance(trim_threshold, int) or trim_threshold < 0:
        raise ValueError(f"trim_threshold must be a non-negative number of bytes; got {trim_threshold!r}.")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                        trim_threshold))


def describe_allocator(tuned: bool) -> str:
    """One line for a benchmark's header: how ``malloc`` was set (``tuned``: :func:`tune_allocator` applied).

    >>> describe_allocator(False)
    'allocator: malloc at its defaults'
    """
    if tuned:
        return "allocator: glibc malloc keeps freed memory (tbnn.runtime.machine.tune_allocator, as the tbnn command)"
    return "allocator: malloc at its defaults"
