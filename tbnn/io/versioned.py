"""Versioned files: a checksum is required in every file of a versioned format, a file is read
as an older, unchecked version only when its fields are that version's, and a newer version is
refused.

tbnn's sealed files (``config.json``, ``simulation.json``, the safetensors metadata) carry a
``format_version`` and a SHA-256 of their content. Were the checksum optional, removing it
(or mistyping its key: one bit flip turns ``"sha256"`` into ``"sha257"``) would let any edit
through. So, for a file with a ``format_version``:

* a version newer than this tbnn's is refused ("written by a newer tbnn");
* a missing checksum is refused;

and a file without ``format_version`` is read as version 1 (written before checksums) only
when every field is one that version 1 wrote, with one note saying that it is unchecked.
Deleting ``format_version`` and ``sha256`` together therefore does not pass for a file that
has any field version 1 never had.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tbnn.io.files import json_digest, read_json

#: Version of ``simulation.json`` this tbnn writes and reads (1: no checksums).
SIMULATION_VERSION = 2
#: Fields of a version-1 ``simulation.json`` (written before checksums).
SIMULATION_V1_FIELDS = ("run", "model", "mode", "split", "samples", "timesteps", "dt_ms", "accuracy",
                        "forward_agreement", "max_logit_difference", "spikes_per_sample",
                        "synaptic_ops_per_sample", "energy_proxy", "samples_per_second", "seconds",
                        "weight_storage_bits", "weight_storage", "layers")

__all__ = ["SIMULATION_VERSION", "SIMULATION_V1_FIELDS", "check_version", "check_sealed", "read_versioned_json", "note_unchecked"]


def check_version(value: Any, current: int, path: str | Path, field: str = "format_version") -> int:
    """``value`` as an integer version in ``1..current``, or a ``ValueError`` naming ``field``.

    >>> check_version(2, 2, "config.json")
    2
    >>> check_version(99, 2, "config.json")
    Traceback (most recent call last):
    ...
    ValueError: config.json field format_version is 99: it was written by a newer tbnn (this one reads versions 1 to 2).
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path} field {field} must be an integer >= 1; got {value!r}.")
    if value > current:
        raise ValueError(f"{path} field {field} is {value}: it was written by a newer tbnn (this one reads "
                         f"versions 1 to {current}).")
    return value


def note_unchecked(path: str | Path, what: str) -> None:
    """Say, in one line (a warning), that a version-1 file is read without a checksum."""
    warnings.warn(f"{what} {path} was written by an older tbnn (format version 1, no checksum): read "
                  f"without an integrity check.", stacklevel=3)


def read_versioned_json(path: str | Path, what: str, current: int,
                        legacy_fields: Iterable[str]) -> tuple[dict[str, Any], int]:
    """Read a sealed JSON object and return it with its format version.

    With ``format_version``: refused when newer than ``current``, when the ``sha256``
    field is missing, or when the SHA-256 of the canonical JSON of the other fields differs
    from it. Without: read as version 1 only if every field is in ``legacy_fields`` and
    there is no ``sha256`` (one note says it is unchecked); otherwise refused.

    Raises
    ------
    ValueError
        One sentence naming ``what``, the file and the field.

    >>> import tempfile, os, json
    >>> p = os.path.join(tempfile.mkdtemp(), "s.json")
    >>> _ = open(p, "w").write(json.dumps({"format_version": 2, "a": 1}))
    >>> read_versioned_json(p, "simulation", 2, ["a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: simulation .../s.json has format_version 2 but no sha256 field: ...
    """
    path = Path(path)
    obj = read_json(path, what)
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path} must hold a JSON object; got {type(obj).__name__}.")
    return obj, check_sealed(obj, path, what, current, legacy_fields)


def check_sealed(obj: dict[str, Any], path: str | Path, what: str, current: int,
                 legacy_fields: Iterable[str]) -> int:
    """The checks of :func:`read_versioned_json` on an object already read; returns its version."""
    if "format_version" in obj:
        version = check_version(obj["format_version"], current, path)
        if "sha256" not in obj:
            raise ValueError(f"{what} {path} has format_version {version} but no sha256 field: its checksum was "
                             f"removed or damaged, so its content cannot be trusted.")
    else:
        extra = sorted(set(obj) - set(legacy_fields))
        if extra:
            raise ValueError(f"{what} {path} has no format_version, but field {extra[0]!r} that format version 1 "
                             f"never had: its format_version (and checksum) were removed or damaged.")
        note_unchecked(path, what)
        return 1
    body = {k: v for k, v in obj.items() if k != "sha256"}
    if not isinstance(obj["sha256"], str) or json_digest(body) != obj["sha256"]:
        raise ValueError(f"{what} {path} fails its checksum (field sha256): the file was changed or "
                         f"corrupted after tbnn wrote it.")
    return version
