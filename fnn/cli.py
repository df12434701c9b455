"""The command line (also ``python -m fnn ...``):

    fnn run CONFIG [--out DIR] [--resume | --overwrite] [--set KEY=VALUE ...] [--data-dir DIR]
            [--processes N --process-id I --coordinator HOST:PORT] [--cpu-devices N]
    fnn cv CONFIG --folds 5 [--out SCORES.json] [--set KEY=VALUE ...] [--data-dir DIR]
    fnn evaluate RUN_DIR [--out SCORES.json]
    fnn predict RUN_DIR INPUTS.npy [--out SCORES.npy]
    fnn --version

Every error a user can cause (a bad config or override, a folder that already holds a run,
missing or corrupt data, a corrupt checkpoint, a diverged run) is printed as one line,
``fnn <command>: <message>``, with exit status 2 for a config or usage error and 1 otherwise;
``--debug`` prints the traceback as well.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from fnn import __version__
from fnn import config as config_lib
from fnn.core import LayerError
from fnn.train import TrainingDiverged

USAGE_ERRORS = (config_lib.ConfigError,)  # exit status 2; also RunFolderError (fnn.experiment)
ERRORS = (ValueError, OSError, TrainingDiverged, LayerError)  # exit status 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fnn",
                                     description="fnn: neural networks as pure JAX functions.")
    parser.add_argument("--version", action="version", version=f"fnn {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback as well as the message")
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key, e.g. --set train.epochs=5 (a TOML value; "
                                 "repeatable; checked like the file)")
    configured.add_argument("--data-dir", metavar="DIR",
                            help="folder holding the MNIST files (the config's [data] data_dir)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", parents=[common, configured],
                              help="train and test the model a TOML config describes")
    run.add_argument("config", help="path to a TOML config, e.g. configs/mnist_mlp.toml")
    run.add_argument("--out", help="run folder (default: runs/<name>-<date>-<time>)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its checkpoint (the config must match "
                          "the run's but for train.epochs and data.data_dir)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run that --out already holds")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar within each epoch (one line per epoch still)")
    run.add_argument("--quiet", action="store_true", help="print nothing while training")
    job = run.add_argument_group(
        "data-parallel training over several processes or hosts (the mesh: [parallel] in the "
        "config); start the same command once per process, each with its own --process-id")
    job.add_argument("--processes", type=int, default=1, metavar="N",
                     help="number of processes training together (default 1)")
    job.add_argument("--process-id", type=int, metavar="I", help="this process: 0 … N-1")
    job.add_argument("--coordinator", metavar="HOST:PORT",
                     help="address of process 0, where the processes meet")
    job.add_argument("--cpu-devices", type=int, metavar="N",
                     help="split this process's CPU into N devices (to try a mesh on one machine)")
    cv = commands.add_parser("cv", parents=[common, configured],
                             help="k-fold cross-validation of a config on its training data")
    cv.add_argument("config", help="path to a TOML config")
    cv.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    cv.add_argument("--out", help="write the scores as JSON to this file")
    evaluate = commands.add_parser("evaluate", parents=[common],
                                   help="test-split scores of a finished run folder")
    evaluate.add_argument("run_dir", help="a folder `fnn run` wrote")
    evaluate.add_argument("--out", help="also write the scores as JSON to this file")
    predict = commands.add_parser("predict", parents=[common],
                                  help="class scores of a finished run's model for new inputs")
    predict.add_argument("run_dir", help="a folder `fnn run` wrote")
    predict.add_argument("inputs", help=".npy file of raw inputs (N, ...), unscaled")
    predict.add_argument("--out", help="write the scores (N, classes) to this .npy file "
                                       "(default: print the predicted class of each input)")
    return parser


def load_config(args):
    """The config file with ``--set`` and ``--data-dir`` merged in, checked as one."""
    overrides = config_lib.parse_overrides(args.set)
    if args.data_dir is not None:
        overrides = config_lib.merged(overrides, {"data": {"data_dir": args.data_dir}})
    return config_lib.load(args.config, overrides=overrides), bool(overrides)


def job_error(args) -> str:
    """What is wrong with ``fnn run``'s process flags ("" if nothing)."""
    if args.cpu_devices is not None and args.cpu_devices < 1:
        return f"--cpu-devices must be >= 1; got {args.cpu_devices}."
    if args.processes < 1:
        return f"--processes must be >= 1; got {args.processes}."
    if args.processes == 1:
        given = [flag for flag, value in (("--process-id", args.process_id),
                                          ("--coordinator", args.coordinator)) if value is not None]
        verb = "needs" if len(given) == 1 else "need"
        return f"{' and '.join(given)} {verb} --processes N > 1." if given else ""
    if args.coordinator is None or args.process_id is None:
        return (f"--processes {args.processes} needs --coordinator HOST:PORT (process 0's "
                "address) and --process-id.")
    if args.out is None:
        return (f"--processes {args.processes} needs --out: the run folder, the same in every "
                "process.")
    if not 0 <= args.process_id < args.processes:
        return f"--process-id must be in 0 … {args.processes - 1}; got {args.process_id}."
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit():
        return f"--coordinator must be HOST:PORT; got {args.coordinator!r}."
    return ""


def start_job(args) -> None:
    """Give JAX the CPU devices asked for and join the other processes, before JAX's first
    computation (`fnn.parallel.initialize`)."""
    import jax

    if args.cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.processes > 1:
        from fnn import parallel

        parallel.initialize(args.coordinator, args.processes, args.process_id)


def run_command(args) -> None:
    """``fnn run``: check the config and the run folder completely, then train."""
    config, overridden = load_config(args)
    start_job(args)
    from fnn.experiment import check, run, run_folder  # imports every layer: a good config only

    parts = check(config)
    out = run_folder(config.name, args.out, create=False)
    # the file as written (comments and all), or the config as changed by the command line
    changes = [*(f"--set {s}" for s in args.set),
               *([f"--data-dir {args.data_dir}"] if args.data_dir is not None else [])]
    text = (config_lib.to_toml(config, f"fnn run {args.config} {' '.join(changes)}")
            if overridden else Path(args.config).read_text())
    quiet = args.quiet or bool(args.process_id)  # several processes: process 0 reports
    run(config, out, resume=args.resume, overwrite=args.overwrite,
        progress=False if quiet else "lines" if args.no_progress else True, parts=parts,
        config_text=text, log=(lambda *_: None) if quiet else print)


def cv_command(args) -> None:
    """``fnn cv``: mean ± std of the test scores over k folds of the training data."""
    config, _ = load_config(args)
    from fnn.experiment import cross_validate_config, write_json

    if args.folds < 2:
        raise config_lib.ConfigError(f"--folds must be at least 2; got {args.folds}.")
    result = cross_validate_config(config, args.folds)
    print(f"{config.name}, {args.folds}-fold cross-validation: {result}")
    if args.out:
        write_json(args.out, result._asdict())


def evaluate_command(args) -> None:
    """``fnn evaluate``: the test-split scores of a finished run."""
    from fnn.experiment import write_json
    from fnn.runs import evaluate_run

    scores = evaluate_run(args.run_dir)
    print(f"{args.run_dir}: test loss {scores['test_loss']:.4f}, test accuracy "
          f"{scores['test_accuracy']:.4f}, test macro F1 {scores['test_macro_f1']:.4f}")
    if args.out:
        write_json(args.out, scores)


def predict_command(args) -> None:
    """``fnn predict``: class scores for the inputs of a .npy file."""
    import numpy as np

    from fnn.runs import predict_run

    try:
        inputs = np.load(args.inputs, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{args.inputs} is not a .npy array file ({error}).") from None
    if not isinstance(inputs, np.ndarray):
        raise ValueError(f"{args.inputs} holds several arrays (.npz); give one .npy array.")
    scores = predict_run(args.run_dir, inputs)
    if args.out:
        np.save(args.out, scores)
        print(f"wrote the scores of {len(scores)} inputs, shape {scores.shape}, to {args.out}")
    else:
        print("\n".join(str(k) for k in scores.argmax(-1)))


COMMANDS = {"run": run_command, "cv": cv_command, "evaluate": evaluate_command,
            "predict": predict_command}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run" and args.resume and not args.out:
        print("fnn run: --resume needs --out, the run folder to continue.", file=sys.stderr)
        return 2
    if args.command == "run" and job_error(args):
        print(f"fnn run: {job_error(args)}", file=sys.stderr)
        return 2
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command == "run" else ""
        print(f"fnn {args.command}: interrupted{hint}.", file=sys.stderr)
        return 130
    except ERRORS as error:
        from fnn.experiment import RunFolderError

        if args.debug:
            traceback.print_exc()
        print(f"fnn {args.command}: {error}", file=sys.stderr)
        return 2 if isinstance(error, (*USAGE_ERRORS, RunFolderError)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
