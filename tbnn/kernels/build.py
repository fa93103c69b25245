"""Build and load the compiled kernels (``popcount.c`` and ``neuron.c``, shipped as package data).

The C sources are compiled, as one unit, once per machine by the system's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``) into a shared library loaded with :mod:`ctypes`. One build serves
every CPU of a kind: the AVX-512 VPOPCNTDQ, AVX2 and POPCNT paths are functions compiled
with ``__attribute__((target(...)))`` and chosen at run time from the CPU's features
(``tb_best_path``); nothing is built with ``-march=native``.

The library lives in the user's cache folder (``$TBNN_CACHE/kernels``, else
``~/.cache/tbnn/kernels``; see :func:`tbnn.cache.cache_dir`) under a name keyed on the
SHA-256 of the source, the compiler command, the CPU's model and flags, and the torch and
tbnn versions, so that any change builds a new one. A build runs under an exclusive
``fcntl.flock`` on a lock file beside it (two processes, e.g. two torchrun ranks, never
build at once: the second waits, then loads the first's library); the compiler writes a
uniquely named temporary file which is renamed over the final name only when complete (a
killed build leaves no half library, and its lock dies with it). A cached library is loaded
only when it is a regular file owned by this user and writable by no one else.

>>> len(build_key("cc"))
24
>>> str(library_path("cc", Path("/tmp/k"))).startswith("/tmp/k/popcount-")
True
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import torch

from tbnn import __version__
from tbnn.io.cache import cache_dir

__all__ = ["BUILD_SECONDS", "SOURCE", "SOURCES", "build", "build_key", "compiler", "library_path", "load",
           "source_text"]

#: The kernel's C source file in this package (the file the build writes and compiles).
SOURCE = "popcount.c"
#: The C sources in this package, compiled as one translation unit in this order.
SOURCES = ("popcount.c", "neuron.c", "current.c")
#: Longest a build may take before it is abandoned (the kernel is then not used).
BUILD_SECONDS = 60
#: Compiler flags: optimised, position independent, no machine-specific code outside the
#: functions that ask for it by their ``target`` attribute, and no fused multiply-add
#: contraction (the fused read-out rounds each product and sum as torch does).
CFLAGS = ("-O3", "-shared", "-fPIC", "-fvisibility=hidden", "-std=gnu11", "-ffp-contract=off")


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set (and found), else ``cc``, ``gcc`` or ``clang``; ``None`` if none."""
    env = os.environ.get("CC", "").strip()
    for name in ([env] if env else []) + ["cc", "gcc", "clang"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def source_text() -> str:
    """The kernel's C source as shipped with the package: :data:`SOURCES` joined, one unit."""
    return "\n".join(resources.files(__package__).joinpath(name).read_text() for name in SOURCES)


def _cpu_signature() -> str:
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            if key.strip() in ("flags", "Features"):
                flags = " ".join(sorted(value.split()))
                break
    except OSError:
        pass
    return f"{platform.machine()}|{model}|{flags}"


def build_key(cc: str) -> str:
    """24 hex digits of the SHA-256 of the source, compiler and flags, CPU, torch and tbnn versions."""
    parts = [source_text(), cc, " ".join(CFLAGS), _cpu_signature(), torch.__version__, __version__]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def library_path(cc: str, folder: Path | None = None) -> Path | None:
    """Where the library for this machine lives (``None`` when the cache is disabled)."""
    folder = folder if folder is not None else (cache_dir() / "kernels" if cache_dir() is not None else None)
    return None if folder is None else folder / f"popcount-{build_key(cc)}.so"


def _trusted(path: Path) -> bool:
    """A regular file owned by this user that no one else can write."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def build(target: Path, cc: str) -> Path:
    """Compile the kernel to ``target`` under the lock (see the module); return it.

    Raises ``RuntimeError`` (one sentence) when the compiler fails or takes longer than
    :data:`BUILD_SECONDS`, ``OSError`` when the folder cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(target.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if _trusted(target):  # another process built it while this one waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tbnn-build-") as tmp:
            src = Path(tmp) / SOURCE
            src.write_text(source_text())
            out = Path(tmp) / target.name
            try:
                run = subprocess.run([cc, *CFLAGS, "-o", str(out), str(src)], capture_output=True, text=True,
                                     timeout=BUILD_SECONDS, check=False)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"the kernel build with {cc} took longer than {BUILD_SECONDS} s") from None
            if run.returncode != 0 or not out.is_file():
                last = (run.stderr.strip().splitlines() or ["no message"])[-1]
                raise RuntimeError(f"the kernel build with {cc} failed: {last}")
            os.chmod(out, 0o755)
            os.replace(out, target)  # atomic: readers see no library or a whole one
    return target


def load(folder: Path | None = None) -> ctypes.CDLL | None:
    """The kernel library, built first if needed; ``None`` when there is no compiler.

    With the cache disabled (``TBNN_CACHE=off``) it is built in a private temporary folder,
    loaded, and the folder removed (every process then builds its own, about a second).

    Raises ``RuntimeError`` / ``OSError`` when a build fails (the caller falls back to the
    dense engine and says so).
    """
    cc = compiler()
    if cc is None:
        return None
    target = library_path(cc, folder)
    if target is None:
        with tempfile.TemporaryDirectory(prefix="tbnn-kernel-") as tmp:
            lib = ctypes.CDLL(str(build(library_path(cc, Path(tmp)), cc)))  # mapped: the file may go
        return _declare(lib)
    if not _trusted(target):
        build(target, cc)
    return _declare(ctypes.CDLL(str(target)))


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """The argument and result types of the library's functions."""
    i64, p = ctypes.c_int64, ctypes.c_void_p
    lib.tb_pack.argtypes = [ctypes.c_int, p, i64, i64, i64, i64, p]
    lib.tb_pack.restype = None
    lib.tb_pack_code.argtypes = [ctypes.c_int, p, i64, i64, i64, i64, i64, p]
    lib.tb_pack_code.restype = i64
    lib.tb_terms.argtypes = [ctypes.c_int, p, i64, i64, p, p, i64, p, i64, i64, i64, p, p, p, p, i64, p, p, i64, p, p, p,
                             i64]
    lib.tb_block_sums.argtypes = [ctypes.c_int, p, i64, i64, p, i64, i64, p]
    lib.tb_block_sums.restype = None
    lib.tb_linear_current.argtypes = [ctypes.c_int, p, i64, i64, p, p, i64, p, i64, i64, i64, p, p, p, p, p, i64, p]
    lib.tb_linear_current.restype = ctypes.c_int
    lib.tb_terms.restype = ctypes.c_int
    lib.tb_fire.argtypes = [ctypes.c_int, p, p, i64, i64, p, p, p]
    lib.tb_fire.restype = i64
    lib.tb_neuron.argtypes = [ctypes.c_int, p, i64, i64, i64, ctypes.c_int, ctypes.c_int, ctypes.c_float, i64, p, p,
                              p, p, p, p, p, p]
    lib.tb_neuron.restype = i64
    lib.tb_dat_fit.argtypes = [ctypes.c_int, p, p, p, i64, i64, i64, ctypes.c_int, ctypes.c_float, ctypes.c_int, p, p]
    lib.tb_dat_fit.restype = None
    lib.tb_and_popcount.argtypes = [ctypes.c_int, p, p, i64, i64]
    lib.tb_and_popcount.restype = i64
    lib.tb_best_path.argtypes = []
    lib.tb_best_path.restype = ctypes.c_int
    lib.tb_path_name.argtypes = [ctypes.c_int]
    lib.tb_path_name.restype = ctypes.c_char_p
    return lib
