"""Bounded reading of ``.npz`` archives: every member's size, header and CRC checked before an
array is made.

NumPy's ``np.load`` trusts an archive: it allocates whatever shape a member's ``.npy``
header declares (a few bytes can claim terabytes), decompresses without limit (a small
zip bomb fills memory) and never checks the zip CRC-32 of a member (a flipped bit in the
compressed data silently changes the values). :func:`open_npz` checks, in this order and
before NumPy reads anything:

1. the path is a file (not a folder, not a symlink loop) and a zip archive (a lone ``.npy``
   is named as such);
2. every member's declared uncompressed size, and their sum, against :func:`max_bytes`;
3. every member's ``.npy`` header: its shape times its item size must fit the limit and
   equal the member's size less the header (no pickled object arrays);
4. the members fill the file from its start to the central directory (a damaged directory
   cannot hide a member, such as an archive's ``labels``);
5. every member's CRC-32 (:meth:`zipfile.ZipFile.testzip`, streamed in bounded memory).

The limit is ``TBNN_MAX_BYTES`` (bytes) when set, else a quarter of the machine's RAM.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["MAX_BYTES_ENV", "max_bytes", "check_size", "open_npz"]

#: Environment variable that sets the largest input (bytes) tbnn reads into memory.
MAX_BYTES_ENV = "TBNN_MAX_BYTES"


def _ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def max_bytes() -> int:
    """Largest number of bytes one input may make tbnn allocate.

    ``TBNN_MAX_BYTES`` when set (an integer >= 1), else a quarter of the RAM.

    Raises
    ------
    ValueError
        ``TBNN_MAX_BYTES`` is not an integer >= 1.

    >>> import os
    >>> os.environ["TBNN_MAX_BYTES"] = "1000"
    >>> max_bytes()
    1000
    >>> del os.environ["TBNN_MAX_BYTES"]
    >>> max_bytes() > 0
    True
    """
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return max(1, _ram_bytes() // 4)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"environment variable {MAX_BYTES_ENV} must be an integer number of bytes >= 1; got {text!r}.")
    return value


def check_size(nbytes: float, what: str) -> None:
    """Refuse ``nbytes`` (what ``what`` would allocate) above :func:`max_bytes`, in one sentence.

    >>> check_size(10, "x")
    >>> check_size(1e30, "the recording's bins")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the recording's bins would need 1e+30 bytes, more than the limit of ... (set TBNN_MAX_BYTES to change it).
    """
    limit = max_bytes()
    if not math.isfinite(nbytes) or nbytes > limit:
        raise ValueError(f"{what} would need {nbytes:.3g} bytes, more than the limit of {limit} bytes "
                         f"(set {MAX_BYTES_ENV} to change it).")


def _npy_payload(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> None:
    """Check one member's ``.npy`` header against its size and the limit."""
    fmt = np.lib.format
    with zf.open(info) as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh, max_header_size=100_000)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(fh, max_header_size=100_000)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        header = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{what}: member {info.filename} is a pickled object array, which tbnn never loads")
    count = math.prod(int(s) for s in shape)
    nbytes = count * dtype.itemsize
    check_size(nbytes, f"{what}: member {info.filename} (shape {list(shape)}, {dtype})")
    if header + nbytes != info.file_size:
        raise ValueError(f"{what}: member {info.filename} declares shape {list(shape)} of {dtype} "
                         f"({nbytes} bytes) but holds {info.file_size - header}")


def _check_layout(path: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive whose members do not fill it from the start to the central directory
    (a damaged directory that hides members: its entry count, sizes or offsets changed)."""
    pos = 0
    with open(path, "rb") as fh:
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset != pos:
                raise ValueError(f"member {info.filename} starts at byte {info.header_offset}, expected {pos}")
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"member {info.filename} has no local header")
            n, m = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            pos = info.header_offset + 30 + n + m + info.compress_size
            if info.flag_bits & 0x8:  # a data descriptor follows the data
                fh.seek(pos)
                pos += 16 if fh.read(4) == b"PK\x07\x08" else 12
    if pos != zf.start_dir:
        raise ValueError(f"its members end at byte {pos} but its directory starts at byte {zf.start_dir}")


def open_npz(path: str | os.PathLike, what: str = "npz file") -> np.lib.npyio.NpzFile:
    """Open an ``.npz`` archive after checking sizes, headers and CRCs (see the module docstring).

    Parameters
    ----------
    path : the archive.
    what : how to name it in messages (``"npz dataset"``, ``"spikes archive"``, ...).

    Returns
    -------
    The open ``NpzFile`` (use it as a context manager), loaded with ``allow_pickle=False``.

    Raises
    ------
    ValueError
        One sentence naming ``what`` and the path: absent, a folder, a lone ``.npy``, not a
        zip archive, a member over the limit or whose header disagrees with its size, a
        pickled member, a member whose CRC-32 fails (corrupt).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> np.savez_compressed(f, x=np.arange(3))
    >>> with open_npz(f) as z:
    ...     z["x"].tolist()
    [0, 1, 2]
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a folder, not an .npz file.")
        if not path.is_file():
            raise ValueError(f"{what} {path} does not exist.")
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as err:  # a symlink loop, a permission problem
        raise ValueError(f"{what} {path} cannot be read ({err.strerror or err}).") from None
    if magic == b"\x93NUMPY":
        raise ValueError(f"{what} {path} is a single .npy array, not an .npz archive; save it with "
                         f"numpy.savez(path, name=array).")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = 0
            for info in infos:
                if info.flag_bits & 0x1:
                    raise ValueError(f"{what} {path}: member {info.filename} is encrypted, which tbnn does not read")
                total += info.file_size
                check_size(info.file_size, f"{what} {path}: member {info.filename}")
            check_size(total, f"{what} {path} ({len(infos)} members)")
            _check_layout(path, zf, infos)
            for info in infos:
                if info.filename.endswith(".npy"):
                    _npy_payload(zf, info, f"{what} {path}")
            bad = zf.testzip()
            if bad is not None:
                raise ValueError(f"{what} {path} is corrupt: member {bad} fails its CRC-32 check")
    except ValueError as err:
        text = str(err)
        if text.startswith(what):
            raise ValueError(text if text.endswith(".") else text + ".") from None
        raise ValueError(f"{what} {path} is corrupt ({text}).") from None
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a {what} ({err}; an .npz is a zip archive of .npy arrays).") from None
    except (zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
            SyntaxError, KeyError, TypeError, OverflowError, MemoryError) as err:
        raise ValueError(f"{what} {path} is corrupt or not an .npz archive ({type(err).__name__}: {err}).") from None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{what} {path} cannot be read as .npz ({err}).") from None
