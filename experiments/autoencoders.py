"""Autoencoders (course lecture 6): the 8-3-8 encoder problem, dense and convolutional
autoencoders on MNIST with several code sizes, and denoising autoencoders.

1. **8-3-8**: the eight one-hot vectors of length 8 through three sigmoid hidden units and back
   (logit outputs, sigmoid cross-entropy, full batch, Adam), for several seeds. Reported per seed:
   whether every pattern comes back as the largest output (100 %), the hidden codes, and how close
   they are to a binary code (largest and mean distance of a code entry from {0, 1}; whether the
   codes rounded to 0/1 are eight distinct 3-bit words).
2. **MNIST**: `fnn.models.dense_autoencoder` 784-hidden-code-hidden-784 (ReLU, linear code,
   logit outputs, sigmoid cross-entropy = Bernoulli likelihood) for each code size. Reported:
   test reconstruction error (mean squared error per pixel of sigmoid(outputs), and cross-entropy
   per image); plotted: reconstructions of the same test digits for every code size, and the
   error against the code size.
3. **Denoising**: `fnn.models.denoising_autoencoder` with masking noise and with Gaussian noise
   (corrupted input -> clean target), compared on corrupted test digits with the plain
   autoencoder of the same code size and with the corrupted input itself.
4. **Convolutional**: `fnn.models.autoencoders.conv_autoencoder` (stride-2 convolutions down to
   a dense code, transposed convolutions back; trained as in part 2) for each of its code
   sizes; the same errors, set beside the dense autoencoder's of the same code size, and its
   reconstructions plotted beside the dense ones.

Run from the repository root (``--quick`` is a smoke run on a few images)::

    python experiments/autoencoders.py configs/autoencoders.toml [--out DIR] [--quick] [--no-progress]

Without the MNIST files (``$FNN_DATA/mnist`` or the cache) parts 2 to 4 are skipped with a
message; the run folder holds ``results.json``, ``codes_838.txt`` and the PNG plots.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from fnn.config import ConfigError, load as load_toml, to_dict
from fnn.experiment import experiment_main, mnist_or_none, write_json
from fnn.losses import sigmoid_binary_cross_entropy
from fnn.models import dense_autoencoder, denoising_autoencoder, encode
from fnn.models.autoencoders import NOISES, code_binarity, conv_autoencoder, corruption_layer
from fnn.optim import adam
from fnn.plots import available as plots_available, figure, plot_image_rows, save
from fnn.train import Batch, fit, make_train_step

LOSS = "sigmoid_binary_cross_entropy"
NO_METRICS = lambda outputs, targets, mask: {}  # noqa: E731  (fit's default assumes classes)


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class EncoderProblem:
    seeds: int = 5
    steps: int = 5000  # full-batch Adam steps
    learning_rate: float = 0.05


@dataclass(frozen=True)
class MnistAutoencoders:
    hidden: List[int] = field(default_factory=lambda: [256])
    code_sizes: List[int] = field(default_factory=lambda: [2, 16, 64])
    activation: str = "relu"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam
    train_size: int = 0  # 0: all 60,000 training images
    test_size: int = 0  # 0: all 10,000 test images
    shown: int = 10  # test digits in the reconstruction plots


@dataclass(frozen=True)
class Denoising:
    enabled: bool = True
    code_size: int = 64
    noises: List[str] = field(default_factory=lambda: ["masking", "gaussian"])
    levels: List[float] = field(default_factory=lambda: [0.5, 0.5])  # rate / std per noise


@dataclass(frozen=True)
class ConvAutoencoders:
    enabled: bool = True
    filters: List[int] = field(default_factory=lambda: [16, 32])  # one stride-2 conv each
    code_sizes: List[int] = field(default_factory=lambda: [16, 64])
    kernel_size: int = 3


@dataclass(frozen=True)
class AutoencoderConfig:
    name: str = "autoencoders"
    seed: int = 0
    encoder_838: EncoderProblem = field(default_factory=EncoderProblem)
    mnist: MnistAutoencoders = field(default_factory=MnistAutoencoders)
    denoising: Denoising = field(default_factory=Denoising)
    conv: ConvAutoencoders = field(default_factory=ConvAutoencoders)


QUICK = {"encoder_838": {"seeds": 2, "steps": 1500},
         "mnist": {"code_sizes": [2, 16], "epochs": 1, "train_size": 600, "test_size": 200,
                   "hidden": [32]},
         "denoising": {"code_size": 16},
         "conv": {"filters": [4], "code_sizes": [16]}}


def load_config(path, quick: bool = False) -> AutoencoderConfig:
    cfg = load_toml(path, AutoencoderConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: AutoencoderConfig) -> None:
    positive = {"encoder_838.seeds": cfg.encoder_838.seeds, "encoder_838.steps": cfg.encoder_838.steps,
                "mnist.epochs": cfg.mnist.epochs, "mnist.batch_size": cfg.mnist.batch_size,
                "denoising.code_size": cfg.denoising.code_size, "mnist.shown": cfg.mnist.shown}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    for key, sizes in (("mnist.code_sizes", cfg.mnist.code_sizes),
                       ("conv.code_sizes", cfg.conv.code_sizes),
                       ("conv.filters", cfg.conv.filters)):
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"config key `{key}` must list positive sizes; got {sizes}.")
    if 28 % 2 ** len(cfg.conv.filters):
        raise ConfigError(f"config key `conv.filters` lists {len(cfg.conv.filters)} stride-2 "
                          f"convolutions; 28×28 digits allow at most 2.")
    if cfg.conv.kernel_size < 1:
        raise ConfigError(f"config key `conv.kernel_size` must be >= 1; got "
                          f"{cfg.conv.kernel_size}.")
    d = cfg.denoising
    if len(d.noises) != len(d.levels):
        raise ConfigError(f"config keys `denoising.noises` and `denoising.levels` must have one "
                          f"level per noise; got {len(d.noises)} noises, {len(d.levels)} levels.")
    for i, (noise, level) in enumerate(zip(d.noises, d.levels)):
        if noise not in NOISES:
            raise ConfigError(f"config key `denoising.noises[{i}]` must be one of {NOISES}; "
                              f"got {noise!r}.")
        if not (0 <= level < 1 if noise == "masking" else level >= 0):
            raise ConfigError(f"config key `denoising.levels[{i}]` = {level} is not a valid "
                              f"{noise} level.")


# ----------------------------------------------------------------------------- shared helpers

# ----------------------------------------------------------------------------- 8-3-8

def train_838(seed: int, cfg: EncoderProblem) -> Dict:
    """One 8-3-8 run: full-batch Adam for ``cfg.steps`` steps (a `lax.scan` of the train step)."""
    model = dense_autoencoder((8,), [], 3, code_activation="sigmoid")
    _, params, state = model.init(jax.random.PRNGKey(seed), (None, 8))
    x = np.eye(8, dtype=np.float32)
    optimizer = adam(cfg.learning_rate)
    step = make_train_step(model, LOSS, optimizer, metrics=NO_METRICS)
    batch = Batch(x, x, np.ones(8, np.float32))

    def body(carry, _):
        params, opt_state = carry
        params, _, opt_state, metrics = step(params, state, opt_state, batch, None)
        return (params, opt_state), metrics["loss"]

    (params, _), losses = jax.lax.scan(body, (params, optimizer.init(params)), None,
                                       length=cfg.steps)

    @jax.jit  # the outputs and the codes in one compiled program, not one per eager op
    def outputs_and_codes(params):
        return model.apply(params, state, x)[0], encode(model, params, state, x)

    outputs, codes = (np.asarray(a) for a in outputs_and_codes(params))
    losses = np.asarray(losses)  # indexed on the host below
    binarity = code_binarity(codes)
    return {"seed": seed, "accuracy": float(np.mean(outputs.argmax(-1) == np.arange(8))),
            "final_loss": float(losses[-1]), "codes": codes.round(4).tolist(),
            "within_0.1_of_binary": float(np.mean(np.minimum(codes, 1 - codes) < 0.1)),
            **binarity, "loss_curve": np.asarray(losses)[:: max(cfg.steps // 200, 1)].tolist()}


def format_codes(run: Dict) -> str:
    lines = [f"seed {run['seed']}: accuracy {run['accuracy']:.0%}, final loss "
             f"{run['final_loss']:.2e}, max distance from binary {run['max_distance']:.3f}, "
             f"mean {run['mean_distance']:.3f}, rounded codes distinct: {run['distinct']}"]
    for i, (code, bits) in enumerate(zip(run["codes"], run["binary_codes"])):
        lines.append(f"  pattern {i}: h = [{', '.join(f'{h:.3f}' for h in code)}]  ~ "
                     f"{''.join(map(str, bits))}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MNIST

def train_autoencoder(model, data, cfg: MnistAutoencoders, seed: int, progress: bool, log):
    init_key, fit_key = jax.random.split(jax.random.PRNGKey(seed))
    x = data["train"][0]
    _, params, state = model.init(init_key, (None, *x.shape[1:]))
    result = fit(model, params, state, (x, x), loss=LOSS, optimizer=adam(cfg.learning_rate),
                 key=fit_key, epochs=cfg.epochs, batch_size=cfg.batch_size, metrics=NO_METRICS,
                  progress=progress, log=log)
    return result


def outputs_of(model, result):
    """The trained model's eval-mode outputs (logits) as one jitted function of the inputs."""
    return jax.jit(lambda x: model.apply(result.params, result.state, x)[0])


def reconstruction_errors(logits, targets) -> Dict[str, float]:
    """Errors of reconstructing ``targets`` from the outputs ``logits``: mean squared error per
    pixel of sigmoid(logits), and sigmoid cross-entropy per image (nats)."""
    bce, mse = _error_means(logits, targets)
    return {"mse_per_pixel": float(mse), "bce_per_image": float(bce)}


@jax.jit  # both means in one compiled program, not one per eager op
def _error_means(logits, targets):
    return (jnp.mean(sigmoid_binary_cross_entropy(logits, targets)),
            jnp.mean(jnp.square(jax.nn.sigmoid(logits) - targets)))


def corrupt(noise: str, level: float, x, key) -> np.ndarray:
    """The training corruption applied once to ``x`` (the noise layer in train mode)."""
    layer = corruption_layer(noise, level)
    apply = jax.jit(lambda x, key: layer.apply({}, {}, x, key=key, train=True)[0])  # one program
    return np.asarray(apply(np.asarray(x), key))


def run_mnist(cfg: AutoencoderConfig, data, out: Path, progress: bool, log) -> Dict:
    m = cfg.mnist
    x_test = data["test"][0]
    shown = x_test[: m.shown]
    results, rows, plain = {}, {"test digit": shown}, {}
    for code_size in m.code_sizes:
        model = dense_autoencoder((28, 28), m.hidden, code_size, activation=m.activation)
        log(f"dense autoencoder 784-{'-'.join(map(str, m.hidden))}-{code_size}: training")
        result = train_autoencoder(model, data, m, cfg.seed, progress, log)
        outputs = outputs_of(model, result)
        logits = outputs(x_test)
        results[str(code_size)] = {**reconstruction_errors(logits, x_test),
                                   "train_loss": result.history["loss"]}
        rows[f"code {code_size}"] = np.asarray(jax.nn.sigmoid(logits[: m.shown]))
        plain[code_size] = outputs
        log(f"code {code_size}: test MSE/pixel {results[str(code_size)]['mse_per_pixel']:.4f}, "
            f"BCE/image {results[str(code_size)]['bce_per_image']:.1f}")
    if plots_available():
        plot_image_rows(rows, out / "reconstructions.png",
                        f"Dense autoencoders 784-{'-'.join(map(str, m.hidden))}-code on MNIST: "
                        f"test digits and their reconstructions")
    return {"by_code_size": results, "plain_models": plain}


def run_denoising(cfg: AutoencoderConfig, data, plain: Dict, out: Path, progress: bool, log
                  ) -> Dict:
    m, d = cfg.mnist, cfg.denoising
    x_test = data["test"][0]
    if d.code_size in plain:
        base = plain[d.code_size]
    else:
        base_model = dense_autoencoder((28, 28), m.hidden, d.code_size, activation=m.activation)
        base = outputs_of(base_model, train_autoencoder(base_model, data, m, cfg.seed, progress,
                                                        log))
    report, rows = {}, {}
    for i, (noise, level) in enumerate(zip(d.noises, d.levels)):
        model = denoising_autoencoder((28, 28), m.hidden, d.code_size, noise=noise, level=level,
                                      activation=m.activation)
        log(f"denoising autoencoder, {noise} noise {level}: training")
        result = train_autoencoder(model, data, m, cfg.seed, progress, log)
        outputs = outputs_of(model, result)
        noisy = corrupt(noise, level, x_test, jax.random.PRNGKey(1000 + i))
        plain_logits, denoised_logits = base(noisy), outputs(noisy)
        report[f"{noise} {level}"] = {
            "noisy_input_mse_per_pixel": float(np.mean((noisy - x_test) ** 2)),
            "plain": reconstruction_errors(plain_logits, x_test),
            "denoising": reconstruction_errors(denoised_logits, x_test),
            "denoising_on_clean": reconstruction_errors(outputs(x_test), x_test),
            "train_loss": result.history["loss"]}
        r = report[f"{noise} {level}"]
        log(f"{noise} {level}: MSE/pixel to the clean digits: noisy input "
            f"{r['noisy_input_mse_per_pixel']:.4f}, plain autoencoder "
            f"{r['plain']['mse_per_pixel']:.4f}, denoising {r['denoising']['mse_per_pixel']:.4f}")
        n = m.shown
        rows.update({f"{noise} noisy": np.clip(noisy[:n], 0, 1),
                     f"{noise} plain AE": np.asarray(jax.nn.sigmoid(plain_logits[:n])),
                     f"{noise} denoised": np.asarray(jax.nn.sigmoid(denoised_logits[:n]))})
    rows["clean"] = x_test[: m.shown]
    if plots_available():
        plot_image_rows(rows, out / "denoising.png",
                        f"Denoising (code {d.code_size}): corrupted test digits, the plain "
                        f"autoencoder's and the denoising autoencoder's outputs, clean digits")
    return report


def run_conv(cfg: AutoencoderConfig, data, plain: Dict, out: Path, progress: bool, log) -> Dict:
    """Part 4: a convolutional autoencoder per code size, beside the dense one of that size."""
    m, c = cfg.mnist, cfg.conv
    x_test = data["test"][0]
    shape = "-".join(map(str, c.filters))
    results, rows = {}, {"test digit": x_test[: m.shown]}
    for code_size in c.code_sizes:
        model = conv_autoencoder((28, 28), c.filters, code_size, kernel_size=c.kernel_size,
                                 activation=m.activation)
        log(f"convolutional autoencoder, filters {shape}, code {code_size}: training")
        result = train_autoencoder(model, data, m, cfg.seed, progress, log)
        logits = outputs_of(model, result)(x_test)
        entry = {**reconstruction_errors(logits, x_test), "train_loss": result.history["loss"]}
        if code_size in plain:
            dense_logits = plain[code_size](x_test)
            entry["dense_same_code"] = reconstruction_errors(dense_logits, x_test)
            rows[f"dense, code {code_size}"] = np.asarray(jax.nn.sigmoid(dense_logits[: m.shown]))
        rows[f"conv, code {code_size}"] = np.asarray(jax.nn.sigmoid(logits[: m.shown]))
        results[str(code_size)] = entry
        log(f"conv code {code_size}: test MSE/pixel {entry['mse_per_pixel']:.4f}, BCE/image "
            f"{entry['bce_per_image']:.1f}" + (
                f" (dense: {entry['dense_same_code']['mse_per_pixel']:.4f}, "
                f"{entry['dense_same_code']['bce_per_image']:.1f})" if code_size in plain else ""))
    if plots_available():
        plot_image_rows(rows, out / "conv_reconstructions.png",
                        f"Convolutional autoencoders (stride-2 convolutions {shape}, dense code) "
                        f"and dense ones on MNIST test digits")
    return {"filters": list(c.filters), "kernel_size": c.kernel_size, "by_code_size": results}


def plot_errors(results: Dict, path, conv: Dict = None) -> Path:
    """Test MSE against the code size (dense, and convolutional when ``conv`` is given) and
    the training curves."""
    sizes = [int(k) for k in results]
    fig = figure("plot_errors", figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(sizes, [results[str(s)]["mse_per_pixel"] for s in sizes], "o-", label="dense")
    ticks = set(sizes)
    if conv:
        conv_sizes = [int(k) for k in conv]
        ticks |= set(conv_sizes)
        left.plot(conv_sizes, [conv[str(s)]["mse_per_pixel"] for s in conv_sizes], "s--",
                  label="convolutional")
        left.legend()
    left.set(xscale="log", xlabel="code size", ylabel="test MSE per pixel",
             title="reconstruction error vs code size")
    left.minorticks_off()
    left.set_xticks(sorted(ticks), [str(s) for s in sorted(ticks)])
    left.grid(alpha=0.3)
    for s in sizes:
        curve = results[str(s)]["train_loss"]
        right.plot(np.arange(1, len(curve) + 1), curve, "o-", label=f"code {s}")
    for s in (conv or {}):
        curve = conv[s]["train_loss"]
        right.plot(np.arange(1, len(curve) + 1), curve, "s--", label=f"conv, code {s}")
    right.set(xlabel="epoch", ylabel="train BCE per image", title="training curves")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.legend()
    right.grid(alpha=0.3)
    return save(fig, path)


# ----------------------------------------------------------------------------- run

def run(cfg: AutoencoderConfig, out, *, progress: bool = True, data=None, log=print) -> Dict:
    """All four parts; ``data`` replaces MNIST (e.g. in tests: ``{"train", "test"}`` of images
    (N, 28, 28) in [0, 1] and labels); MNIST parts are skipped when there is none."""
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = [train_838(cfg.seed + s, cfg.encoder_838) for s in range(cfg.encoder_838.seeds)]
    text = "\n\n".join(format_codes(r) for r in runs)
    (out / "codes_838.txt").write_text(text + "\n")
    log("8-3-8 encoder problem, hidden codes:\n" + text)
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "config": to_dict(cfg),
              "encoder_838": {"runs": runs,
                              "all_100_percent": all(r["accuracy"] == 1.0 for r in runs),
                              "distinct_binary_codes": sum(r["distinct"] for r in runs),
                              "max_distance_median": float(np.median([r["max_distance"]
                                                                      for r in runs]))}}
    data = mnist_or_none(cfg.mnist.train_size, cfg.mnist.test_size, log) if data is None else data
    if data is None:
        report["mnist"] = report["denoising"] = report["conv"] = \
            "skipped: the MNIST files are missing"
    else:
        mnist = run_mnist(cfg, data, out, progress, log)
        report["mnist"] = {"train": len(data["train"][0]), "test": len(data["test"][0]),
                           "by_code_size": mnist["by_code_size"]}
        report["denoising"] = (run_denoising(cfg, data, mnist["plain_models"], out, progress, log)
                               if cfg.denoising.enabled else "disabled in the config")
        report["conv"] = (run_conv(cfg, data, mnist["plain_models"], out, progress, log)
                          if cfg.conv.enabled else "disabled in the config")
        if plots_available():
            plot_errors(mnist["by_code_size"], out / "reconstruction_error.png",
                        report["conv"]["by_code_size"] if cfg.conv.enabled else None)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "results.json", report)
    return report


def main(argv=None) -> int:
    return experiment_main(argv, name="autoencoders", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="2 seeds of 8-3-8; 600 MNIST digits, 1 epoch, code sizes 2 and "
                                 "16, a conv autoencoder with 4 filters")


if __name__ == "__main__":
    sys.exit(main())
