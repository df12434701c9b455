"""The command line: ``fnn run configs/NAME.toml`` trains and tests a config; ``fnn cv
configs/NAME.toml --folds 5`` cross-validates it (also ``python -m fnn ...``)."""
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
    cv = commands.add_parser("cv", help="k-fold cross-validation of a config on its training data")
    cv.add_argument("config", help="path to a TOML config")
    cv.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    cv.add_argument("--out", help="write the scores as JSON to this file")
    return parser


def run_command(args) -> None:
    """``fnn run``: check the config completely, then train in a fresh (or resumed) run folder."""
    config = config_lib.load(args.config)
    from fnn.experiment import check, copy_config, run, run_folder  # imports JAX: a good config only

    parts = check(config)
    out = run_folder(config.name, args.out)
    copy_config(args.config, out)
    run(config, out, resume=args.resume, progress=not args.no_progress, parts=parts)


def cv_command(args) -> None:
    """``fnn cv``: mean ± std of the test scores over k folds of the training data."""
    config = config_lib.load(args.config)
    from fnn.experiment import cross_validate_config, write_json

    if args.folds < 2:
        raise config_lib.ConfigError(f"--folds must be at least 2; got {args.folds}.")
    result = cross_validate_config(config, args.folds)
    print(f"{config.name}, {args.folds}-fold cross-validation: {result}")
    if args.out:
        write_json(args.out, result._asdict())


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run" and args.resume and not args.out:
        print("fnn run: --resume needs --out, the run folder to continue.", file=sys.stderr)
        return 2
    try:
        {"run": run_command, "cv": cv_command}[args.command](args)
    except config_lib.ConfigError as error:
        print(f"fnn {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
