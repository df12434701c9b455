"""The command line: ``fnn run configs/NAME.toml`` (also ``python -m fnn run ...``)."""
from __future__ import annotations

import argparse
import sys

from fnn import config as config_lib


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fnn", description="fnn: neural networks as pure JAX functions.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train and test the model a TOML config describes")
    run.add_argument("config", help="path to a TOML config, e.g. configs/mnist_mlp.toml")
    run.add_argument("--out", help="run folder (default: runs/<name>-<date>-<time>)")
    run.add_argument("--resume", action="store_true",
                     help="continue from the run folder's checkpoint (needs --out)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_command(args) -> None:
    """``fnn run``: check the config completely, then train in a fresh (or resumed) run folder."""
    config = config_lib.load(args.config)
    from fnn.experiment import check, copy_config, run, run_folder  # imports JAX: a good config only

    check(config)
    out = run_folder(config.name, args.out)
    copy_config(args.config, out)
    run(config, out, resume=args.resume, progress=not args.no_progress)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.resume and not args.out:
        print("fnn run: --resume needs --out, the run folder to continue.", file=sys.stderr)
        return 2
    try:
        run_command(args)
    except config_lib.ConfigError as error:
        print(f"fnn run: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
