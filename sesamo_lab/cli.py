"""The ``sesamo-lab`` command line: list presets and train them headless.

Errors in the input are reported as one line ``sesamo-lab: error: ...`` with exit status 2,
before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from . import __version__
from .validation import ConfigError, positive_int

EXIT_USAGE = 2

_MODEL_OPTIONS = (
    ("--couplings", "couplings", int, "number of coupling layers in the flow"),
    ("--hidden", "hidden", int, "hidden width of the coupling conditioners"),
    ("--penalty-strength", "penalty_strength", float, "bijectivity penalty scale A (> 0)"),
    ("--penalty-sharpness", "penalty_sharpness", float, "bijectivity penalty sharpness B (> 0)"),
    ("--modulation", "modulation", str, "exact (fixed equal weights) or learned (broken)"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own contract)
        self.exit(EXIT_USAGE, f"sesamo-lab: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .model_kinds import MODEL_KINDS  # noqa: PLC0415
    from .presets import all_options, list_presets  # noqa: PLC0415

    parser = _Parser(prog="sesamo-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sesamo-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("presets", help="list the presets")

    names = [p.name for p in list_presets()]
    tr = sub.add_parser(
        "train",
        help="train a preset and write metrics.json and figures",
        description=f"Presets: {', '.join(names)}",
    )
    tr.add_argument("preset", help="preset name (see `sesamo-lab presets`)")
    tr.add_argument(
        "--model",
        default=None,
        help=f"model kind: {', '.join(MODEL_KINDS)} (default: the preset's)",
    )
    tr.add_argument("--steps", type=int, default=None, help="training steps (>= 1)")
    tr.add_argument("--batch", type=int, default=None, help="batch size (>= 2)")
    tr.add_argument("--lr", type=float, default=None, help="learning rate (> 0)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N, mps")
    tr.add_argument("--dtype", default="float32", help="float32 or float64")
    tr.add_argument("--out", default=None, help="output folder (default runs/PRESET-MODEL)")
    tr.add_argument(
        "--eval-samples", type=int, default=None, help="samples used for the final metrics"
    )
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tr.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1, or OMP_NUM_THREADS if set)",
    )
    g = tr.add_argument_group("target options (each applies to some presets only)")
    for opt in all_options():
        g.add_argument(
            opt.flag, dest=opt.dest, type=opt.type, default=None, metavar=opt.metavar, help=opt.help
        )
    m = tr.add_argument_group("model options")
    for flag, dest, typ, hlp in _MODEL_OPTIONS:
        m.add_argument(flag, dest=dest, type=typ, default=None, help=hlp)
    _extend_parser(sub)
    return parser


def _extend_parser(sub) -> None:
    """Hook for further subcommands (e.g. ``compare``) registered by other modules."""
    for register in EXTRA_COMMANDS:
        register(sub)


# Each entry: a function(subparsers) that adds a subcommand whose handler is set with
# ``set_defaults(handler=...)``; the handler gets the parsed args and returns an exit code.
EXTRA_COMMANDS: list = []


def _register_compare(sub) -> None:
    from .compare import add_compare_parser  # noqa: PLC0415

    add_compare_parser(sub)


EXTRA_COMMANDS.append(_register_compare)


def _cmd_presets(_args) -> int:
    from .presets import list_presets  # noqa: PLC0415

    rows = list_presets()
    width = max(len(p.name) for p in rows)
    for p in rows:
        print(f"{p.name:<{width}}  {p.family:<8} {p.steps:>6} steps  {p.description}")
    return 0


def _cmd_train(args) -> int:
    from .presets import all_options  # noqa: PLC0415
    from .runner import check_writable, execute, prepare_run  # noqa: PLC0415

    if args.threads is not None:
        torch.set_num_threads(positive_int("threads", args.threads))
    overrides = {o.dest: getattr(args, o.dest) for o in all_options()}
    overrides.update({dest: getattr(args, dest) for _, dest, _, _ in _MODEL_OPTIONS})
    if args.eval_samples is not None and args.eval_samples < 100:
        raise ConfigError(f"eval-samples must be >= 100 (got {args.eval_samples})")
    run = prepare_run(
        args.preset,
        args.model,
        overrides=overrides,
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        eval_samples=args.eval_samples,
    )
    out = Path(args.out) if args.out else Path("runs") / f"{args.preset}-{run.model_kind}"
    check_writable(out)
    print(
        f"training {run.model_kind} on {args.preset} for {run.train_config.steps} steps "
        f"(batch {run.train_config.batch_size}, {run.device}, {args.dtype}) -> {out}",
        flush=True,
    )
    metrics = execute(run, out, progress=not args.no_progress)
    summary = {
        k: metrics.get(k) for k in ("ess", "kl", "nll", "outside_domain_fraction", "train_seconds")
    }
    print(json.dumps(summary, indent=1))
    if metrics.get("interrupted"):
        print("interrupted: the model and metrics so far were written", file=sys.stderr)
    return 0


def default_threads() -> None:
    """One intra-op thread unless OMP_NUM_THREADS says otherwise.

    The kit's flows work on small tensors, where extra threads buy little; on a busy 2-core
    machine OpenMP's spinning threads made gmm-z8-broken train 5x slower with 2 threads (52 s)
    than with 1 (10 s), measured in one session.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def main(argv: list[str] | None = None) -> int:
    default_threads()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = (
        getattr(args, "handler", None)
        or {"presets": _cmd_presets, "train": _cmd_train}[args.command]
    )
    try:
        return handler(args)
    except ConfigError as err:
        print(f"sesamo-lab: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
