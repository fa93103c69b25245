"""The ``tbnn`` command line: ``demo``, ``train``, ``simulate``, ``analyze``, ``raster``, ``calibrate``.

Every command rejects bad input with one sentence naming the argument and what is
allowed, exits with status 2, and writes nothing (earlier results stay intact).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from typing import NoReturn

from tbnn import __version__
from tbnn.io.files import os_error_sentence
from tbnn.core.codes import SCHEMES
from tbnn.io.datasets.registry import dataset_list
from tbnn.runtime.machine import tune_allocator
from tbnn.runtime.threads import apply_thread_policy
from tbnn.viz.formats import vector_formats

__all__ = ["main", "build_parser"]


def _threads(text: str) -> int:
    """``--threads``: an integer >= 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return value


def _add_threads(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--threads", type=_threads, default=None,
                        help=f"torch intra-op threads, integer >= 1 (none: OMP_NUM_THREADS if set, else {default})")


def _bits(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of bits (1, 1.5, 2, 3, 4, 8); got {text!r}") from None
    return int(v) if v.is_integer() else v


def _block(text: str) -> int | None:
    if text.lower() in ("none", "all"):
        return None
    try:
        return int(text)  # 0 and negative sizes are refused by the model config, in one sentence
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'none' (the whole axis); got {text!r}") from None


def _sparsity(text: str) -> str | float | None:
    if text.lower() == "none":
        return None
    if ":" in text:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'M:N' (e.g. 2:4) or a fraction in [0, 1); got {text!r}") from None


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default (``None`` as 'none')."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default is argparse.SUPPRESS or action.required:
            return text
        if action.option_strings and action.nargs != 0:
            return text + " (default: %(default)s)"
        return text


def _add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace an earlier {what} at --out: the new one is built beside it and swapped in only "
                        f"when complete (files tbnn did not write are never replaced)")


class _Parser(argparse.ArgumentParser):
    """An argument parser that suggests the closest flag for a mistyped one ("did you mean --epochs")."""

    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            for sub in (a for a in self._actions if isinstance(a, argparse._SubParsersAction)):
                given = self._seen if self._seen is not None else sys.argv[1:]
                cmd = next((c for c in given if c in sub.choices), None)
                if cmd is not None:
                    flags = [o for a in sub.choices[cmd]._actions for o in a.option_strings if o.startswith("--")]
            for word in m.group(1).split():
                if word.startswith("--"):
                    close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
                    if close:
                        message = f"{message} (did you mean {close[0]}?)"
                        break
        super().error(message)

    _seen: Sequence[str] | None = None

    def flag_names(self, text: str, command: str) -> str:
        """``text`` (an error of the Python API) with the parameters of ``command``'s flags named as
        the flags: its first word (``input_encoding must be ...`` -> ``--input-encoding must be ...``)
        and any other word with an underscore (``rate_weight needs rate_target``)."""
        import re

        flags: dict[str, str] = {}
        for sub in (a for a in self._actions if isinstance(a, argparse._SubParsersAction)):
            for action in sub.choices[command]._actions if command in sub.choices else ():
                longs = [o for o in action.option_strings if o.startswith("--")]
                if longs:
                    flags[action.dest] = longs[0]

        def flag(m: re.Match) -> str:
            word = m.group(0)
            return flags[word] if word in flags and (m.start() == 0 or "_" in word) else word

        return re.sub(r"(?<![\w/.'\"-])[a-z][a-z0-9_]*(?![\w/'\"-])(?!\.\w)", flag, text)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        self._seen = list(args) if args is not None else None
        return super().parse_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tbnn", description="Temporal binary spiking networks trained with the "
                                "denoising affine transform (Ye et al., arXiv:2409.09245).")
    p.add_argument("--version", action="version", version=f"tbnn {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = {"formatter_class": _Formatter}

    d = sub.add_parser("demo", help="train, simulate, analyse and plot a small TBN on digits (~1 min)", **fmt)
    d.add_argument("--out", default="tbnn-demo", help="output directory, new or empty")
    d.add_argument("--epochs", type=int, default=20, help="training epochs, integer >= 1")
    d.add_argument("--seed", type=int, default=0, help="random seed, integer >= 0")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_threads(d, "1")
    _add_overwrite(d, "demo")

    t = sub.add_parser("train", help="train a model and write config.json, model.safetensors, metrics.json", **fmt)
    t.add_argument("--dataset", required=True, help=dataset_list())
    t.add_argument("--model", required=True, choices=["tbn", "ste", "float", "lif"], help="model kind")
    t.add_argument("--arch", default="mlp", choices=["mlp", "cnn"], help="architecture")
    t.add_argument("--hidden", type=int, default=256, help="hidden width of an MLP, integer >= 1")
    t.add_argument("--layers", type=int, default=2, help="hidden (MLP) or conv (CNN) layers, integer >= 1")
    t.add_argument("--channels", type=int, default=32, help="channels of the first conv layer (CNN), integer >= 1")
    t.add_argument("--timesteps", type=int, default=None,
                   help="time steps T, integer >= 1 (none: 4, or 25 for lif; the binary code allows T <= 24)")
    t.add_argument("--weight-bits", type=_bits, default=1, help="weight bits: 1, 1.5 (ternary), 2, 3, 4 or 8")
    t.add_argument("--readout-bits", type=_bits, default=None, help="read-out weight bits (none: --weight-bits)")
    t.add_argument("--first-layer-bits", type=_bits, default=None,
                   help="weight bits of the first layer, which reads the encoded input (none: --weight-bits)")
    t.add_argument("--act-bits", type=int, default=None, help="activation bits (must equal T for the binary code)")
    t.add_argument("--sparsity", type=_sparsity, default=None,
                   help="M:N with 0 < M < N <= the narrowest layer's inputs (e.g. 2:4), or a fraction in [0, 1) "
                        "to prune by magnitude; none: dense")
    t.add_argument("--lam", type=float, default=0.01, help="ridge penalty of the DAT, a finite number >= 0")
    t.add_argument("--block", type=_block, default=128, help="DAT block size, integer >= 1, or 'none' (whole axis)")
    t.add_argument("--encoding", default="binary", help=f"spike code: {', '.join(SCHEMES)}")
    t.add_argument("--beta", type=float, default=0.9, help="lif only: membrane decay per step, in (0, 1]")
    t.add_argument("--threshold", type=float, default=1.0, help="lif only: firing threshold, a finite number > 0")
    t.add_argument("--epochs", type=int, default=20, help="training epochs, integer >= 1")
    t.add_argument("--batch", type=int, default=64,
                   help="mini-batch size, integer >= 1 (larger than the training split: one batch; a last batch "
                        "of one sample is skipped)")
    t.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate, a finite number > 0")
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay, a finite number >= 0")
    t.add_argument("--seed", type=int, default=0, help="random seed, integer >= 0")
    t.add_argument("--n-train", type=int, default=None, help="use the first N samples of the training split (none: all)")
    t.add_argument("--n-test", type=int, default=None, help="use the first N samples of the test split (none: all)")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (none: cuda when present, else cpu)")
    t.add_argument("--out", required=True, help="run directory (new or empty, or this run to --resume)")
    t.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (same settings)")
    _add_overwrite(t, "run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(t, "1")
    t.add_argument("--rate-target", type=float, default=None,
                   help="activity regulariser: fraction P of hidden neurons active per step to aim at")
    t.add_argument("--rate-weight", type=float, default=None,
                   help="expert override: weight W of a rate penalty (without it, --rate-target alone "
                        "rate-controls adaptive thresholds and a Lagrange multiplier per layer)")
    t.add_argument("--adaptive-threshold", default=None, choices=["layer", "neuron"],
                   help="homeostatic thresholds per layer or per neuron (none: per layer with --rate-target "
                        "alone, else off)")
    t.add_argument("--hidden-grid", default="rectify", choices=["rectify", "running"],
                   help="hidden neurons' grid: rectify (scaled by each block's maximum per sample) or running "
                        "(a running scale: a whole block can be silent)")
    t.add_argument("--readout", default="sample", choices=["sample", "running"],
                   help="read-out of every neuron layer: sample (a gain and offset per block and sample) or "
                        "running (per block, from running statistics: spikes alone cross between layers; best with "
                        "--hidden-grid running, docs/sparsity.md)")
    t.add_argument("--input-encoding", default=None,
                   help=f"spike code of the input encoder only (none: --encoding): {', '.join(SCHEMES)}")
    t.add_argument("--input-rate-target", type=float, default=None,
                   help="with --rate-target: fraction Q of input neurons active per step, reached by the "
                        "encoder's grid headroom (the largest inputs fire fewer spikes)")
    t.add_argument("--input-headroom", type=float, default=None,
                   help="the encoder's grid headroom g >= 1 (top of the grid at lo + g (hi - lo)); the start "
                        "of --input-rate-target's control (default 1), or fixed without it")

    s = sub.add_parser("simulate", help="run a trained network as binary events; write simulation.json, spikes.npz",
                       **fmt)
    s.add_argument("run", help="run directory written by tbnn train")
    s.add_argument("--split", default="test", choices=["test", "train"], help="which split to simulate")
    s.add_argument("--limit", type=int, default=None, help="simulate the first N samples, integer >= 1 (none: all)")
    s.add_argument("--mode", default="step", choices=["step", "folded"], help="event-driven or time-folded")
    s.add_argument("--batch", type=int, default=256, help="samples per batch, integer >= 1")
    s.add_argument("--dt-ms", type=float, default=1.0, help="declared duration of a time step in ms, > 0")
    s.add_argument("--record-samples", type=int, default=None,
                   help="record the spikes of the first N samples only, integer >= 1 (counts cover every sample; "
                        "none: all)")
    s.add_argument("--record-layers", default=None,
                   help="comma-separated layers whose spikes are recorded (none: all)")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    s.add_argument("--data", default=None, help="the run's npz / idx data at a new path (moved or copied); used "
                   "only if its SHA-256 is the one the run recorded (none: the path the run recorded)")
    s.add_argument("--out", required=True, help="simulation directory (new or empty; never inside a run directory)")
    _add_overwrite(s, "simulation")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(s, "1")
    s.add_argument("--spikes-only", action="store_true",
                   help="read out every layer with constant gains and offsets fitted on the training split "
                        "(no per-sample analog value crosses a layer)")

    a = sub.add_parser("analyze", help="firing statistics against biology: analysis.json and report.md", **fmt)
    a.add_argument("sim", help="simulation folder written by tbnn simulate, its spikes.npz, or any .npz "
                   "of boolean [samples, T, neurons] arrays (one per layer)")
    a.add_argument("--dt-ms", type=float, default=None, help="override the time step in ms, > 0 (none: the "
                   "simulation's; an archive without dt_ms is read at 1 ms)")
    a.add_argument("--layer", default=None, help="analyse one layer only (none: every layer)")
    a.add_argument("--neurons", type=int, default=None, help="neurons per layer in the raster, integer >= 1 "
                   "(none: 128, evenly spaced)")
    a.add_argument("--format", dest="formats", action="append", choices=vector_formats(), default=[],
                   help="also write every figure in this vector format (repeatable)")
    a.add_argument("--recording", default=None, help="a recording to set beside the network: NWB, NIX, or a "
                   "CSV / npz spike-time table (unit, time in s, optional trial columns)")
    a.add_argument("--out", required=True, help="analysis directory (new or empty)")
    _add_overwrite(a, "analysis")

    r = sub.add_parser("raster", help="raster plot of a simulation's spikes", **fmt)
    r.add_argument("sim", help="simulation folder written by tbnn simulate, its spikes.npz, or any .npz "
                   "of boolean [samples, T, neurons] arrays (one per layer)")
    r.add_argument("--layer", default=None, help="layer to plot (none: every layer, one panel each)")
    grp = r.add_mutually_exclusive_group()
    grp.add_argument("--sample", type=int, default=None, help="one sample, integer >= 0")
    grp.add_argument("--samples", default=None, help="a range A:B of samples")
    r.add_argument("--neurons", type=int, default=None, help="neurons shown per layer, integer >= 1 (none: 128, "
                   "evenly spaced)")
    r.add_argument("--select", default="even", choices=["even", "active"],
                   help="which neurons when a layer is larger: evenly spaced or most active")
    r.add_argument("--sort-by-rate", action="store_true", help="order shown neurons by spike count")
    r.add_argument("--format", dest="formats", action="append", choices=vector_formats(), default=[],
                   help="also write the figure in this vector format (repeatable)")
    r.add_argument("--out", required=True, help="PNG file to write (new, or replaced with --overwrite)")
    _add_overwrite(r, "figure")

    c = sub.add_parser("calibrate", help="time the engine's product types once and store their order for this CPU "
                       "and these versions", **fmt)
    c.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: whose product types are timed")
    c.add_argument("--show", action="store_true",
                   help="print the stored calibration and where it is, without timing anything")
    return p


def _cmd_train(args: argparse.Namespace) -> int:
    from tbnn.io.checkpoint import CLI_NAMES
    from tbnn.train.trainer import train

    T = args.timesteps if args.timesteps is not None else (args.act_bits or (25 if args.model == "lif" else 4))
    m = train(
        args.dataset, args.model, args.out, epochs=args.epochs, batch=args.batch, lr=args.lr,
        weight_decay=args.weight_decay, seed=args.seed, n_train=args.n_train, n_test=args.n_test,
        resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, device=args.device,
        _names=CLI_NAMES,
        beta=args.beta, threshold=args.threshold, arch=args.arch, hidden=args.hidden, layers=args.layers, channels=args.channels, timesteps=T,
        weight_bits=args.weight_bits,
        readout_bits=args.readout_bits if args.readout_bits is not None else args.weight_bits,
        first_layer_bits=args.first_layer_bits,
        act_bits=args.act_bits, sparsity=args.sparsity, lam=args.lam, block=args.block, encoding=args.encoding,
        rate_target=args.rate_target, rate_weight=args.rate_weight, hidden_grid=args.hidden_grid,
        readout=args.readout, input_encoding=args.input_encoding, input_rate_target=args.input_rate_target,
        **({"adaptive_threshold": args.adaptive_threshold} if args.adaptive_threshold else {}),
        **({"input_headroom": args.input_headroom} if args.input_headroom is not None else {}),
    )
    if os.environ.get("RANK", "0") not in ("", "0"):
        return 0  # torchrun: rank 0 reports
    if "fraction_active" in m:
        print("fraction of hidden neurons active per step (test): "
              + ", ".join(f"{k} {v:.4f}" for k, v in m["fraction_active"].items()))
    print(f"test accuracy {m['test_accuracy']:.4f} (train {m['train_accuracy']:.4f}) after {m['epochs']} epochs, "
          f"{m['train_seconds']:.1f} s; wrote {args.out}/config.json, model.safetensors, metrics.json")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from tbnn.sim.simulator import simulate_run

    from tbnn.runtime.device import resolve_device

    layers = [v.strip() for v in args.record_layers.split(",") if v.strip()] if args.record_layers else None
    device = resolve_device(args.device)
    kw = dict(split=args.split, limit=args.limit, schedule=args.mode, batch=args.batch, dt_ms=args.dt_ms,
              progress=not args.quiet, record_samples=args.record_samples, record_layers=layers, device=device,
              data=args.data, spikes_only=args.spikes_only)
    s = simulate_run(args.run, args.out, overwrite=args.overwrite, _flag="--out", **kw)  # stages --out once
    if os.environ.get("RANK", "0") not in ("", "0"):
        return 0  # torchrun: rank 0 writes and reports
    print(f"accuracy {s['accuracy']:.4f}, forward agreement {s['forward_agreement']:.4f} on {s['samples']} samples; "
          f"{s['spikes_per_sample']:.0f} spikes, {s['synaptic_ops_per_sample']:.0f} synaptic ops and "
          f"{s['analog_values_per_sample']:.0f} analog values per sample; "
          f"engine {s['engine_samples_per_second']:.0f} samples/s, wall {s['wall_seconds']:.1f} s; "
          f"wrote {args.out}/simulation.json, spikes.npz")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from tbnn.analysis import analyze_run

    if args.neurons is not None and args.neurons < 1:
        raise ValueError(f"--neurons must be an integer >= 1, got {args.neurons}.")
    res = analyze_run(args.sim, args.out, dt_ms=args.dt_ms, layer=args.layer, neurons=args.neurons,
                      recording=args.recording, formats=tuple(args.formats), overwrite=args.overwrite, _flag="--out")
    if res["dt_source"] == "default":
        print("note: the archive declares no dt_ms; 1 ms per step assumed (set --dt-ms)")
    print(f"wrote {args.out}/analysis.json and {args.out}/report.md")
    return 0


def _cmd_raster(args: argparse.Namespace) -> int:
    from tbnn.analysis import raster_run

    if args.neurons is not None and args.neurons < 1:
        raise ValueError(f"--neurons must be an integer >= 1, got {args.neurons}.")
    raster_run(args.sim, args.out, layer=args.layer, sample=args.sample, samples=args.samples,
               neurons=args.neurons, select=args.select, sort_by_rate=args.sort_by_rate,
               formats=tuple(args.formats), overwrite=args.overwrite, _flag="--out")
    print(f"wrote {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tbnn.demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, progress=not args.quiet, overwrite=args.overwrite,
             _flag="--out")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import json

    from tbnn.engine.precision import calibrate, calibration_path, stored_calibration
    from tbnn.runtime.device import resolve_device

    device = resolve_device(args.device, name="--device")
    path = calibration_path(device)
    if path is None:
        raise ValueError("the cache is off (TBNN_CACHE=off), so a calibration cannot be stored or read; "
                         "set TBNN_CACHE to a folder.")
    if args.show:
        data = stored_calibration(device)
        if data is not None:
            print(f"stored calibration for {device.type} at {path}:")
            print(json.dumps(data, indent=1))
        elif path.is_file():
            print(f"the calibration at {path} was made on another CPU or with other torch / tbnn versions and is "
                  f"not used; run tbnn calibrate to replace it")
        else:
            print(f"no calibration is stored for {device.type} (looked at {path}); the engine follows the CPU's "
                  f"features")
        return 0
    load, cores = _load()
    data = calibrate(device)
    timed = ", ".join(f"{k} {v:.3f} ms" for k, v in data["timings_ms"].items())
    print(f"timed on {data['cpu']} (torch {data['torch']}, tbnn {data['tbnn']}): {timed}")
    order = ", ".join(data["order"]) or "none (no low-precision type beat float32; float32 only)"
    print(f"stored the low-precision order {order} in {path}")
    if load is not None and load >= cores:
        print(f"note: the machine was busy (load average {load:.1f} on {cores} CPUs); the timings may not hold on "
              f"a quiet machine: run tbnn calibrate again when it is quiet", file=sys.stderr)
    return 0


def _load() -> tuple[float | None, int]:
    """The 1-minute load average (``None`` where the system has none) and the number of CPUs."""
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        return None, os.cpu_count() or 1


COMMANDS = {"train": _cmd_train, "simulate": _cmd_simulate, "analyze": _cmd_analyze,
            "raster": _cmd_raster, "demo": _cmd_demo,
            "calibrate": _cmd_calibrate}


#: the commands' torch intra-op threads when neither ``--threads`` nor ``OMP_NUM_THREADS`` says;
#: see :mod:`tbnn.runtime.threads` for why one
DEFAULT_THREADS = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tbnn`` console script; returns the exit status.

    Under ``torchrun`` every process runs this: all of them join the job first (so that
    they agree on bad input and leave together), rank 0 alone prints results and errors.
    Bad input, a bad file or folder, a full disk: one sentence, exit 2, nothing written.
    """
    from tbnn.runtime.interrupt import exit_on_interrupt, restore_interrupt

    exit_on_interrupt()  # Ctrl-C at any moment: one line, exit 130 (also when main is called in-process)
    try:
        return _main(argv)
    finally:
        restore_interrupt()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    main_rank = os.environ.get("RANK", "0") in ("", "0")
    launched = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
    try:
        if main_rank:
            args = parser.parse_args(argv)
        else:  # the same flags fail on every rank: rank 0 says so
            with contextlib.redirect_stderr(io.StringIO()):
                args = parser.parse_args(argv)
    except SystemExit:
        if launched and not main_rank:
            time.sleep(1.0)  # let rank 0 print before torchrun stops the job
        raise

    def note(message, category, filename, lineno, file=None, line=None):  # one line per warning
        if main_rank:
            print(f"tbnn {args.command}: note: {message}", file=sys.stderr)

    def refuse(text: str) -> int:
        if main_rank:
            print(f"tbnn {args.command}: error: {text}", file=sys.stderr)
        if dist is not None:
            dist.shutdown(wait=True)  # every rank refused the same input: leave together, exit 2
        return 2

    dist = None
    tune_allocator()  # this process is the command's own: keep freed memory for the next batch
    if hasattr(args, "threads"):
        apply_thread_policy(args.threads, DEFAULT_THREADS)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = note
            if launched and args.command in ("train", "simulate"):
                from tbnn.parallel import distributed as dist

                dist.setup(_job_device(args))
            status = COMMANDS[args.command](args)
        if dist is not None:
            dist.shutdown(wait=True)  # leave together
        return status
    except (zlib.error, zipfile.BadZipFile, EOFError) as err:  # a corrupt archive no reader turned into a sentence
        return refuse(f"a compressed input file is corrupt ({err}).")
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as err:
        return refuse(parser.flag_names(str(err), args.command))  # the Python parameter named as its flag
    except OSError as err:  # a file error no reader or writer turned into a sentence
        return refuse(os_error_sentence(err, err.filename or "a file", "use"))
    except KeyboardInterrupt:
        print(f"tbnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if dist is not None:
            dist.ignore_sigterm()  # torchrun's SIGTERM to the survivors must not interrupt this report
        message = dist.failure_message(err) if dist is not None else None
        if message is None:
            raise
        print(f"tbnn {args.command}: error: {message}; a run resumes from its last complete checkpoint "
              f"with --resume.", file=sys.stderr)
        return 1
    finally:
        if dist is not None:
            dist.shutdown()


def _job_device(args: argparse.Namespace) -> str:
    """The device a torchrun job's process group is for (nccl on CUDA, else gloo)."""
    if args.device is not None:
        return str(args.device)
    import torch

    return "cuda" if args.command == "train" and torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    sys.exit(main())
