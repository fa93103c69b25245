"""The analyze, raster and calibrate commands, as a user runs them, and their refusals."""

from __future__ import annotations

import json
import os

import pytest
import torch

import tbnn
from tbnn.cli import main
from tbnn.engine import integer as engine
from tbnn.engine import precision as arith


def test_cli_analyze_and_raster(tiny_sim, tmp_path, capsys):
    sim = tiny_sim[0]
    assert main(["analyze", str(sim), "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert set(data["layers"]) == {"input", "hidden1", "hidden2"}
    assert "Firing statistics" in (tmp_path / "a" / "report.md").read_text()
    assert main(["raster", str(sim), "--layer", "hidden1", "--samples", "0:4", "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()


def test_cli_analyze_refusals(tiny_sim, tmp_path, capsys):
    sim = tiny_sim[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "spikes.npz").write_bytes(b"not an archive")
    cases = [
        (["analyze", str(sim), "--dt-ms", "0", "--out", str(tmp_path / "x1")], "error: --dt-ms must be", tmp_path / "x1"),
        (["analyze", str(sim), "--layer", "nope", "--out", str(tmp_path / "x2")], "nope", tmp_path / "x2"),
        (["analyze", str(bad), "--out", str(tmp_path / "x3")], "not a spikes archive", tmp_path / "x3"),
        (["raster", str(sim), "--layer", "nope", "--out", str(tmp_path / "x4.png")], "nope", tmp_path / "x4.png"),
        (["raster", str(sim), "--sample", "100000", "--out", str(tmp_path / "x5.png")], "sample", tmp_path / "x5.png"),
    ]
    for argv, needle, target in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.startswith("tbnn "), err
        assert not target.exists()


def test_errors_name_the_flag_not_the_parameter():
    """A Python error that reaches the command line names the flag: its first word and any
    word with an underscore that is one of the command's parameters; nothing else changes."""
    from tbnn.cli import build_parser

    p = build_parser()
    assert (p.flag_names("first_layer_bits must be one of 1, 2; got 5.", "train")
            == "--first-layer-bits must be one of 1, 2; got 5.")
    assert p.flag_names("rate_weight needs rate_target.", "train") == "--rate-weight needs --rate-target."
    assert p.flag_names("input_encoding must be one of binary, rate; got 'x'.", "train").startswith(
        "--input-encoding must be")
    assert p.flag_names("record_layers names unknown layers ['x'].", "simulate").startswith("--record-layers names")
    assert p.flag_names("formats must be among svg, pdf; got 'eps'.", "analyze").startswith("--format must be")
    same = ["run /tmp/my_runs/n_train.json holds 'input_encoding' per block; see lam_x or x.n_train.",
            "hidden_size must be >= 1.", "the block must hold lam values."]
    for text in same:  # paths, quoted values, unknown names and plain words inside a sentence stay
        assert p.flag_names(text, "train") == text
    assert p.flag_names("lam must be >= 0.", "no-such-command") == "lam must be >= 0."


@pytest.fixture
def calibration_folder(monkeypatch, tmp_path):
    """A tmp calibration location (never the user's cache); the stored calibration is forgotten after."""
    monkeypatch.setenv("TBNN_CACHE", str(tmp_path / "cache"))
    arith._stored.cache_clear()
    yield tmp_path / "cache"
    arith._stored.cache_clear()


def test_cli_calibrate_stores_the_order_and_show_reads_it(calibration_folder, monkeypatch, capsys):
    # bfloat16 0.5x float32 is kept, int8 0.9x is not (kept below 0.8x): the order is ["bfloat16"]
    fake = {torch.float32: 1.0, torch.bfloat16: 0.5, torch.int8: 0.9}
    monkeypatch.setattr(arith, "_time_product", lambda dtype, device, repeats=5: fake[dtype])
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    path = calibration_folder / "arithmetic-cpu.json"

    assert main(["calibrate", "--show"]) == 0
    out = capsys.readouterr().out
    assert "no calibration is stored" in out and str(path) in out and not path.exists()

    assert main(["calibrate"]) == 0
    out, err = capsys.readouterr()
    stored = json.loads(path.read_text())
    assert stored["order"] == ["bfloat16"] and stored["cpu"] == arith._cpu()["model"]
    assert stored["torch"] == torch.__version__ and stored["tbnn"] == tbnn.__version__
    assert str(path) in out and stored["cpu"] in out and "bfloat16" in out and "1000.000 ms" in out
    assert "busy" not in err
    assert engine.arithmetic("cpu")["order"] == ["bfloat16"]  # later processes use it

    monkeypatch.setattr(arith, "_time_product", lambda *a, **k: pytest.fail("--show must time nothing"))
    assert main(["calibrate", "--show"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and json.loads(out.split(":\n", 1)[1]) == stored

    path.write_text(json.dumps({**stored, "cpu": "another CPU"}))
    assert main(["calibrate", "--show"]) == 0
    assert "another CPU or with other" in capsys.readouterr().out


def test_cli_calibrate_under_load_says_so(calibration_folder, monkeypatch, capsys):
    monkeypatch.setattr(arith, "_time_product", lambda dtype, device, repeats=5: 1.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert main(["calibrate"]) == 0
    out, err = capsys.readouterr()
    assert "float32 only" in out and "busy (load average 64.0" in err


def test_cli_calibrate_refusals(calibration_folder, monkeypatch, capsys):
    monkeypatch.setattr(arith, "_time_product", lambda *a, **k: pytest.fail("a refusal must time nothing"))
    assert main(["calibrate", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tbnn calibrate: error: --device") and "Traceback" not in err
    monkeypatch.setenv("TBNN_CACHE", "off")
    assert main(["calibrate"]) == 2
    err = capsys.readouterr().err
    assert "TBNN_CACHE" in err and err.count("\n") == 1
    assert not calibration_folder.exists()
