"""The machine a measurement ran on: CPU model and the vector units that decide its speed.

Speed figures mean little without the CPU they were measured on: bfloat16 and int8
arithmetic is fast only where the CPU has units for it (AVX-512 BF16, AMX), so every
benchmark prints :func:`describe_cpu` next to its tables.

>>> info = cpu_info()
>>> sorted(info["flags"])
['amx', 'avx2', 'avx512', 'bf16']
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_info", "describe_cpu"]

#: Summary flags and the ``/proc/cpuinfo`` (``lscpu``) flags that imply each.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "bf16": ("avx512_bf16", "amx_bf16"),
    "amx": ("amx_tile", "amx_bf16", "amx_int8"),
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
    """``{"model": str, "cpus": int, "flags": {"avx2", "avx512", "bf16", "amx": bool}, "raw": [...]}``.

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
    """One line: the CPU model, its logical CPUs and which of AVX2 / AVX-512 / BF16 / AMX it has."""
    info = cpu_info()
    yn = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["flags"].items())
    raw = f" ({' '.join(info['raw'])})" if info["raw"] else ""
    return f"CPU: {info['model']}, {info['cpus']} logical CPUs; {yn}{raw}"
