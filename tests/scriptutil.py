"""Helpers for the tests that run the experiment scripts of ``simulations/`` and ``benchmarks/``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(rel: str):
    """Import a script by its path relative to the repository root (it is not a package)."""
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location("_tbnn_script_" + path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def png_ok(path: Path, min_bytes: int = 1000, max_bytes: int = 200_000) -> None:
    """``path`` is a PNG of a sensible size for the README."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert min_bytes < len(data) < max_bytes
