"""The course's "hello" example: an Elman RNN with 3 hidden units learns to predict the next
character of "hello" (lecture 8; the example of Karpathy's "The Unreasonable Effectiveness of
Recurrent Neural Networks").

The vocabulary is the word's characters in order of first appearance (h, e, l, o), each one-hot.
The input is the word without its last character ("hell"), the target the word without its first
("ello"): at step t the network reads character t and scores the four characters for step t + 1.
The model is ``OneHot(4) -> RNN(ElmanCell(3)) -> Dense(4)``::

    h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h),    y_t = h_t W_hy + b_y
    (y_t the scores; softmax(y_t) the probabilities of the next character)

trained by `fnn.fit` on the one sequence (full batch, one update per epoch) with the per-step
cross-entropy. The task needs the recurrent state: "l" is followed once by "l" and once by "o".
The output scores y_t (a characters × steps matrix, as the course's slide shows them) are
printed before and after training.

    python experiments/hello.py configs/hello.toml [--out DIR] [--quick] [--no-progress]

The run folder holds ``config.toml``, ``results.json`` (the score matrices and softmax
probabilities before and after, the predicted characters, the loss per update, the date) and
``scores.png`` (the two score matrices as heatmaps, the target of each step outlined, and the loss
curve).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import jax
import numpy as np

import fnn
from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, write_json
from fnn.layers import RNN, Dense, ElmanCell, OneHot, serial
from fnn.models.seq2seq import token_cross_entropy
from fnn.optim import adam, sgd

QUICK = {"updates": 20}


@dataclass(frozen=True)
class HelloConfig:
    name: str = "hello"
    seed: int = 0
    word: str = "hello"
    hidden: int = 3
    optimizer: str = "adam"
    learning_rate: float = 0.05
    updates: int = 300


def load_config(path, quick: bool = False) -> HelloConfig:
    cfg = load_toml(path, HelloConfig, overrides=QUICK if quick else None)
    if len(cfg.word) < 2:
        raise ConfigError(f"config key `word` must have at least 2 characters; got {cfg.word!r}.")
    for key in ("hidden", "updates"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {getattr(cfg, key)}.")
    if cfg.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"config key `optimizer` must be 'adam' or 'sgd'; got {cfg.optimizer!r}.")
    if not cfg.learning_rate > 0:
        raise ConfigError(f"config key `learning_rate` must be > 0; got {cfg.learning_rate}.")
    return cfg


def vocabulary(word: str) -> List[str]:
    """The word's distinct characters in order of first appearance: "hello" -> h, e, l, o."""
    return list(dict.fromkeys(word))


def sequences(word: str):
    """``(inputs, targets)`` ids, each (1, len(word) − 1) int32: the word without its last and
    without its first character, in the ids of `vocabulary`."""
    vocab = vocabulary(word)
    ids = np.array([[vocab.index(c) for c in word]], np.int32)
    return ids[:, :-1], ids[:, 1:]


def model_for(vocab_size: int, hidden: int):
    """One-hot characters -> Elman RNN (``hidden`` units, tanh) -> Dense scores, per step."""
    return serial(OneHot(vocab_size), RNN(ElmanCell(hidden)), Dense(vocab_size))


def score_table(scores, vocab, inputs) -> str:
    """The scores (steps, vocab) as the course prints them: one row per output character, one
    column per step, headed by the character read at that step."""
    head = "     " + "".join(f"{repr(vocab[i]):>7s}" for i in inputs)
    rows = [f"  {c!r}" + "".join(f"{s:7.2f}" for s in scores[:, k]) for k, c in enumerate(vocab)]
    return "\n".join([head] + rows)


def run(cfg: HelloConfig, out: Path, *, progress: bool = True) -> dict:
    vocab = vocabulary(cfg.word)
    x, y = sequences(cfg.word)
    model = model_for(len(vocab), cfg.hidden)
    # compiled as whole programs: eagerly, each small op of init (e.g. the QR of the orthogonal
    # initializer) and the scan compile on their own, which is most of this run's time
    params, state = jax.jit(lambda key: model.init(key, (None, x.shape[1]))[1:])(
        jax.random.PRNGKey(cfg.seed))
    scores_of = jax.jit(lambda p, s: model.apply(p, s, x)[0][0])
    scores_before = np.asarray(scores_of(params, state))
    optimizer = (adam if cfg.optimizer == "adam" else sgd)(cfg.learning_rate)
    started = time.perf_counter()
    result = fnn.fit(model, params, state, (x, y), loss=token_cross_entropy, optimizer=optimizer,
                     key=jax.random.PRNGKey(cfg.seed + 1), epochs=cfg.updates, batch_size="full",
                     progress=False)
    seconds = time.perf_counter() - started
    scores_after = np.asarray(scores_of(result.params, result.state))

    def predicted(scores):
        return "".join(vocab[i] for i in np.argmax(scores, axis=-1))

    target = cfg.word[1:]
    results = {"name": cfg.name, "date": time.strftime("%Y-%m-%d"), "vocabulary": vocab,
               "inputs": cfg.word[:-1], "targets": target,
               "parameters": fnn.count_params(result.params),
               "scores_before": scores_before, "scores_after": scores_after,
               "probabilities_before": np.asarray(jax.nn.softmax(scores_before, -1)),
               "probabilities_after": np.asarray(jax.nn.softmax(scores_after, -1)),
               "predicted_before": predicted(scores_before),
               "predicted_after": predicted(scores_after),
               "learned": predicted(scores_after) == target,
               "loss": result.history["loss"], "final_loss": result.history["loss"][-1],
               "seconds": round(seconds, 2), "config": to_dict(cfg),
               "layout": "scores[t][k]: the score of character vocabulary[k] at step t, after "
                         "reading inputs[t]; the target of step t is targets[t]"}
    write_json(out / "results.json", results)
    plot(results, out / "scores.png")
    print(f"{cfg.name}: Elman RNN with {cfg.hidden} hidden units ({results['parameters']} "
          f"parameters) reads {cfg.word[:-1]!r}, predicts {target!r}")
    for when in ("before", "after"):
        print(f"\noutput scores {when} training ({'initial' if when == 'before' else cfg.updates}"
              f"{'' if when == 'before' else ' updates'}; columns: the character read, rows: "
              f"the next character's score) -> predicts {results['predicted_' + when]!r}")
        print(score_table(results[f"scores_{when}"], vocab, x[0]))
    print(f"\nloss {results['loss'][0]:.3f} -> {results['final_loss']:.4f} nats per character "
          f"in {seconds:.1f} s")
    return results


def plot(results: dict, path) -> None:
    from fnn import plots

    if not plots.available():
        print("no plot: matplotlib is missing (pip install 'fnn[viz]')")
        return
    from matplotlib.patches import Rectangle

    vocab, inputs, targets = results["vocabulary"], results["inputs"], results["targets"]
    fig = plots.figure("hello", figsize=(13, 3.8))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.2]})
    for ax, when in zip(axes, ("before", "after")):
        scores = np.asarray(results[f"scores_{when}"]).T  # (vocab, steps)
        limit = max(np.abs(scores).max(), 1e-6)
        image = ax.imshow(scores, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for k in range(scores.shape[0]):
            for t in range(scores.shape[1]):
                ax.text(t, k, f"{scores[k, t]:.2f}", ha="center", va="center", fontsize=9)
        for t, c in enumerate(targets):  # the character that should win at step t
            ax.add_patch(Rectangle((t - 0.5, vocab.index(c) - 0.5), 1, 1, fill=False,
                                   edgecolor="black", linewidth=2.5))
        ax.set(xticks=range(len(inputs)), xticklabels=[f"'{c}'" for c in inputs],
               yticks=range(len(vocab)), yticklabels=[f"'{c}'" for c in vocab],
               xlabel="character read at step t", ylabel="score of the next character",
               title=f"{when} training: predicts {results['predicted_' + when]!r}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    loss = np.asarray(results["loss"], np.float64)
    axes[2].semilogy(np.arange(1, len(loss) + 1), loss)
    axes[2].set(xlabel="update", ylabel="cross-entropy (nats per character)",
                title="training loss")
    axes[2].grid(True, alpha=0.3)
    fig.tight_layout()
    plots.save(fig, path)


def main(argv=None) -> int:
    return experiment_main(sys.argv[1:] if argv is None else argv, name="hello",
                           description=__doc__.splitlines()[0], load_config=load_config,
                           run=lambda cfg, out, progress: run(cfg, Path(out), progress=progress),
                           quick="20 updates")


if __name__ == "__main__":
    sys.exit(main())
