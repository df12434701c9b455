"""Character-level language model (lecture 8, lab 4): an LSTM reads Shakespeare one character
at a time and learns to predict the next; trained with truncated BPTT and gradient clipping.

The text (``data.path`` under ``$FNN_DATA``) is split at 90 %: the first part trains, the last
10 % is held out. The model is `fnn.models.char_lm` (Embedding -> LSTM/GRU layers -> Dense over the
alphabet). Training lays the text out as ``train.batch`` parallel streams and cuts them into
chunks of ``train.chunk`` characters (`fnn.sequence.stream_batches`); each optimizer step
(clip by global norm, then Adam with a cosine-decayed learning rate) trains on one chunk,
starting from the carry the previous chunk ended with, with the gradient stopped there
(`fnn.sequence.make_tbptt_step`). The validation loss, in nats per character, is the mean over
the whole held-out text read the same way (carry passed on, eval mode).

    python experiments/char_lm.py configs/char_lm.toml [--out DIR] [--quick] [--no-progress]
    python experiments/char_lm.py --replot RUN_DIR     (curves.png from the latest checkpoint)
    python experiments/char_lm.py sample RUN_DIR [--prime "ROMEO:"] [--temperature 0.8]
                                  [--length 500] [--seed 0]

The run folder holds ``config.toml``, ``model.json`` (the alphabet and the config as run),
``checkpoint.npz`` (written every ``train.checkpoint_every`` steps; ``--resume --out`` the same folder
continues from it), ``results.json`` (curves, the final validation loss, a sample)
and ``curves.png``. ``sample`` prints text drawn from a run's latest checkpoint, reproducible
for a seed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint, optim
from fnn.config import ConfigError, from_dict, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.models.char_lm import char_lm
from fnn.plots import available as plots_available, figure, save
from fnn.sequence import (TBPTTState, evaluate_stream, generate, make_tbptt_step, stream_batches,
                          zero_carry)
from fnn.train import progress_bar


@dataclass(frozen=True)
class DataConfig:
    path: str = "text/tinyshakespeare.txt"  # under $FNN_DATA
    validation_fraction: float = 0.1  # the last part of the text, held out
    max_chars: int = 0  # use only the first max_chars characters (0: all), for smoke runs


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # lstm | gru
    embed: int = 64
    hidden: List[int] = field(default_factory=lambda: [384])
    dropout: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500  # optimizer steps, one chunk each
    batch: int = 64  # parallel streams
    chunk: int = 100  # truncated-BPTT length
    learning_rate: float = 2e-3  # Adam, cosine-decayed to final_learning_rate over `steps`
    final_learning_rate: float = 1e-4
    clip_norm: float = 5.0  # gradients clipped to this global norm
    eval_every: int = 150
    checkpoint_every: int = 50


@dataclass(frozen=True)
class SampleConfig:
    prime: str = "ROMEO:"
    temperature: float = 0.8
    length: int = 500
    seed: int = 0


@dataclass(frozen=True)
class CharLMConfig:
    name: str = "char_lm"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


QUICK = {"data": {"max_chars": 20000},
         "model": {"embed": 16, "hidden": [32]},
         "train": {"steps": 12, "batch": 8, "chunk": 20, "eval_every": 6, "checkpoint_every": 6},
         "sample": {"length": 40}}


def load_config(path, quick: bool = False) -> CharLMConfig:
    cfg = load_toml(path, CharLMConfig, overrides=QUICK if quick else None)
    t = cfg.train
    for key, value in {"train.steps": t.steps, "train.batch": t.batch, "train.chunk": t.chunk,
                       "train.eval_every": t.eval_every,
                       "train.checkpoint_every": t.checkpoint_every,
                       "model.embed": cfg.model.embed, "sample.length": cfg.sample.length}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    if cfg.model.cell not in ("lstm", "gru"):
        raise ConfigError(f"config key `model.cell` must be 'lstm' or 'gru'; got "
                          f"{cfg.model.cell!r}.")
    if not cfg.model.hidden or min(cfg.model.hidden) < 1:
        raise ConfigError(f"config key `model.hidden` must list positive sizes; got "
                          f"{cfg.model.hidden}.")
    if not 0 < cfg.data.validation_fraction < 1:
        raise ConfigError(f"config key `data.validation_fraction` must be in (0, 1); got "
                          f"{cfg.data.validation_fraction}.")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"config key `model.dropout` must be in [0, 1); got "
                          f"{cfg.model.dropout}.")
    if cfg.sample.temperature < 0:
        raise ConfigError(f"config key `sample.temperature` must be >= 0; got "
                          f"{cfg.sample.temperature}.")
    return cfg


# ----------------------------------------------------------------------------- data


def read_text(cfg: DataConfig) -> str:
    root = os.environ.get("FNN_DATA")
    path = Path(cfg.path) if root is None else Path(root) / cfg.path
    if not path.is_file():
        raise FileNotFoundError(f"char_lm: the text {path} is missing (set FNN_DATA to the data "
                                f"folder; see /work/shared/data/README.md).")
    text = path.read_text()
    return text[:cfg.max_chars] if cfg.max_chars else text


def vocabulary(text: str) -> str:
    """The alphabet: every character of the text, sorted."""
    return "".join(sorted(set(text)))


def encode(text: str, alphabet: str) -> np.ndarray:
    index = {ch: i for i, ch in enumerate(alphabet)}
    return np.fromiter((index[ch] for ch in text), np.int32, len(text))


def decode(ids, alphabet: str) -> str:
    return "".join(alphabet[int(i)] for i in np.asarray(ids).ravel())


def split_text(ids: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    cut = int(round(len(ids) * (1 - fraction)))
    return ids[:cut], ids[cut:]


# ----------------------------------------------------------------------------- model


def build(cfg: CharLMConfig, vocab: int):
    model = char_lm(vocab, embed=cfg.model.embed, hidden=tuple(cfg.model.hidden),
                    cell=cfg.model.cell, dropout=cfg.model.dropout)
    t = cfg.train
    schedule = optim.cosine_decay(t.learning_rate, t.steps, t.final_learning_rate)
    optimizer = optim.chain(optim.clip_by_global_norm(t.clip_norm), optim.adam(schedule))
    return model, optimizer


def sample_text(model, params, state, carry_shape, alphabet: str, cfg: SampleConfig) -> str:
    """``cfg.length`` characters after the priming string, drawn with ``PRNGKey(cfg.seed)``."""
    unknown = sorted(set(cfg.prime) - set(alphabet))
    if unknown:
        raise ValueError(f"char_lm: the priming string has characters the model never saw: "
                         f"{unknown}.")

    @jax.jit  # one compiled program instead of one per eager op of the priming pass
    def draw(params, state, carry, prime, key):
        return generate(model, params, state, carry, prime, cfg.length, key,
                        temperature=cfg.temperature)

    ids, _ = draw(params, state, zero_carry(carry_shape, 1), encode(cfg.prime, alphabet)[None, :],
                  jax.random.PRNGKey(cfg.seed))
    return cfg.prime + decode(np.asarray(ids)[0], alphabet)


# ----------------------------------------------------------------------------- run


def run(cfg: CharLMConfig, out, *, progress: bool = True, log=print, text: str = None) -> Dict:
    """Train (resuming from ``out/checkpoint.npz`` when present), evaluate, sample; write the
    run folder. ``text`` replaces the data file (tests)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = read_text(cfg.data) if text is None else text
    alphabet = vocabulary(text)
    train_ids, val_ids = split_text(encode(text, alphabet), cfg.data.validation_fraction)
    t = cfg.train
    x_train, y_train = stream_batches(train_ids, t.batch, t.chunk)
    val_batch = max(1, min(t.batch, (len(val_ids) - 1) // t.chunk))
    x_val, y_val = stream_batches(val_ids, val_batch, t.chunk)
    write_json(out / "model.json", {"alphabet": alphabet, "config": to_dict(cfg)})
    model, optimizer = build(cfg, len(alphabet))
    init_key, train_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    (_, carry_shape), params, state = model.init(init_key, ((None, t.chunk), None))
    train = TBPTTState(params, state, optimizer.init(params), zero_carry(carry_shape, t.batch))
    history = {"step": [], "loss": [], "val_step": [], "val_loss": [], "seconds": []}
    start_step, seconds_before = 0, 0.0
    ckpt = out / "checkpoint.npz"
    if ckpt.exists():
        saved = checkpoint.load(ckpt)
        train, start_step = saved["train"], saved["step"]
        seconds_before, history = saved["seconds"], saved["history"]
        log(f"char_lm: resuming from {ckpt} at step {start_step}")
    log(f"char_lm: {len(train_ids):,} training and {len(val_ids):,} validation characters, "
        f"alphabet of {len(alphabet)}, {x_train.shape[0]} chunks of {t.batch}x{t.chunk} per "
        f"epoch, {t.steps} steps -> {out}")
    step_fn = make_tbptt_step(model, optimizer)
    evaluate = jax.jit(lambda p, s, c: evaluate_stream(model, p, s, c, x_val, y_val))
    val_carry = zero_carry(carry_shape, val_batch)
    started = time.perf_counter() - seconds_before
    bar = progress_bar(t.steps, "char_lm", progress, unit="step")
    if bar is not None:
        bar.update(start_step)
    losses = []
    for step in range(start_step, t.steps):
        chunk = step % x_train.shape[0]
        if chunk == 0 and step > 0:  # a new epoch: the streams start over from zero carries
            train = train._replace(carry=zero_carry(carry_shape, t.batch))
        train, loss = step_fn(train, x_train[chunk], y_train[chunk],
                              jax.random.fold_in(train_key, step))
        losses.append(loss)
        done = step + 1
        if done % t.eval_every == 0 or done == t.steps:
            history["step"].append(done)
            history["loss"].append(float(jnp.mean(jnp.stack(losses))))
            losses = []
            val = float(evaluate(train.params, train.state, val_carry))
            history["val_step"].append(done)
            history["val_loss"].append(val)
            history["seconds"].append(round(time.perf_counter() - started, 1))
            log(f"step {done}: train {history['loss'][-1]:.4f}, validation {val:.4f} "
                f"nats/char ({history['seconds'][-1]:.0f} s)")
        if done % t.checkpoint_every == 0 or done == t.steps:
            checkpoint.save(ckpt, {"train": train, "step": done,
                                   "seconds": time.perf_counter() - started,
                                   "history": history})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    sample = sample_text(model, train.params, train.state, carry_shape, alphabet, cfg.sample)
    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": to_dict(cfg),
        "alphabet": alphabet,
        "data": {"train_chars": len(train_ids), "validation_chars": len(val_ids)},
        "params": sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(train.params)),
        "val_loss": history["val_loss"][-1],
        "best_val_loss": min(history["val_loss"]),
        "history": history,
        "sample": sample,
        "notes": "losses in nats per character; val_loss is the mean over the whole held-out "
                 "text read in chunks with the carry passed on (eval mode).",
    }
    write_json(out / "results.json", report)
    if plots_available():
        plot_curves(report, out / "curves.png")
    log(f"validation loss {report['val_loss']:.4f} nats/char after {t.steps} steps "
        f"({report['seconds']:.0f} s)\n--- sample (T = {cfg.sample.temperature}) ---\n{sample}")
    return report


def plot_curves(report: Dict, path):
    h = report["history"]
    fig = figure("char_lm", figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(h["step"], h["loss"], "o-", label="training (mean over the last steps)")
    ax.plot(h["val_step"], h["val_loss"], "s-", label="validation")
    ax.axhline(1.55, color="gray", linestyle="--", label="issue's floor 1.55")
    m = report["config"]["model"]
    ax.set(xlabel="optimizer step (one chunk each)", ylabel="nats per character",
           title=f"{m['cell'].upper()} {m['hidden']} on Shakespeare: validation "
                 f"{report['val_loss']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


# ----------------------------------------------------------------------------- command line


def read_json(path) -> Dict:
    return json.loads(Path(path).read_text())


def sample_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="experiments/char_lm.py sample",
                                     description="Sample text from a trained char_lm run.")
    parser.add_argument("run_dir")
    parser.add_argument("--prime", default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    saved_model = read_json(run_dir / "model.json")  # the alphabet and the config as run
    cfg = from_dict(saved_model["config"], CharLMConfig)
    overrides = {k: v for k, v in {"prime": args.prime, "temperature": args.temperature,
                                   "length": args.length, "seed": args.seed}.items()
                 if v is not None}
    sample_cfg = dataclasses.replace(cfg.sample, **overrides)
    alphabet = saved_model["alphabet"]
    model, _ = build(cfg, len(alphabet))
    (_, carry_shape), params, state = model.init(jax.random.PRNGKey(0),
                                                 ((None, cfg.train.chunk), None))
    saved = checkpoint.load(run_dir / "checkpoint.npz")
    print(sample_text(model, saved["train"].params, saved["train"].state, carry_shape, alphabet,
                      sample_cfg))
    return 0


def replot(folder: Path) -> None:
    """Draw ``curves.png`` of a run folder from its latest checkpoint (also mid-run)."""
    saved = checkpoint.load(folder / "checkpoint.npz")
    history = saved["history"]
    if not history["val_loss"]:
        raise SystemExit(f"char_lm: {folder} has no validation point yet (step {saved['step']}).")
    report = {"history": history, "config": read_json(folder / "model.json")["config"],
              "val_loss": history["val_loss"][-1]}
    print(f"step {saved['step']}: validation {report['val_loss']:.4f} nats/char -> "
          f"{plot_curves(report, folder / 'curves.png')}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sample":
        return sample_main(argv[1:])
    return experiment_main(argv, name="char_lm", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="20,000 characters, a 32-unit LSTM, 12 steps", replot=replot,
                           resumable=True)


if __name__ == "__main__":
    sys.exit(main())
