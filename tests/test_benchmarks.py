"""Smoke tests: the benchmark scripts run (tiny sizes) and print their tables.

The figures themselves are not asserted (speed is measured by the scripts, never asserted).
The scripts run in this process (``runpy``) to spare an interpreter start each.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(monkeypatch, capsys, script: str, *args: str) -> str:
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [script, *args])
    try:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)  # the scripts may pin the thread count
    return capsys.readouterr().out


def test_bench_quant_quick(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_quant.py", "--quick")
    assert text.startswith("CPU: ") and "avx2" in text and "amx" in text
    assert "LN128" in text and "dat/LN128" in text and "DAT vs LayerNorm" in text
    row = [line for line in text.splitlines() if line.strip().startswith("8x256")]
    assert len(row) == 1 and len(row[0].split()) == 9
    assert all(float(v) > 0 for v in row[0].split()[2:])


def test_bench_layers_quick_with_memory(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_layers.py", "--quick")
    assert "floor ms (x)" in text and "tbnn ms (x)" in text and "snntorch ms (x)" in text
    assert "spikingjelly" in text  # a column, or "spikingjelly: not installed"
    assert "tbnn MB" in text and "floor MB" in text
    row = [line.split() for line in text.splitlines() if line.split()[:2] == ["64", "4"]]
    assert len(row) == 1
    assert all(float(v) >= 0 for v in row[0][-3:])  # memory columns last
    assert text.startswith("CPU: ")
    assert "tbn/float" in text and "training epoch target" in text
    epoch = [line.split() for line in text.splitlines() if line.split()[:2] == ["digits", "mlp"]]
    assert len(epoch) == 1 and all(float(v) > 0 for v in epoch[0][2:])


def test_bench_startup_quick(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_startup.py", "--quick")
    assert text.startswith("CPU: ")
    sim = [line for line in text.splitlines() if line.strip().startswith("tbnn simulate  ")]
    assert len(sim) == 1 and float(sim[0].split()[2]) > 0
    assert "sklearn" not in sim[0] and "scipy" not in sim[0] and "torch" in sim[0]
    assert "minus import torch" in text and "tbnn --help imports torch" in text


def test_bench_malloc_quick(monkeypatch, capsys, tmp_path):
    text = _run(monkeypatch, capsys, "bench_malloc.py", "--quick", "--cache", str(tmp_path))
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith(("| tbn_", "| float"))]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [(e, c) for e in ("tbn_step", "tbn_folded", "float")
                                                           for c in ("defaults", "tuned")]
    for r in rows:
        faults, ms = float(r[2].split()[0].replace(",", "")), float(r[3].split()[0])
        assert faults >= 0 and ms > 0


def test_bench_packed_tiny(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_packed.py", "--widths", "128", "--repeats", "1", "--samples", "256")
    assert text.count("CPU: ") == 5 and "load average" in text
    for table in ("## simulate", "## kernel", "## profile", "## account", "## activity"):
        assert table in text
    rows = [line for line in text.splitlines() if line.startswith("| 128 |")]
    assert len(rows) == 1 + 2 + 4  # simulate; two hidden layers; four activities
    assert "| 128 -> 128 |" in text
    # account: the parts and the rest add up to the whole batch
    account = text.split("## account")[1].split("##")[0]
    ms = {r.split("|")[1].strip(): float(r.split("|")[2]) for r in account.splitlines() if r.startswith("| ")
          and not r.startswith(("| part", "|---"))}
    parts = [v for k, v in ms.items() if k not in ("**whole batch**", "page faults per batch")
             and not k.startswith("set-up")]
    assert ms["**whole batch**"] > 0 and ms["kernel, hidden layers"] > 0
    assert abs(sum(parts) - ms["**whole batch**"]) < 0.01


def test_bench_checkouts_quick_runs_both_trees_interleaved(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_checkouts.py", "--quick", "--old", "HEAD", "--workloads", "import", "quantize")
    assert "old HEAD" in text and "new/old" in text
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["import"], ["quantize"])]
    assert [r[0] for r in rows] == ["import", "quantize"]
    for r in rows:  # CPU seconds of each tree and their ratio
        old, new, ratio = map(float, r[1:4])
        assert old > 0 and new > 0 and abs(ratio - new / old) < 2e-3


def test_bench_checkouts_names_the_flag_on_a_bad_revision(monkeypatch, capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        _run(monkeypatch, capsys, "bench_checkouts.py", "--quick", "--old", "no-such-revision", "--workloads", "import")
    assert e.value.code == 2
    assert "--old 'no-such-revision'" in capsys.readouterr().err


def test_bench_repeat_tiny(monkeypatch, capsys):
    text = _run(monkeypatch, capsys, "bench_repeat.py", "--processes", "1", "--busy", "0", "--epochs", "1",
                "--settings", "default")
    assert text.startswith("CPU: ")
    row = [line for line in text.splitlines() if line.startswith("| default (intra-op 1) | 0 |")]
    assert len(row) == 1 and "1.00x" in row[0] and ("packed" in row[0] or "dense" in row[0])
    cells = row[0].split("|")  # the host gauged around the one run: quiet against itself, or NaN without a kernel
    assert cells[5].strip() in ("1.00x (1)", "none (0)"), cells[5]


def test_bench_packed_conv_and_drift_tiny(monkeypatch, capsys, tmp_path):
    text = _run(monkeypatch, capsys, "bench_packed.py", "--widths", "128", "--repeats", "1", "--samples", "64",
                "--only", "conv", "drift", "--seconds", "0.2", "--figure", str(tmp_path / "drift.png"))
    assert (tmp_path / "drift.png").stat().st_size > 1000
    conv = [line for line in text.splitlines() if line.startswith("| mnist1d TBN CNN")]
    assert len(conv) == 1 and "| yes |" in conv[0] and "packed (" in conv[0]  # packed and dense logits equal
    drift = [line for line in text.splitlines() if line.startswith("| 128 -> 128 |")]
    assert len(drift) == 1 and int(drift[0].split("|")[2]) >= 1
    with pytest.raises(SystemExit):
        _run(monkeypatch, capsys, "bench_packed.py", "--only", "drift", "--seconds", "0")
    with pytest.raises(SystemExit):  # refused before 20 s of measuring, not after
        _run(monkeypatch, capsys, "bench_packed.py", "--only", "drift", "--figure", str(tmp_path / "no" / "d.png"))


def test_bench_packed_runs_summarises_runs_against_the_host_gauge(monkeypatch, capsys, tmp_path):
    """``--replot`` reads the simulate tables of the runs in ``--out`` (one real, tiny; one with
    another ratio and gauge written here) and counts the runs at the target, all and quiet-host."""
    real = _run(monkeypatch, capsys, "bench_packed.py", "--widths", "256", "--repeats", "1", "--samples", "256",
                "--only", "simulate")
    (tmp_path / "run-101500.md").write_text(real)
    row = next(line for line in real.splitlines() if line.startswith("| 256 |"))
    cells = row.split("|")
    cells[5], cells[-2] = " 0.40x ", " 100 / 100 "  # a slow host: far below the best gauge
    (tmp_path / "run-101700.md").write_text(real.replace(row, "|".join(cells)))
    text = _run(monkeypatch, capsys, "bench_packed_runs.py", "--replot", "--out", str(tmp_path))
    line = next(line for line in text.splitlines() if line.startswith("| 256 | 0.5x |"))
    first = float(row.split("|")[5].strip()[:-1])
    assert line.split("|")[3].strip() == "2" and line.split("|")[4].strip() == str(int(first >= 0.5))
    assert line.split("|")[6].strip() == "1"  # only the real run's host is within 10 % of the best gauge
    assert "| 10:17:00 | 0.40x (100) |" in text
    cpu = next(line for line in real.splitlines() if line.startswith("CPU: "))[5:].split(";")[0].split(",")[0]
    assert text.startswith(f"CPU: {cpu}\n")  # the CPU the runs name heads the summary (and the figure's title)
    assert (tmp_path / "runs.md").is_file() and (tmp_path / "runs.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        _run(monkeypatch, capsys, "bench_packed_runs.py", "--replot", "--out", str(tmp_path / "none"))
