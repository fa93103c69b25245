"""tbnn.runtime.machine: the CPU description and the allocator setting the tbnn command applies."""

import platform

import pytest

import tbnn.cli
from tbnn.runtime.machine import describe_cpu, tune_allocator


def test_describe_cpu_names_the_model_and_the_vector_units():
    line = describe_cpu()
    assert line.startswith("CPU: ") and all(f"{k} " in line for k in ("avx2", "avx512", "bf16", "amx"))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_allocator_applies_on_glibc():
    assert tune_allocator() is True
    assert tune_allocator(mmap_threshold=1 << 20, trim_threshold=0) is True


@pytest.mark.parametrize("kwargs, word", [({"mmap_threshold": 0}, "mmap_threshold"),
                                          ({"mmap_threshold": 1.5e6}, "mmap_threshold"),
                                          ({"trim_threshold": -1}, "trim_threshold")])
def test_tune_allocator_refuses_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        tune_allocator(**kwargs)


def test_the_command_line_tunes_its_own_process(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(tbnn.cli, "tune_allocator", lambda: calls.append(1) or True)
    assert tbnn.cli.main(["simulate", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "o")]) == 2
    assert calls == [1]
    assert "error" in capsys.readouterr().err
