"""A network beside a recording: every firing measure of a digits TBN and of a recording, with nulls and bands.

Trains the digits TBN MLP (T = 4, 1-bit weights) and records its first hidden layer on the
test split; writes a synthetic recording as a NIX file (no real recording ships with tbnn:
24 units with log-normal rates, half gamma order 2, half Poisson, tuned to 10 stimulus
conditions, 15 trials of 0.5 s each, from ``elephant.spike_train_generation``), reads it
back with :func:`tbnn.io.recording.read_recording`, chooses ``dt_ms`` so that the network's
mean rate matches the recording's (:func:`tbnn.analysis.timebase.dt_from_rates`) and compares the
two (:func:`tbnn.analysis.recording_measures.compare_with_recording`). Replace the
synthetic file by your own NWB / NIX / CSV recording with ``--recording FILE``.

    python simulations/recording_comparison.py                 # about a minute
    python simulations/recording_comparison.py --quick         # seconds, for the tests
    python simulations/recording_comparison.py --recording my.nwb
    python simulations/recording_comparison.py --replot        # redraw from the saved JSON

Writes ``recording_comparison.json``, ``recording_comparison.png`` and
``recording_comparison_dt.md`` (how rate, ISI and LvR move with dt) into ``--out``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

UNITS, CONDITIONS, TRIALS, TRIAL_S = 24, 10, 15, 0.5


def synthetic_recording(path: Path, seed: int = 0, trials: int = TRIALS) -> Path:
    """Write the synthetic recording (NIX) described in the module docstring."""
    import neo
    import numpy as np
    import quantities as pq
    from elephant.spike_train_generation import StationaryGammaProcess, StationaryPoissonProcess
    from neo.io import NixIO

    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    base = np.exp(rng.normal(np.log(3.0), 1.0, UNITS))  # Hz, median 3 Hz
    gain = np.exp(rng.normal(0.0, 0.7, (CONDITIONS, UNITS)))
    blk = neo.Block(name="synthetic")
    k = 0
    for c in range(CONDITIONS):
        for _ in range(trials):
            t0 = k * TRIAL_S
            seg = neo.Segment(name=f"trial{k}", condition=c)
            for u in range(UNITS):
                rate = base[u] * gain[c, u] * pq.Hz
                kw = dict(t_start=t0 * pq.s, t_stop=(t0 + TRIAL_S) * pq.s)
                proc = (StationaryGammaProcess(rate, shape_factor=2.0, **kw) if u % 2 == 0
                        else StationaryPoissonProcess(rate, **kw))
                st = proc.generate_spiketrain().rescale("s")
                st.name = f"unit{u:02d}"
                seg.spiketrains.append(st)
            blk.segments.append(seg)
            k += 1
    with NixIO(str(path), mode="ow") as io:
        io.write_block(blk)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, default=None, help="NWB, NIX, CSV or npz recording")
    args = common.parse_args(parser, argv)
    from tbnn.analysis.recording_figure import plot_recording_comparison

    if args.replot:
        res = common.read_result(args.out, "recording_comparison.json")
        common.save_figure(plot_recording_comparison(res["comparison"], title=res.get("title")), args.out,
                           "recording_comparison.png")
        return res
    import numpy as np
    import torch

    import tbnn
    from tbnn.analysis.rates import rate_per_step
    from tbnn.analysis.recording_measures import compare_with_recording
    from tbnn.io.datasets import load_dataset
    from tbnn.nn.models import build_model
    from tbnn.io.recording import read_recording
    from tbnn.analysis.timebase import dt_from_rates, dt_sensitivity
    from tbnn.train.trainer import evaluate, model_config_for

    common.seed_everything(0)
    sub = dict(n_train=256, n_test=128) if args.quick else {}
    ds = load_dataset("digits", seed=0, **sub)
    net = build_model(model_config_for(ds, model="tbn", hidden=256, layers=2, timesteps=4, weight_bits=1,
                                       readout_bits=1, block=128))
    tbnn.fit(net, (ds.x_train, ds.y_train), epochs=2 if args.quick else 30, lr=3e-3, batch=64, seed=0,
             progress=False)
    acc, _ = evaluate(net, ds.x_test, ds.y_test)
    net.eval()
    with torch.no_grad():
        _, codes = net(ds.x_test, record=True)
    s = codes["hidden1"].spikes  # [T, S, N]
    spikes = s.reshape(s.shape[0], s.shape[1], -1).permute(1, 0, 2).numpy()
    labels = ds.y_test.numpy().astype(np.int64)
    with tempfile.TemporaryDirectory() as td:
        path = args.recording or synthetic_recording(Path(td) / "synthetic.nix", trials=3 if args.quick else TRIALS)
        rec = read_recording(path)
    rec_rate = float(np.mean(rec.counts().sum(0) / rec.durations.sum()))
    dt = dt_from_rates(rate_per_step(spikes).mean(), rec_rate)
    cmp_ = compare_with_recording(spikes, rec, dt, labels=labels)
    source = "synthetic (gamma order 2 / Poisson units)" if args.recording is None else str(args.recording)
    title = (f"digits TBN hidden1 (256 neurons, T = 4, test acc. {100 * acc:.1f} %) beside a recording: {source}, "
             f"{rec.n_units} units, {rec.n_trials} trials; dt = {dt:.2f} ms matches the mean rates")
    common.save_figure(plot_recording_comparison(cmp_, title=title), args.out, "recording_comparison.png")
    rows = dt_sensitivity(spikes, sorted({1.0, 2.0, round(dt, 2), 5.0, 10.0, 20.0}))
    md = ("# How the network's rate-dependent measures move with dt_ms (digits TBN, hidden1)\n\n"
          + common.format_table(["dt (ms)", "median rate (Hz)", "median ISI (ms)", "median LvR", "median CV",
                                 "median LV"],
                                [[r["dt_ms"], r["rate_hz"], r["isi_ms"], r["lvr"], r["cv"], r["lv"]] for r in rows])
          + f"\n\nRates scale as 1/dt, ISIs as dt, LvR falls toward LV as dt grows; CV and LV do not move. "
            f"dt = {dt:.3g} ms makes the network's mean rate equal the recording's ({rec_rate:.3g} Hz).\n")
    common.write_text(args.out, "recording_comparison_dt.md", md)
    res = {"title": title, "test_accuracy": acc, "dt_ms": dt, "recording_rate_hz": rec_rate, "recording": source,
           "comparison": cmp_, "dt_sensitivity": rows, "run_info": common.run_info(args)}
    common.write_json(args.out, "recording_comparison.json", res)
    print(md)
    return res


if __name__ == "__main__":
    main()
