"""Nothing lost, nothing silently wrong: output policy, integrity of every artefact, full disks,
devices, tensors and arguments refused in one sentence."""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import tbnn.io.files as fileio
import tbnn.io.files.atomic as atomic
from tbnn.io.checkpoint import load_run_config
from tbnn.nn.runs import read_run
from tbnn.cli import main
from tbnn.io.datasets import load_dataset, read_idx, write_idx
from tbnn.runtime.device import resolve_device
from tbnn.io.files import FolderLock, output_dir, output_file
from tbnn.core.quant import fake_quantize, quantized_matmul, ridge_dequantize
from tbnn.train.trainer import train

TINY = dict(epochs=1, hidden=16, n_train=100, n_test=40, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "run"
    train("digits", "tbn", out, **TINY)
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _one_sentence(err: str) -> None:
    assert "Traceback" not in err and err.strip().count("\n") == 0, err


# --------------------------------------------------------------------- integrity


def test_run_folder_layout_and_checksums(run):
    names = sorted(p.name for p in run.iterdir())
    assert names == [".tbnn-manifest.json", "config.json", "metrics.json", "model.safetensors"]  # no lock, temp, state
    cfg = load_run_config(run)
    assert cfg["format_version"] == 2 and len(cfg["sha256"]) == 64
    _, mcfg, tensors = read_run(run)
    assert mcfg.hidden == 16 and set(tensors)


def test_weights_byte_flip_refused(run, tmp_path):
    bad = _copy(run, tmp_path / "r")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-7] ^= 0x10  # a byte of the last tensor's data
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors fails its checksum \(metadata field sha256\)"):
        read_run(bad)


def test_config_byte_flip_and_edits_refused(run, tmp_path):
    bad = _copy(run, tmp_path / "r")
    text = (bad / "config.json").read_text()
    (bad / "config.json").write_text(text.replace('"timesteps": 4', '"timesteps": 5'))
    with pytest.raises(ValueError, match=r"config.json fails its checksum \(field sha256\)"):
        read_run(bad)


def _unsealed(run: Path, dst: Path, **edit) -> Path:
    """A copy of ``run`` whose config.json is edited and has no checksum (a version-1 folder)."""
    d = _copy(run, dst)
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("sha256")
    cfg.pop("format_version")
    for key, value in edit.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    (d / "config.json").write_text(json.dumps(cfg))
    _version_1_weights(d / "model.safetensors")
    return d


def _version_1_weights(path: Path) -> None:
    """Rewrite a weights file with the metadata of format version 1 (no checksum, no config)."""
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"format": "pt", "kind": "tbnn-run"})


def test_unsealed_config_still_checked_against_the_weights(run, tmp_path):
    ok = _unsealed(run, tmp_path / "ok")
    with pytest.warns(UserWarning, match="format version 1, no checksum"):
        read_run(ok)  # a version-1 folder (no checksums) is still read, with a note
    # a config stripped of format_version and sha256 beside sealed weights: refused
    stripped = _unsealed(run, tmp_path / "t")
    _copy(run, tmp_path / "sealed")
    (stripped / "model.safetensors").write_bytes((tmp_path / "sealed" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"config.json has no format_version or checksum but .*model.safetensors "
                                         r"was written by format version 2"):
        read_run(stripped)
    with pytest.raises(ValueError, match=r"no format_version, but field 'extra' that format version 1 never had"):
        read_run(_unsealed(run, tmp_path / "u", extra=1))
    with pytest.raises(ValueError, match=r"field train must be an object; got list"):
        read_run(_unsealed(run, tmp_path / "w", train=[1, 2]))
    with pytest.raises(ValueError, match=r"field train.epochs must be an integer"):
        read_run(_unsealed(run, tmp_path / "e", train__epochs="many"))


def test_huge_hidden_refused_before_allocation(run, tmp_path):
    d = _copy(run, tmp_path / "r")
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("sha256")
    cfg.pop("format_version")
    cfg["model"]["hidden"] = 200000
    (d / "config.json").write_text(json.dumps(cfg))
    _version_1_weights(d / "model.safetensors")
    # the model is built on the meta device: a 160 GB network costs nothing to check
    with pytest.raises(ValueError, match=r"does not match .*config.json: tensor '.*' has shape"):
        read_run(d)


def test_metrics_json_is_sealed(run):
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["sha256"]) == 64 and m["epochs"] == 1


# ------------------------------------------------------------------ output policy


def test_train_refuses_foreign_folder_and_second_writer(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    base = ["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--hidden", "8", "--n-train", "64",
            "--quiet"]
    assert main([*base, "--out", str(foreign), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds no tbnn run" in err and (foreign / "notes.txt").read_text() == "keep me"
    _one_sentence(err)
    busy = tmp_path / "busy"
    busy.mkdir()
    with FolderLock(busy):
        assert main([*base, "--out", str(busy)]) == 2
    err = capsys.readouterr().err
    assert "is being written by another tbnn process" in err
    _one_sentence(err)


def test_train_overwrite_swaps_in_a_complete_run(run, tmp_path):
    d = _copy(run, tmp_path / "r")
    before = (d / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a run; choose another directory, or pass overwrite=True"):
        train("digits", "tbn", d, **{**TINY, "seed": 1})
    assert (d / "model.safetensors").read_bytes() == before
    train("digits", "tbn", d, overwrite=True, **{**TINY, "seed": 1})
    assert (d / "model.safetensors").read_bytes() != before
    assert json.loads((d / "config.json").read_text())["train"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left beside it


def test_interrupted_overwrite_keeps_the_old_run(run, tmp_path):
    d = _copy(run, tmp_path / "r")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        train("digits", "tbn", d, overwrite=True, _interrupt_at=(0, 0), **{**TINY, "seed": 2})
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_diverged_and_crashed_runs_leave_no_folder(tmp_path, capsys):
    out = tmp_path / "div"
    argv = ["train", "--dataset", "digits", "--model", "float", "--epochs", "1", "--hidden", "8", "--n-train", "64",
            "--lr", "1e30", "--quiet", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and not out.exists()
    assert main(argv) == 2 and "training diverged" in capsys.readouterr().err  # same command, same answer


def test_last_batch_of_one_sample_is_skipped(tmp_path):
    # 65 samples in batches of 2: the last batch holds one sample (BatchNorm cannot train on it)
    m = train("digits", "tbn", tmp_path / "r", epochs=1, batch=2, hidden=8, n_train=65, n_test=20, progress=False)
    assert len(m["history"]) == 1 and np.isfinite(m["history"][0]["loss"])


def test_resume_refuses_a_complete_run(run, tmp_path):
    d = _copy(run, tmp_path / "r")
    with pytest.raises(ValueError, match="already complete"):
        train("digits", "tbn", d, resume=True, **TINY)


def test_stray_temp_files_are_ignored_and_cleaned(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    stray = out / ".tbnn-999999-0123456789ab.tmp.config.json"  # a killed writer's (pid gone)
    stray.write_text("{")
    (out / ".tbnn.lock").write_text("")
    train("digits", "tbn", out, **TINY)
    assert sorted(p.name for p in out.iterdir()) == [".tbnn-manifest.json", "config.json", "metrics.json",
                                                     "model.safetensors"]


def test_output_dir_policy(tmp_path, run):
    target = tmp_path / "sim"
    with output_dir(target, "simulation") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tbnn-")
        fileio.write_json(tmp / "simulation.json", {"v": 1})
        fileio.write_json(tmp / "old-figure.json", {})
    with pytest.raises(ValueError, match="already holds a simulation output; .* --overwrite"):
        with output_dir(target, "simulation"):
            pass
    with output_dir(target, "simulation", overwrite=True) as tmp:
        fileio.write_json(tmp / "simulation.json", {"v": 2})
    assert sorted(p.name for p in target.iterdir()) == [".tbnn-manifest.json", "simulation.json"]  # nothing stale
    with pytest.raises(RuntimeError):  # a failed writer leaves the old output whole
        with output_dir(target, "simulation", overwrite=True) as tmp:
            fileio.write_json(tmp / "simulation.json", {"v": 3})
            raise RuntimeError("boom")
    assert json.loads((target / "simulation.json").read_text()) == {"v": 2}
    with pytest.raises(ValueError, match="holds a tbnn run output, not a simulation"):
        with output_dir(run, "simulation"):
            pass
    with pytest.raises(ValueError, match="inside the tbnn run output"):
        with output_dir(run / "sim", "simulation"):
            pass
    with pytest.raises(ValueError, match="holds a tbnn simulation output, not a analysis"):
        with output_dir(target, "analysis", overwrite=True):
            pass
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is a symbolic link; tbnn never replaces or moves a link"):
        with output_dir(tmp_path / "dangling", "simulation"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "sim"]


def test_users_partial_folder_is_never_touched(tmp_path):
    keep = tmp_path / "X.partial"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    with output_dir(tmp_path / "X", "demo") as tmp:
        fileio.write_json(tmp / "demo.json", {})
    assert (keep / "thesis.tex").read_text() == "precious"


def _png(value: int) -> bytes:
    """A 1x1 grey PNG (written by hand: signature, IHDR, IDAT, IEND)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes([0, value]))) + chunk(b"IEND", b""))


def test_output_file_policy(tmp_path):
    png = tmp_path / "raster.png"
    with output_file(png) as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(_png(1))
    with pytest.raises(ValueError, match="already exists; choose another --out, or pass --overwrite"):
        with output_file(png):
            pass
    with output_file(png, overwrite=True) as tmp:
        tmp.write_bytes(_png(2))
    assert png.read_bytes().startswith(_png(2)[:-12]) and sorted(p.name for p in tmp_path.iterdir()) == ["raster.png"]


# ----------------------------------------------------------------- full disk, OS errors


def test_full_disk_while_training_is_one_sentence_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def full(op, path):
        if op == "write" and "checkpoint" in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "FAULT_HOOK", full)
    out = tmp_path / "r"
    rc = main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--hidden", "8", "--n-train", "64",
               "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "the disk is full" in err and "checkpoint.safetensors" in err
    _one_sentence(err)
    assert not out.exists()


def test_full_disk_keeps_an_earlier_output(tmp_path, monkeypatch):
    target = tmp_path / "a"
    with output_dir(target, "analysis") as tmp:
        fileio.write_json(tmp / "analysis.json", {"v": 1})

    def full(op, path):
        if op == "write":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "FAULT_HOOK", full)
    with pytest.raises(ValueError, match=r"cannot write .*analysis.json: the disk is full\."):
        with output_dir(target, "analysis", overwrite=True) as tmp:
            fileio.write_json(tmp / "analysis.json", {"v": 2})
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    assert json.loads((target / "analysis.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_long_name_and_read_only_folder_are_one_sentence(tmp_path, capsys):
    base = ["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--hidden", "8", "--n-train", "64",
            "--quiet"]
    assert main([*base, "--out", str(tmp_path / ("x" * 300))]) == 2
    err = capsys.readouterr().err
    assert "the file name is too long" in err
    _one_sentence(err)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert main([*base, "--out", str(ro / "run")]) == 2
        _one_sentence(capsys.readouterr().err)


# ------------------------------------------------------------------------- readers


def test_idx_gzip_bomb_refused_without_inflating(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as fh:  # the header says 10 labels, the stream holds 50 MB of zeros
        fh.write(struct.pack(">II", 2049, 10))
        fh.write(b"\0" * (50 << 20))
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match="has trailing data"):
        read_idx(path)
    huge = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(huge, "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, 60000, 4096, 4096))
    with pytest.raises(ValueError, match="more than the .* tbnn reads"):
        read_idx(huge)


def test_idx_label_255_refused(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 4, 4)).astype(np.uint8))
        labels = (np.arange(n) % 10).astype(np.uint8)
        if split == "train":
            labels[3] = 255
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match=re.escape("labels run from 0 to 255 but 245 of these 256 classes")):
        load_dataset(f"idx:{tmp_path}")


# ---------------------------------------------------------------------- devices


@pytest.mark.parametrize("device,needle", [
    ("bogus", "device must be cpu, cuda, cuda:N or mps; got 'bogus'."),
    ("cuda:99", "is not available"),
    ("cpu:3", "the CPU has no index other than 0"),
])
def test_device_refusals(device, needle, tmp_path, capsys):
    if device == "cuda:99" or torch.cuda.is_available() is False:
        pass
    with pytest.raises(ValueError, match=re.escape(needle)):
        resolve_device(device)
    rc = main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--device", device,
               "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and not (tmp_path / "r").exists()
    _one_sentence(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only torch build")
def test_cuda_on_a_cpu_build_is_one_sentence():
    with pytest.raises(ValueError, match="has no CUDA support"):
        resolve_device("cuda")


# ---------------------------------------------------------------------- tensors


def test_low_precision_inputs_are_computed_in_float32():
    torch.manual_seed(0)
    x = torch.randn(4, 130) * 300
    for dt in (torch.float16, torch.bfloat16):
        y = fake_quantize(x.to(dt), bits=4)
        assert y.dtype == dt and bool(torch.isfinite(y).all())
        ref = fake_quantize(x.to(dt).float(), bits=4).to(dt)  # the same values, computed in float32
        assert torch.equal(y, ref)
    assert quantized_matmul(x[:2].half(), x[2:].half()).dtype == torch.float16
    q = torch.randint(0, 4, (4, 130)).float()
    assert bool(torch.isfinite(ridge_dequantize(x.half(), q.half())).all())


@pytest.mark.parametrize("bad,needle", [
    (torch.randn(4, 130, dtype=torch.complex64), "got dtype torch.complex64"),
    (torch.randint(0, 5, (4, 130)), "got dtype torch.int64"),
    (torch.ones(4, 130, dtype=torch.bool), "got dtype torch.bool"),
    (torch.empty(0, 130), "x must have at least one element; got shape (0, 130)"),
])
def test_tensor_refusals(bad, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        fake_quantize(bad, bits=4)


# --------------------------------------------------------------------- arguments


@pytest.mark.parametrize("args,needle", [
    (["--block", "0"], "block must be a positive integer or None"),
    (["--sparsity", "4:4"], "must keep fewer weights than it groups"),
    (["--sparsity", "1:1000"], "groups N=1000 weights, more than layer"),
    (["--beta", "1.5"], "beta must lie in (0, 1]"),
    (["--threshold", "0"], "threshold must be a finite number > 0"),
])
def test_cli_refuses_nonsense(args, needle, tmp_path, capsys):
    rc = main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--hidden", "16", "--quiet",
               "--out", str(tmp_path / "r"), *args])
    assert rc == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert needle in err and not (tmp_path / "r").exists()


def test_every_option_shows_its_default(capsys):
    from tbnn.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and not action.required and action.dest not in ("help",):
                text = p.formatter_class(name)._get_help_string(action) if action.nargs != 0 else "flag"
                assert action.nargs == 0 or "%(default)" in text, (name, action.dest)


def test_big_batch_is_one_batch_with_a_note(tmp_path, capsys):
    rc = main(["train", "--dataset", "digits", "--model", "tbn", "--epochs", "1", "--hidden", "8", "--n-train", "64",
               "--batch", "1000000000", "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 0 and "note: batch 1000000000 is larger than the training split (64 samples)" in err


# --------------------------------------------------------------------------- LIF


def test_lif_evaluation_is_deterministic(tmp_path):
    m = train("digits", "lif", None, epochs=1, hidden=16, n_train=100, n_test=60, timesteps=5, progress=False)
    net = m["net"].eval()
    x = load_dataset("digits", n_train=100, n_test=60).x_test
    torch.manual_seed(123)
    a = net(x)
    torch.manual_seed(456)
    b = torch.cat([net(x[:25]), net(x[25:])])  # other batches, other global RNG state
    assert torch.equal(a, b)
    assert m["history"][-1]["test_accuracy"] == m["test_accuracy"]  # progress line = summary


def test_corrupt_spike_archive_is_one_sentence_and_writes_nothing(run, tmp_path, capsys):
    from tbnn.sim.simulator import simulate, simulate_run

    simulate_run(run, tmp_path / "sim", limit=20, progress=False)
    p = tmp_path / "sim" / "spikes.npz"
    data = bytearray(p.read_bytes())
    for i in range(200, 260):  # inside the first member's deflate stream
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    rc = main(["analyze", str(tmp_path / "sim"), "--out", str(tmp_path / "ana")])
    err = capsys.readouterr().err
    assert rc == 2 and ("corrupt" in err or "spike" in err)
    _one_sentence(err)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sim"]
