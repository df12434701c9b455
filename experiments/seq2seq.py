"""Seq2seq on dates: an LSTM encoder–decoder rewrites dates such as "29 Nov 2026" or "Sunday, 29
November 2026" as "2026-11-29" (lecture 8, issue 10).

The task is made in code (`date_examples`): every day from ``first_year`` to ``last_year`` is
written in one of the `FORMATS` (chosen at random per example); the target is its ISO form, 10
characters. A shuffled set of days is held out entirely (never seen in any format during
training): ``validation_size`` days for the validation loss during training and ``test_size``
days for the greedy decoding at the end. Sources are padded to a common length with id 0 and
the padded steps are masked (``context.seq_mask["source"]``), so the encoder's final carry is
the one after each source's last character.

The model is `fnn.models.seq2seq.seq2seq` (``cell``, ``embed``, ``hidden``, ``attention``),
trained by `fnn.fit` with Adam and gradient clipping on ``((source, decoder_in), target)``
batches with teacher forcing (``decoder_in`` = the target shifted right behind a start token)
and the per-character cross-entropy `token_cross_entropy`. The held-out days are then decoded
greedily (`greedy_decode`, each character fed back), and scored by exact match (the whole date
right) and per-character accuracy, overall and per source format.

    python experiments/seq2seq.py configs/seq2seq.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (accuracies, curves, decoded examples,
parameter count, seconds, the date) and ``curves.png`` (training and validation loss and
per-character accuracy per epoch).
"""
from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import jax
import numpy as np

import fnn
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.models.seq2seq import (
    greedy_decode, seq2seq, sequence_accuracy, shift_right, token_cross_entropy)
from fnn.optim import adam, chain, clip_by_global_norm

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


FORMATS = {  # name -> how a datetime.date is written (each one `strptime` can read back)
    "d Mon yyyy": lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    "dd Month yyyy": lambda d: f"{d.day:02d} {MONTHS[d.month - 1]} {d.year}",
    "Mon d, yyyy": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    "Month d, yyyy": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "dd/mm/yyyy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    "Weekday, d Month yyyy":
        lambda d: f"{DAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}",
}
STRPTIME = {"d Mon yyyy": "%d %b %Y", "dd Month yyyy": "%d %B %Y", "Mon d, yyyy": "%b %d, %Y",
            "Month d, yyyy": "%B %d, %Y", "dd/mm/yyyy": "%d/%m/%Y",
            "Weekday, d Month yyyy": "%A, %d %B %Y"}  # the inverse of each format (for tests)

PAD, START = 0, 0  # source padding id; the decoder's start token (target ids are 1 + char)
SOURCE_CHARS = "".join(sorted(set("".join(MONTHS + DAYS) + "0123456789 ,/")))
TARGET_CHARS = "0123456789-"
TARGET_LENGTH = 10
QUICK = {"train_size": 96, "validation_size": 32, "test_size": 32, "epochs": 1, "hidden": 8,
         "embed": 4, "batch_size": 32, "examples": 3, "cell": "gru"}  # a GRU compiles faster


@dataclass(frozen=True)
class Seq2seqConfig:
    name: str = "seq2seq"
    seed: int = 0
    first_year: int = 1950
    last_year: int = 2049
    formats: List[str] = field(default_factory=lambda: list(FORMATS))
    train_size: int = 20000
    validation_size: int = 1000
    test_size: int = 2000
    cell: str = "lstm"
    attention: str = "none"
    embed: int = 32
    hidden: int = 128
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 0.003
    clip_norm: float = 1.0
    examples: int = 8


def load_config(path, quick: bool = False) -> Seq2seqConfig:
    cfg = load_toml(path, Seq2seqConfig, overrides=QUICK if quick else None)
    unknown = [f for f in cfg.formats if f not in FORMATS]
    if unknown or not cfg.formats:
        raise ConfigError(f"config key `formats` must list some of {list(FORMATS)}; got "
                          f"{list(cfg.formats)}.")
    for key in ("train_size", "validation_size", "test_size", "embed", "hidden", "epochs",
                "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {getattr(cfg, key)}.")
    if not 1 <= cfg.first_year <= cfg.last_year <= 9999:
        raise ConfigError(f"config keys `first_year` <= `last_year` must be years in 1..9999; "
                          f"got {cfg.first_year} and {cfg.last_year}.")
    days = len(all_days(cfg.first_year, cfg.last_year))
    if cfg.validation_size + cfg.test_size >= days:
        raise ConfigError(f"config keys `validation_size` + `test_size` must leave days to train "
                          f"on: {cfg.first_year}-{cfg.last_year} has {days} days.")
    if cfg.cell not in ("lstm", "gru") or cfg.attention not in ("none", "luong"):
        raise ConfigError(f"config keys `cell` must be 'lstm' or 'gru' and `attention` 'none' or "
                          f"'luong'; got {cfg.cell!r} and {cfg.attention!r}.")
    return cfg


# ----------------------------------------------------------------------------- the task


def all_days(first_year: int, last_year: int) -> List[datetime.date]:
    """Every day from 1 January ``first_year`` to 31 December ``last_year``, in order."""
    first = datetime.date(first_year, 1, 1)
    count = (datetime.date(last_year, 12, 31) - first).days + 1
    return [first + datetime.timedelta(days=i) for i in range(count)]


def split_days(cfg: Seq2seqConfig):
    """``(train_days, validation_days, test_days)``: the days shuffled with ``cfg.seed``, the
    first ``test_size`` and the next ``validation_size`` held out; disjoint."""
    days = all_days(cfg.first_year, cfg.last_year)
    order = np.random.default_rng(cfg.seed).permutation(len(days))
    days = [days[i] for i in order]
    t, v = cfg.test_size, cfg.validation_size
    return days[t + v:], days[t:t + v], days[:t]


def date_examples(days: Sequence[datetime.date], count: int, seed: int,
                  formats: Sequence[str] = tuple(FORMATS)):
    """``count`` examples ``(source, target, format)`` drawn from ``days`` (with replacement
    if ``count`` exceeds them, else without), each written in a format drawn at random; the
    target is the ISO date ``yyyy-mm-dd``. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(days), size=count, replace=count > len(days))
    kinds = rng.integers(0, len(formats), size=count)
    out = []
    for i, k in zip(picks, kinds):
        day, fmt = days[i], formats[k]
        out.append((FORMATS[fmt](day), day.isoformat(), fmt))
    return out


def encode_sources(strings: Sequence[str], length: Optional[int] = None):
    """``(ids, mask)``: ids (N, S) int32 (character c -> 1 + its index in `SOURCE_CHARS`,
    padding `PAD`) and mask (N, S) float32, 1 on the real characters; S = ``length`` or the
    longest string."""
    length = length or max(len(s) for s in strings)
    ids = np.zeros((len(strings), length), np.int32)
    mask = np.zeros((len(strings), length), np.float32)
    for row, s in enumerate(strings):
        if len(s) > length:
            raise ValueError(f"encode_sources: {s!r} is longer than `length` = {length}.")
        ids[row, :len(s)] = [1 + SOURCE_CHARS.index(c) for c in s]
        mask[row, :len(s)] = 1
    return ids, mask


def encode_targets(strings: Sequence[str]):
    """Target ids (N, 10) int32: character c -> 1 + its index in `TARGET_CHARS` (0 is START)."""
    return np.array([[1 + TARGET_CHARS.index(c) for c in s] for s in strings], np.int32)


def decode_targets(ids) -> List[str]:
    """The strings of target ids (N, T); an id that is no character (START) shows as ``?``."""
    return ["".join(TARGET_CHARS[i - 1] if 1 <= i <= len(TARGET_CHARS) else "?" for i in row)
            for row in np.asarray(ids)]


def make_split(examples, length: int):
    """``(batch, formats)``: an `fnn.Batch` of inputs ``(source, decoder_in)``, targets and the
    source mask as ``seq_mask={"source": mask}``, and each example's format name."""
    sources, targets, formats = zip(*examples)
    ids, mask = encode_sources(sources, length)
    y = encode_targets(targets)
    decoder_in = shift_right(y, START)
    return fnn.Batch((ids, decoder_in), y, seq_mask={"source": mask}), list(formats)


# ----------------------------------------------------------------------------- the run


def run(cfg: Seq2seqConfig, out: Path, *, progress: bool = True) -> dict:
    train_days, val_days, test_days = split_days(cfg)
    splits = {"train": date_examples(train_days, cfg.train_size, cfg.seed + 1, cfg.formats),
              "validation": date_examples(val_days, cfg.validation_size, cfg.seed + 2,
                                          cfg.formats),
              "test": date_examples(test_days, cfg.test_size, cfg.seed + 3, cfg.formats)}
    length = max(len(s) for examples in splits.values() for s, _, _ in examples)
    (train, _), (val, _), (test, test_formats) = (make_split(splits[k], length)
                                                  for k in ("train", "validation", "test"))
    print(f"{cfg.name}: {cfg.train_size} training examples from {len(train_days)} days, "
          f"{len(val_days)} validation and {len(test_days)} test days held out; sources up to "
          f"{length} characters, targets {TARGET_LENGTH}", flush=True)
    model = seq2seq(1 + len(SOURCE_CHARS), 1 + len(TARGET_CHARS), embed=cfg.embed,
                    hidden=cfg.hidden, cell=cfg.cell,
                    attention=None if cfg.attention == "none" else cfg.attention)
    # init compiled as one program (eagerly, each of its small ops compiles on its own)
    params, state = jax.jit(lambda key: model.init(key, ((None, length),
                                                         (None, TARGET_LENGTH)))[1:])(
        jax.random.PRNGKey(cfg.seed + 4))
    optimizer = chain(clip_by_global_norm(cfg.clip_norm), adam(cfg.learning_rate))
    started = time.perf_counter()
    result = fnn.fit(model, params, state, train, loss=token_cross_entropy, optimizer=optimizer,
                     key=jax.random.PRNGKey(cfg.seed + 5), epochs=cfg.epochs,
                     batch_size=cfg.batch_size, validation_data=val,
                     progress=True if progress else "lines")
    train_seconds = time.perf_counter() - started

    source, _ = test.inputs
    decode = jax.jit(lambda p, s, x, m: greedy_decode(model, p, s, x, start=START,
                                                      length=TARGET_LENGTH, source_mask=m))
    predicted = np.asarray(decode(result.params, result.state, source, test.seq_mask["source"]))
    exact, tokens = (float(a) for a in sequence_accuracy(predicted, test.targets))
    right = np.all(predicted == test.targets, axis=1)
    per_format = {f: float(np.mean(right[[i for i, g in enumerate(test_formats) if g == f]]))
                  for f in cfg.formats if f in test_formats}
    texts = decode_targets(predicted)
    wrong = [i for i in range(len(texts)) if not right[i]]
    shown = list(range(min(cfg.examples, len(texts))))
    shown += [i for i in wrong if i not in shown][:cfg.examples]
    examples = [{"source": splits["test"][i][0], "target": splits["test"][i][1],
                 "decoded": texts[i], "right": bool(right[i])} for i in shown]
    results = {"name": cfg.name, "date": time.strftime("%Y-%m-%d"), "model": model.name,
               "parameters": fnn.count_params(result.params),
               "exact_match": exact, "token_accuracy": tokens, "exact_match_by_format": per_format,
               "test_examples": len(texts), "errors": len(wrong),
               "history": result.history, "train_seconds": round(train_seconds, 1),
               "examples": examples, "config": to_dict(cfg)}
    write_json(out / "results.json", results)
    plot(result.history, out / "curves.png", cfg, exact)
    print(f"\ngreedy decoding of {len(texts)} held-out dates: exact match {100 * exact:.2f} %, "
          f"per character {100 * tokens:.2f} % ({len(wrong)} wrong); trained in "
          f"{train_seconds:.0f} s")
    for f, acc in per_format.items():
        print(f"  {f:24s} {100 * acc:6.2f} %")
    for e in examples:
        print(f"  {e['source']:>28s} -> {e['decoded']}  " + ("ok" if e["right"] else
                                                              f"WRONG (want {e['target']})"))
    return results


def plot(history, path, cfg: Seq2seqConfig, exact: float) -> None:
    from fnn import plots

    if not plots.available():
        print("no plot: matplotlib is missing (pip install 'fnn[viz]')")
        return
    fig = plots.figure("seq2seq", figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key, label in (("", "training"), ("val_", "validation (held-out days)")):
        if f"{key}loss" in history:
            left.semilogy(epochs, history[f"{key}loss"], "o-", label=label)
            right.plot(epochs, 100 * np.asarray(history[f"{key}accuracy"]), "o-", label=label)
    left.set(xlabel="epoch", ylabel="cross-entropy (nats per character)",
             title="loss, teacher forcing")
    right.set(xlabel="epoch", ylabel="per-character accuracy (%)",
              title=f"teacher forcing; greedy exact match {100 * exact:.1f} %")
    for ax in (left, right):
        ax.legend()
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"dates to ISO: {cfg.cell.upper()} {cfg.hidden} encoder-decoder"
                 + ("" if cfg.attention == "none" else f", {cfg.attention} attention"))
    fig.tight_layout()
    plots.save(fig, path)


def main(argv=None) -> int:
    return experiment_main(sys.argv[1:] if argv is None else argv, name="seq2seq",
                           description=__doc__.splitlines()[0], load_config=load_config,
                           run=lambda cfg, out, progress: run(cfg, Path(out), progress=progress),
                           quick="96 examples, a GRU of 8 units, 1 epoch")


if __name__ == "__main__":
    sys.exit(main())
