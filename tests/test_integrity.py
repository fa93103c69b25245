"""Nothing silently wrong (issue 20, items 4-7): required checksums, newer versions refused,
pinned data, bounded inputs, messages that name the user's argument.

Each test reproduces one finding of the issue and checks what happens now: a clean
``ValueError`` (one sentence) or an identical result, never a traceback or a wrong number.
"""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import tbnn
from tbnn.analysis import raster_run
from tbnn.analysis.energy import read_simulation
from tbnn.cli import main
from tbnn.io.bounded import open_npz
from tbnn.io.checkpoint import load_run_config
from tbnn.io.spikes import load_spikes, save_spikes
from tbnn.nn.runs import read_run
from tbnn.sim.simulator import simulate_run
from tbnn.train.trainer import train

TINY = dict(epochs=1, hidden=16, progress=False)


def _npz_data(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    np.savez(path, x=x[:90], y=y[:90], x_test=x[90:], y_test=y[90:])
    return path


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity")
    data = _npz_data(d / "data.npz")
    train(f"npz:{data}", "tbn", d / "run", **TINY)
    return d / "run", data


@pytest.fixture(scope="module")
def sim_dir(npz_run, tmp_path_factory):
    run, _ = npz_run
    out = tmp_path_factory.mktemp("sim") / "sim"
    simulate_run(run, out, progress=False, limit=8)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _reseal_weights(path: Path, edit) -> None:
    """Rewrite a weights file with its metadata edited by ``edit(meta)`` (tensors unchanged)."""
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
    save_file(load_file(str(path)), str(path), metadata=edit(meta))


# --------------------------------------------------------------------------- checksums


def test_weights_without_their_checksum_key_are_refused(npz_run, tmp_path):
    run, _ = npz_run
    bad = _copy(run, tmp_path / "r")
    # the two bit flips: "sha256" -> "sha257" plus an exponent bit of a bias
    _reseal_weights(bad / "model.safetensors", lambda m: {("sha257" if k == "sha256" else k): v for k, v in m.items()})
    with pytest.raises(ValueError, match=r"model.safetensors has format_version 2 but no sha256 metadata key"):
        read_run(bad)


def test_newer_format_versions_are_refused(npz_run, sim_dir, tmp_path):
    run, _ = npz_run
    bad = _copy(run, tmp_path / "r")
    _reseal_weights(bad / "model.safetensors", lambda m: {**m, "format_version": "99"})
    with pytest.raises(ValueError, match=r"format_version is 99: it was written by a newer tbnn"):
        read_run(bad)
    cfg = json.loads((run / "config.json").read_text())
    cfg["format_version"] = 99
    cfg["sha256"] = tbnn.io.files.json_digest({k: v for k, v in cfg.items() if k != "sha256"})
    bad2 = _copy(run, tmp_path / "c")
    (bad2 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config.json field format_version is 99: it was written by a newer"):
        load_run_config(bad2)
    sim = _copy(sim_dir, tmp_path / "s")
    summary = json.loads((sim / "simulation.json").read_text())
    summary["format_version"] = 99
    summary["sha256"] = tbnn.io.files.json_digest({k: v for k, v in summary.items() if k != "sha256"})
    (sim / "simulation.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"simulation.json field format_version is 99: it was written by a newer"):
        read_simulation(sim)
    rec = load_spikes(sim_dir)
    f = tmp_path / "newer.npz"
    np.savez(f, **rec.layers, layer_names=np.array(rec.layer_names), timesteps=rec.timesteps,
             tbnn_spikes_version=np.int64(99))
    with pytest.raises(ValueError, match=r"tbnn_spikes_version 99: it was written by a newer tbnn"):
        load_spikes(f)


def test_config_edited_with_its_checksum_deleted_is_refused(npz_run, tmp_path):
    run, _ = npz_run
    bad = _copy(run, tmp_path / "r")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["train"]["normalize"] = "unit"  # the issue: accuracy 0.15 instead of 0.40, exit 0
    del cfg["sha256"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"has format_version 2 but no sha256 field"):
        read_run(bad)
    del cfg["format_version"]  # deleting both does not pass either: the weights are sealed
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config.json has no format_version or checksum but .* format version 2"):
        read_run(bad)


def test_simulation_json_stripped_of_version_and_checksum_is_refused(sim_dir, tmp_path):
    sim = _copy(sim_dir, tmp_path / "s")
    summary = json.loads((sim / "simulation.json").read_text())
    summary["accuracy"] = 1.0
    for key in ("format_version", "sha256"):
        del summary[key]
    (sim / "simulation.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"has no format_version, but field .* that format version 1 never had"):
        read_simulation(sim)
    with pytest.raises(ValueError, match=r"format version 1 never had"):
        raster_run(sim, tmp_path / "r.png")


def test_raster_verifies_the_archive_against_simulation_json(sim_dir, tmp_path):
    sim = _copy(sim_dir, tmp_path / "s")
    rec = load_spikes(sim)
    layers = {k: ~v for k, v in rec.layers.items()}  # a replaced spikes.npz, well formed
    save_spikes(sim / "spikes.npz", layers, rec.labels, rec.predictions, rec.timesteps, rec.dt_ms)
    with pytest.raises(ValueError, match=r"spikes.npz does not match .*simulation.json \(field spikes_sha256\)"):
        raster_run(sim, tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()
    sim2 = _copy(sim_dir, tmp_path / "t")
    text = (sim2 / "simulation.json").read_text()
    (sim2 / "simulation.json").write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(ValueError, match=r"simulation.json is not valid JSON"):
        raster_run(sim2, tmp_path / "r.png")


def _flip_results(path: Path, read, tmp_path: Path, stride: int) -> tuple[int, int]:
    """Flip one bit of every ``stride``-th byte of ``path`` (bit = byte index mod 8); each
    read must raise a ValueError or give the same result as the original."""
    data = path.read_bytes()
    want = read(path)
    refused = same = 0
    probe = tmp_path / "flip" / path.name
    probe.parent.mkdir(exist_ok=True)
    for i in range(0, len(data), stride):
        b = bytearray(data)
        b[i] ^= 1 << (i % 8)
        probe.write_bytes(bytes(b))
        try:
            got = read(probe)
        except ValueError:
            refused += 1
            continue
        assert got == want, f"a flip of bit {i % 8} of byte {i} of {path.name} changed the result silently"
        same += 1
    return refused, same


def _spikes_content(p: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = load_spikes(p)
    return ({k: v.tobytes() for k, v in rec.layers.items()}, rec.timesteps, rec.dt_ms,
            None if rec.labels is None else rec.labels.tolist())


def test_bit_flips_in_a_lone_spikes_archive_never_pass_silently(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "spikes.npz"
    save_spikes(f, {"h": rng.random((4, 5, 6)) < 0.3}, labels=[0, 1, 0, 1])
    refused, same = _flip_results(f, _spikes_content, tmp_path, stride=2)
    assert refused > same  # the rest (zip times, version fields, padding) leave the content as it was


def test_bit_flips_in_weights_and_configs_never_pass_silently(tmp_path):
    net = torch.nn.Sequential(tbnn.TemporalBinary(2, grid="minmax"), tbnn.TBLinear(3, 2))
    w = tmp_path / "w.safetensors"
    tbnn.save_weights(net, w)

    def read(p):
        twin = torch.nn.Sequential(tbnn.TemporalBinary(2, grid="minmax"), tbnn.TBLinear(3, 2))
        return {k: v.tolist() for k, v in tbnn.load_weights(twin, p).state_dict().items()}

    refused, same = _flip_results(w, read, tmp_path, stride=3)
    assert refused > 0


@pytest.mark.slow
def test_every_bit_flip_of_a_sealed_config_and_simulation_json(npz_run, sim_dir, tmp_path):
    run, _ = npz_run
    _flip_results(run / "config.json", lambda p: load_run_config(_as_run(p, run, tmp_path)), tmp_path, stride=1)
    _flip_results(sim_dir / "simulation.json", lambda p: read_simulation(p), tmp_path, stride=1)


def _as_run(config: Path, run: Path, tmp_path: Path) -> Path:
    d = tmp_path / "flip-run"
    if not d.exists():
        shutil.copytree(run, d)
    shutil.copyfile(config, d / "config.json")
    return d


# --------------------------------------------------------------------------- pinned data


def test_changed_data_is_refused_and_moved_data_is_re_pointed(npz_run, tmp_path, monkeypatch):
    run, data = npz_run
    cfg = load_run_config(run)
    assert len(cfg["train"]["data_sha256"]) == 64 and cfg["train"]["dataset"] == f"npz:{data.resolve()}"
    base = simulate_run(run, None, progress=False)
    monkeypatch.chdir(tmp_path)  # an absolute run path from another folder works
    assert simulate_run(str(run.resolve()), None, progress=False)["accuracy"] == base["accuracy"]
    moved = tmp_path / "moved.npz"
    shutil.copyfile(data, moved)
    assert simulate_run(run, None, progress=False, data=moved)["accuracy"] == base["accuracy"]
    z = dict(np.load(moved))
    z["y_test"] = np.random.default_rng(1).permutation(z["y_test"])  # the issue: shuffled y_test
    np.savez(moved, **z)
    with pytest.raises(ValueError, match=r"moved.npz no longer holds the data run .* was trained on"):
        simulate_run(run, None, progress=False, data=moved)
    with pytest.raises(ValueError, match=r"data re-points a run trained on a file"):
        simulate_run(_digits_run(tmp_path), None, progress=False, data=moved)


def _digits_run(tmp_path: Path) -> Path:
    out = tmp_path / "digits-run"
    train("digits", "tbn", out, n_train=100, n_test=20, **TINY)
    return out


def test_run_without_data_digest_still_simulates_with_a_note(npz_run, tmp_path):
    run, _ = npz_run
    old = _copy(run, tmp_path / "old")
    cfg = json.loads((old / "config.json").read_text())
    del cfg["train"]["data_sha256"]
    (old / "config.json").write_text(json.dumps(tbnn.io.files.seal_json(cfg)))
    with pytest.warns(UserWarning, match=r"records no digest of its data"):
        simulate_run(old, None, progress=False, limit=4)


def test_custom_model_hyperparameters_are_stored_and_checked(tmp_path):
    def net(T: int, grid: str = "minmax") -> torch.nn.Module:
        return torch.nn.Sequential(tbnn.TemporalBinary(T, grid=grid), tbnn.TBLinear(6, 3))

    w = tmp_path / "w.safetensors"
    tbnn.save_weights(net(4), w)
    tbnn.load_weights(net(4), w)
    with pytest.raises(ValueError, match=r"saved with module '0' \(TemporalBinary\) timesteps=4; this model's has 8"):
        tbnn.load_weights(net(8), w)
    with pytest.raises(ValueError, match=r"module '0' \(TemporalBinary\) grid='minmax'"):
        tbnn.load_weights(net(4, "rectify"), w)


# --------------------------------------------------------------------------- bounded inputs


def test_npz_members_are_bounded_before_allocation(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((2000, 1000), np.float32), y=np.zeros(2000, np.int64))
    assert bomb.stat().st_size < 100_000  # 8 MB of zeros compress to a few kB
    monkeypatch.setenv("TBNN_MAX_BYTES", "1000000")
    with pytest.raises(ValueError, match=r"bomb.npz: member x.npy would need 8e\+06 bytes, more than the limit of 1000000"):
        open_npz(bomb, "npz dataset")
    with pytest.raises(ValueError, match=r"TBNN_MAX_BYTES"):
        tbnn.io.datasets.load_dataset(f"npz:{bomb}")
    # a header that declares a huge shape over a few bytes of data
    monkeypatch.delenv("TBNN_MAX_BYTES")
    huge = tmp_path / "huge.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float64))
    header["shape"] = (10**12,)
    with zipfile.ZipFile(huge, "w") as zf, zf.open("x.npy", "w") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 8)
    with pytest.raises(ValueError, match=r"huge.npz: member x.npy \(shape \[1000000000000\], float64\) would need"):
        load_spikes(huge)


def test_npz_inputs_that_mislead_get_one_sentence(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match=r"dir.npz is a folder, not an .npz file"):
        tbnn.io.datasets.load_dataset(f"npz:{tmp_path / 'dir.npz'}")
    np.save(tmp_path / "lone.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"is a single .npy array, not an .npz archive"):
        tbnn.io.datasets.load_dataset(f"npz:{tmp_path / 'lone.npy'}")
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match=r"loop.npz"):
        load_spikes(loop)
    x = np.zeros((4, 3), np.float32)
    np.savez(tmp_path / "u.npz", x=x, y=np.array([0, 1, 0, 2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match=r"got values up to 18446744073709551615"):
        tbnn.io.datasets.load_dataset(f"npz:{tmp_path / 'u.npz'}")
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[0, 0] = 1e308  # the issue: silently zeroed
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"beyond float32's range"):
        tbnn.io.datasets.load_dataset(f"npz:{tmp_path / 'big.npz'}")


def test_time_first_plain_archive_gets_the_layout_and_a_warning(tmp_path):
    rec = np.random.default_rng(0).random((25, 171, 40)) < 0.1  # [T, samples, neurons], snnTorch's layout
    f = tmp_path / "rec.npz"
    np.savez(f, lif=rec)
    with pytest.warns(UserWarning, match=r"read as \[samples, T, neurons\] = \[25, 171, 40\]; axis 1 \(171\) "
                                         r"exceeds axis 0 \(25\).*save_time_first"):
        r = load_spikes(f)
    assert r.samples == 25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = load_spikes(f, time_first=True)
    assert (r.samples, r.timesteps) == (171, 25) and np.array_equal(r.layers["lif"][3, 7], rec[7, 3])


def test_non_finite_logits_and_empty_loader_are_refused():
    torch.manual_seed(0)
    net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3))
    x = torch.randn(5, 8)
    net[1].bias.data.fill_(float("inf"))  # a network that overflows
    with pytest.raises(ValueError, match=r"x gives non-finite logits"):
        tbnn.simulate(net, x)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:0], torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"train holds no samples"):
        tbnn.fit(net, loader, epochs=1, progress=False)


def test_rectify_grid_on_signed_inputs_gets_one_line():
    torch.manual_seed(0)
    x, y = torch.randn(40, 8), torch.randint(0, 3, (40,))
    net = torch.nn.Sequential(tbnn.TemporalBinary(4), tbnn.TBLinear(8, 3))  # default grid: rectify
    with pytest.warns(UserWarning, match=r"uses grid='rectify', which silences every negative input: \d+% "):
        tbnn.fit(net, (x, y), epochs=1, batch=20, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3))
        tbnn.fit(ok, (x, y), epochs=1, batch=20, progress=False)


# --------------------------------------------------------------------------- messages


def test_cli_messages_name_the_users_argument(sim_dir, tmp_path, capsys):
    assert main(["simulate", str(sim_dir), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is a simulation folder" in err and "simulate takes the run folder it came from" in err
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "digits", "--model", "tbn", "--out", str(tmp_path / "t"), "--epcohs", "3"])
    assert "did you mean --epochs?" in capsys.readouterr().err
    assert main(["raster", str(sim_dir), "--out", str(tmp_path / "picture")]) == 2
    err = capsys.readouterr().err
    assert "--out must be a file name ending in .png" in err and "out_png" not in err and ".tbnn-" not in err
    assert not (tmp_path / "picture").exists()


# --------------------------------------------------------------------------- rate code


def test_rate_coded_run_has_the_same_accuracy_in_train_and_simulate(tmp_path):
    m = train("digits", "tbn", tmp_path / "rate", encoding="rate", n_train=200, n_test=300, **TINY)
    s = simulate_run(tmp_path / "rate", None, progress=False)
    assert s["forward_agreement"] == 1.0
    assert s["accuracy"] == m["test_accuracy"]  # the same draws in both (issue: 0.9178 vs 0.9111)


# --------------------------------------------------------------------------- recordings


def test_recording_tables_are_bounded_and_read_as_written(tmp_path, monkeypatch):
    from tbnn.io.recording import from_table, read_recording

    bom = tmp_path / "bom.csv"
    bom.write_text("unit,time\nA,0.1\nB,0.2\n", encoding="utf-8-sig")  # as Excel writes it
    assert read_recording(bom).units == ("A", "B")
    with pytest.raises(ValueError, match=r"column 'condition' holds 1e\+300; conditions must be integers"):
        from_table({"unit": ["a"], "time": [0.1], "condition": [1e300]})
    with pytest.raises(ValueError, match=r"column 'time' holds 1e\+07 s; times must lie within"):
        from_table({"unit": ["a", "a"], "time": [0.1, 1e7]})
    monkeypatch.setenv("TBNN_MAX_BYTES", "10000000")
    n = 20000  # 20,000 trials x 20,000 units would be 4e8 arrays
    cols = {"unit": [str(i) for i in range(n)], "time": [0.1] * n, "trial": [str(i) for i in range(n)]}
    with pytest.raises(ValueError, match=r"\(20000 trials x 20000 units\) would need .* TBNN_MAX_BYTES"):
        from_table(cols)
    # spikes land with their own unit and trial (a direct recount)
    rng = np.random.default_rng(0)
    unit, trial, time = rng.integers(0, 7, 300), rng.integers(0, 4, 300), rng.random(300)
    rec = from_table({"unit": unit.astype(str), "time": time, "trial": trial.astype(str)})
    for k, tid in enumerate(_order(trial)):
        for j, u in enumerate(rec.units):
            want = np.sort(time[(trial == int(tid)) & (unit == int(u))])
            assert np.array_equal(np.sort(rec.trials[k][j]), want)


def _order(a: np.ndarray) -> list[str]:
    _, first = np.unique(a, return_index=True)
    return [str(a[i]) for i in sorted(first)]


@pytest.mark.slow
def test_recording_of_20000_units_reads_in_seconds(tmp_path):
    import time

    from tbnn.io.recording import read_recording

    n = 20000
    t = np.random.default_rng(0).random(5 * n) * 10
    p = tmp_path / "big.csv"
    p.write_text("unit,time\n" + "\n".join(f"{u},{s:.6f}" for u, s in zip(np.repeat(np.arange(n), 5), t)))
    t0 = time.perf_counter()
    rec = read_recording(p)
    assert rec.n_units == n and int(rec.counts().sum()) == 5 * n
    assert time.perf_counter() - t0 < 60  # was no result in 4 minutes
