"""MNIST / Fashion-MNIST IDX files: read and write, with every header field checked."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tbnn.io.datasets.spec import (
    IDX_FILES,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    IDX_UBYTE,
    MAX_IDX_BYTES,
    RawArrays,
)

__all__ = ["write_idx", "read_idx"]


# --------------------------------------------------------------------------- IDX files


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write an unsigned-byte array as an IDX file (gzipped if ``path`` ends in ``.gz``).

    A 3-D array ``(n, rows, cols)`` gives an image file (magic 2051), a 1-D array a
    label file (magic 2049); any dimensionality from 1 to 255 is written.

    Args:
        path: destination file; parent directories must exist.
        array: integer array with values in ``[0, 255]``.

    Returns:
        The path written.

    Raises:
        ValueError: if the array is 0-D, has more than 255 dimensions, is not of an
            integer (or bool) dtype, or holds values outside ``[0, 255]``.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim < 1 or arr.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {arr.ndim}")
    if arr.dtype != np.uint8:
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"write_idx: array of dtype {arr.dtype} is not an integer array")
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("write_idx: values must lie in [0, 255] for an unsigned-byte file")
        arr = arr.astype(np.uint8)
    magic = (IDX_UBYTE << 8) | arr.ndim
    header = np.array([magic, *arr.shape], dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or ``.gz``) into a uint8 numpy array.

    The magic number, the dimensions and the file size are checked against the header.

    Args:
        path: the file.
        expected_magic: if given, the magic number the file must have (2051 for image
            files, 2049 for label files).

    Returns:
        Array of shape given by the header.

    Raises:
        ValueError: naming the file, if it is not valid gzip (for ``.gz``), its magic
            number is wrong or not an unsigned-byte IDX one, a dimension is zero, or its
            size does not match the header (truncated or trailing data).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            head = fh.read(4)
            magic = _idx_magic(path, head, expected_magic)
            ndim = magic & 0xFF
            header_len = 4 + 4 * ndim
            rest = fh.read(4 * ndim)
            if len(rest) < 4 * ndim:
                raise ValueError(
                    f"IDX file {path}: {4 + len(rest)} bytes, too short for a {ndim}-dimensional header "
                    f"of {header_len} bytes"
                )
            dims = tuple(int(d) for d in np.frombuffer(rest, dtype=">u4", count=ndim))
            if any(d == 0 for d in dims):
                raise ValueError(f"IDX file {path}: header dimensions {dims} include a zero")
            body = int(np.prod(dims, dtype=object))
            if body > MAX_IDX_BYTES:
                raise ValueError(
                    f"IDX file {path}: header dimensions {dims} declare {body} bytes of data, more than "
                    f"the {MAX_IDX_BYTES} tbnn reads (tbnn.io.datasets.MAX_IDX_BYTES)"
                )
            if opener is open and path.stat().st_size != header_len + body:
                data_len = path.stat().st_size  # wrong size: refused below, nothing read
            else:
                # read at most one byte more than the header declares: a decompression bomb
                # or trailing data is caught without inflating more than that
                payload = fh.read(body + 1)
                data_len = header_len + len(payload)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"IDX file {path}: cannot be read ({exc})") from None
    expected = header_len + body
    if data_len != expected:
        what = "truncated" if data_len < expected else "has trailing data"
        raise ValueError(
            f"IDX file {path}: {what}: size {data_len} bytes does not match the header "
            f"(dimensions {dims} need {expected} bytes)"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


def _idx_magic(path: Path, head: bytes, expected_magic: int | None) -> int:
    """The magic number of an IDX file from its first 4 bytes, checked."""
    if len(head) < 4:
        raise ValueError(
            f"IDX file {path}: only {len(head)} bytes, too short for a 4-byte magic number"
        )
    magic = int(np.frombuffer(head, dtype=">u4", count=1)[0])
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"IDX file {path}: magic number {magic} (0x{magic:08x}), expected "
            f"{expected_magic} (0x{expected_magic:08x})"
        )
    if magic >> 8 != IDX_UBYTE or magic & 0xFF == 0:
        raise ValueError(
            f"IDX file {path}: magic number {magic} (0x{magic:08x}) is not an "
            "unsigned-byte IDX magic number (0x000008NN)"
        )
    return magic


def _find_idx_file(directory: Path, base: str) -> Path:
    """Return ``directory/base`` or ``directory/base.gz``, whichever exists (plain first)."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"IDX dataset {directory}: neither {base} nor {base}.gz found")


def raw_idx(directory: str | Path) -> RawArrays:
    """Load and validate the four MNIST-style IDX files in ``directory``."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"IDX dataset directory {directory} does not exist")
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "test"):
        img_path = _find_idx_file(directory, IDX_FILES[f"{split}_images"])
        lab_path = _find_idx_file(directory, IDX_FILES[f"{split}_labels"])
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(lab_path, IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"IDX file {lab_path}: {labels.shape[0]} labels but {img_path} holds "
                f"{images.shape[0]} images"
            )
        splits[split] = (images, labels)
    train_hw = splits["train"][0].shape[1:]
    test_hw = splits["test"][0].shape[1:]
    if train_hw != test_hw:
        raise ValueError(
            f"IDX dataset {directory}: test images are {test_hw[0]}x{test_hw[1]} but "
            f"training images are {train_hw[0]}x{train_hw[1]}"
        )
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    return RawArrays(
        x_train=xtr.reshape(xtr.shape[0], -1).astype(np.float64) / 255.0,
        y_train=ytr.astype(np.int64),
        x_test=xte.reshape(xte.shape[0], -1).astype(np.float64) / 255.0,
        y_test=yte.astype(np.int64),
        image_shape=(int(train_hw[0]), int(train_hw[1])),
        channels=1,
    )
