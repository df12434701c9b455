"""The variational autoencoder on MNIST (course lecture 9): a 2-D latent space to look at and a
larger one for samples.

For each latent size, `fnn.models.dense_vae` (784-hidden-(μ, log σ²) encoder, z = μ + σ ⊙ ε with
an explicit key, hidden-784 Bernoulli decoder) is trained with `fnn.fit` on the negative ELBO
(`fnn.models.elbo_loss`: sigmoid cross-entropy + the closed-form KL), with Adam. Reported: the
test negative ELBO (nats per image, estimated with ``test_samples`` draws of z per image, in
train mode with a fixed key: an unbiased estimate of −ELBO), its two terms, and the training and
validation curves. (The ``val_*`` entries of the history come from `fnn.fit`'s evaluation, in eval
mode where z = μ: they are not an ELBO and come out lower than the sampled one.) Plotted:

* 2-D latent: the test digits' posterior means coloured by digit (``latent_space.png``), and the
  manifold of decoded z on a grid of prior quantiles (``manifold.png``);
* every latent size: samples decoded from z ~ N(0, I) (``samples_z<d>.png``), reconstructions and
  interpolations between test digits in latent space (``interpolations_z<d>.png``), and the ELBO
  curves (``elbo_curves.png``).

Images are binarized (pixel > 0.5) when ``data.binarize`` is set, so that the Bernoulli
likelihood and the −ELBO in nats are those of binary data.

Run from the repository root (``--quick`` is a smoke run)::

    python experiments/vae.py configs/vae.toml [--out DIR] [--quick] [--no-progress]

Without the MNIST files the run stops with a message (and an empty results.json).
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

from fnn.config import ConfigError, load as load_toml, to_dict  # noqa: E402
from fnn.experiment import experiment_main, mnist_or_none, write_json  # noqa: E402
from fnn.models import dense_vae, elbo_loss, encode, decode, sample_prior  # noqa: E402
from fnn.models.vae import mean_of, vae_metrics  # noqa: E402
from fnn.optim import adam  # noqa: E402
from fnn.plots import available as plots_available, figure, plot_image_rows, save  # noqa: E402
from fnn.train import fit  # noqa: E402

LIKELIHOOD = "bernoulli"


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class VAEData:
    binarize: bool = True
    validation_size: int = 5000  # last training images, for the validation curve
    train_size: int = 0  # 0: all the others
    test_size: int = 0  # 0: all 10,000


@dataclass(frozen=True)
class VAEModel:
    hidden: List[int] = field(default_factory=lambda: [512])
    latent_sizes: List[int] = field(default_factory=lambda: [2, 20])
    activation: str = "relu"


@dataclass(frozen=True)
class VAETrain:
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    test_samples: int = 5  # z draws per test image for the −ELBO estimate


@dataclass(frozen=True)
class VAEPlots:
    grid: int = 20  # manifold: grid × grid decoded points
    samples: int = 64
    interpolation_steps: int = 10


@dataclass(frozen=True)
class VAEConfig:
    name: str = "vae"
    seed: int = 0
    data: VAEData = field(default_factory=VAEData)
    model: VAEModel = field(default_factory=VAEModel)
    train: VAETrain = field(default_factory=VAETrain)
    plots: VAEPlots = field(default_factory=VAEPlots)


QUICK = {"data": {"validation_size": 100, "train_size": 500, "test_size": 200},
         "model": {"hidden": [64]}, "train": {"epochs": 2, "test_samples": 2},
         "plots": {"grid": 8, "samples": 16}}


def load_config(path, quick: bool = False) -> VAEConfig:
    cfg = load_toml(path, VAEConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def check(cfg: VAEConfig) -> None:
    for key, value in {"train.epochs": cfg.train.epochs, "train.batch_size": cfg.train.batch_size,
                       "train.test_samples": cfg.train.test_samples, "plots.grid": cfg.plots.grid,
                       "plots.samples": cfg.plots.samples,
                       "plots.interpolation_steps": cfg.plots.interpolation_steps}.items():
        if value < 1:
            raise ConfigError(f"config key `{key}` must be >= 1; got {value}.")
    if not cfg.model.latent_sizes or min(cfg.model.latent_sizes) < 1:
        raise ConfigError(f"config key `model.latent_sizes` must list positive sizes; got "
                          f"{cfg.model.latent_sizes}.")
    if not cfg.model.hidden or min(cfg.model.hidden) < 1:
        raise ConfigError(f"config key `model.hidden` must list at least one positive size; got "
                          f"{cfg.model.hidden}.")
    if not cfg.train.learning_rate > 0:
        raise ConfigError(f"config key `train.learning_rate` must be > 0; got "
                          f"{cfg.train.learning_rate}.")


# ----------------------------------------------------------------------------- the study

def prepare(data: Dict, cfg: VAEData) -> Dict:
    """Binarize (if asked) and split off the validation images: ``{"train", "validation",
    "test"}`` of (images (N, 28, 28) float32, labels)."""
    out = {}
    for split, (x, y) in data.items():
        out[split] = ((x > 0.5).astype(np.float32) if cfg.binarize else x, np.asarray(y))
    x, y = out["train"]
    n_val = min(cfg.validation_size, len(x) // 5)
    end = len(x) - n_val if not cfg.train_size else min(cfg.train_size, len(x) - n_val)
    out["train"], out["validation"] = (x[:end], y[:end]), (x[len(x) - n_val:], y[len(x) - n_val:])
    return out


def negative_elbo(model, params, state, x, key, samples: int, batch: int = 1000) -> Dict:
    """Mean −ELBO and its terms over ``x``, each image with ``samples`` draws of z (train-mode
    apply with keys from ``key``): an unbiased estimate of the −ELBO."""
    loss, metrics = elbo_loss(LIKELIHOOD), vae_metrics(LIKELIHOOD)

    @jax.jit
    def terms(xb, k):
        outputs, _ = model.apply(params, state, xb, key=k, train=True)
        m = metrics(outputs, xb, jnp.ones(len(xb)))
        return jnp.mean(loss(outputs, xb)), m["reconstruction"], m["kl"]

    totals, count = np.zeros(3), 0
    for s in range(samples):
        for i, start in enumerate(range(0, len(x), batch)):
            xb = x[start:start + batch]
            values = terms(xb, jax.random.fold_in(jax.random.fold_in(key, s), i))
            totals += np.asarray(values) * len(xb)
            count += len(xb)
    neg_elbo, reconstruction, kl = totals / count
    return {"neg_elbo": float(neg_elbo), "reconstruction": float(reconstruction),
            "kl": float(kl)}


def train_one(cfg: VAEConfig, latent: int, data: Dict, progress: bool, log):
    model = dense_vae((28, 28), cfg.model.hidden, latent, activation=cfg.model.activation)
    init_key, fit_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), latent))
    x_train, x_val = data["train"][0], data["validation"][0]
    _, params, state = model.init(init_key, (None, 28, 28))
    result = fit(model, params, state, (x_train, x_train), loss=elbo_loss(LIKELIHOOD),
                 optimizer=adam(cfg.train.learning_rate), key=fit_key, epochs=cfg.train.epochs,
                 batch_size=cfg.train.batch_size, validation_data=(x_val, x_val),
                 metrics=vae_metrics(LIKELIHOOD), 
                 progress=progress, log=log)
    return model, result


class Trained:
    """A trained VAE's jitted eval-mode functions (each compiled once per input shape)."""

    def __init__(self, model, params, state, latent: int):
        self.latent = latent
        self.encode = jax.jit(lambda x: encode(model, params, state, x))
        self.decode_mean = jax.jit(lambda z: mean_of(decode(model, params, state, z), LIKELIHOOD))
        self.reconstruct = jax.jit(lambda x: mean_of(model.apply(params, state, x)[0]
                                                     .reconstruction, LIKELIHOOD))
        self.sample = jax.jit(lambda key, n: sample_prior(model, params, state, key, n, latent,
                                                          LIKELIHOOD), static_argnums=1)


def interpolations(trained: Trained, x, steps: int, pairs: int = 4) -> Dict[str, np.ndarray]:
    """Rows decoding z on the straight line from μ(x_a) to μ(x_b), for ``pairs`` test pairs."""
    mean, _ = trained.encode(x[: 2 * pairs])
    t = jnp.linspace(0, 1, steps)[None, :, None]
    z = (1 - t) * mean[0::2, None] + t * mean[1::2, None]  # (pairs, steps, latent)
    images = np.asarray(trained.decode_mean(z.reshape(-1, trained.latent)))
    return {f"pair {p + 1}": images[p * steps:(p + 1) * steps] for p in range(pairs)}


def run(cfg: VAEConfig, out, *, progress: bool = True, data=None, log=print) -> Dict:
    """Train one VAE per latent size; write results.json and the plots. ``data`` replaces MNIST
    (``{"train", "test"}`` of images (N, 28, 28) in [0, 1] and labels), e.g. in tests."""
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"name": cfg.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "config": to_dict(cfg)}
    if data is None:
        data = mnist_or_none(0, cfg.data.test_size, log)
    if data is None:
        report["skipped"] = "the MNIST files are missing"
        write_json(out / "results.json", report)
        return report
    data = prepare(data, cfg.data)
    x_test, y_test = data["test"]
    report["data"] = {split: len(x) for split, (x, _) in data.items()}
    report["latent"] = {}
    curves = {}
    for latent in cfg.model.latent_sizes:
        log(f"VAE 784-{'-'.join(map(str, cfg.model.hidden))}-{latent}: training")
        model, result = train_one(cfg, latent, data, progress, log)
        params, state = result.params, result.state
        test = negative_elbo(model, params, state, x_test, jax.random.PRNGKey(10_000),
                             cfg.train.test_samples)
        report["latent"][str(latent)] = {"test": test, "history": result.history}
        curves[latent] = result.history
        log(f"latent {latent}: test −ELBO {test['neg_elbo']:.2f} nats "
            f"(reconstruction {test['reconstruction']:.2f} + KL {test['kl']:.2f})")
        if not plots_available():
            continue
        trained = Trained(model, params, state, latent)
        samples = trained.sample(jax.random.PRNGKey(7), cfg.plots.samples)
        plot_samples(np.asarray(samples), out / f"samples_z{latent}.png",
                     f"VAE, latent {latent}: decoded z ~ N(0, I) (Bernoulli means)")
        rows = {"test digit": x_test[:8], "reconstruction": np.asarray(trained.reconstruct(
            x_test[:8]))}
        rows.update(interpolations(trained, x_test[8:], cfg.plots.interpolation_steps))
        plot_image_rows(rows, out / f"interpolations_z{latent}.png",
                        f"VAE, latent {latent}: reconstructions (z = μ) and interpolations "
                        f"between the posterior means of test digits")
        if latent == 2:
            mean, _ = trained.encode(x_test)
            plot_latent(np.asarray(mean), y_test, out / "latent_space.png")
            plot_manifold(trained, cfg.plots.grid, out / "manifold.png")
    if plots_available():
        plot_curves(curves, out / "elbo_curves.png")
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "results.json", report)
    return report


# ----------------------------------------------------------------------------- plots

def plot_samples(images: np.ndarray, path, title: str) -> Path:
    n = len(images)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.ones((rows * 29 - 1, cols * 29 - 1))
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * 29:r * 29 + 28, c * 29:c * 29 + 28] = image.reshape(28, 28)
    fig = figure("plot_samples", figsize=(6, 6.3), layout="constrained")
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def plot_latent(mean: np.ndarray, labels: np.ndarray, path) -> Path:
    fig = figure("plot_latent", figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(mean[:, 0], mean[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7,
                        vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel="μ₁", ylabel="μ₂",
           title=f"VAE with a 2-D latent: posterior means of {len(mean):,} test digits")
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_manifold(trained: Trained, grid: int, path) -> Path:
    """Decoded z on a grid of N(0, 1) quantiles in each latent direction (Kingma & Welling's
    figure 4): the learned data manifold."""
    from statistics import NormalDist
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.5 / grid, 1 - 0.5 / grid, grid)])
    z = np.array([[a, b] for b in q[::-1] for a in q], np.float32)  # rows: z₂ falls downwards
    images = np.asarray(trained.decode_mean(z)).reshape(grid, grid, 28, 28)
    canvas = images.transpose(0, 2, 1, 3).reshape(grid * 28, grid * 28)
    fig = figure("plot_manifold", figsize=(7.5, 7.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=(0, grid, 0, grid))
    ticks = np.arange(grid) + 0.5
    ax.set_xticks(ticks[::max(grid // 5, 1)], [f"{v:.1f}" for v in q[::max(grid // 5, 1)]])
    ax.set_yticks(ticks[::max(grid // 5, 1)], [f"{v:.1f}" for v in q[::max(grid // 5, 1)]])
    ax.set(xlabel="z₁", ylabel="z₂",
           title=f"decoded z on a {grid}×{grid} grid of prior quantiles (Bernoulli means)")
    return save(fig, path)


def plot_curves(curves: Dict[int, Dict], path) -> Path:
    fig = figure("plot_curves", figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, (latent, history) in enumerate(curves.items()):
        epochs = np.arange(1, len(history["loss"]) + 1)
        for ax, name in zip(axes, ("loss", "reconstruction", "kl")):
            ax.plot(epochs, history[name], "-", color=f"C{i}", label=f"latent {latent}, train")
            if f"val_{name}" in history:
                ax.plot(epochs, history[f"val_{name}"], "--", color=f"C{i}",
                        label=f"latent {latent}, validation")
    titles = {"loss": "−ELBO (nats per image)", "reconstruction": "reconstruction −log p(x|z)",
              "kl": "KL(q(z|x) ‖ p(z))"}
    for ax, name in zip(axes, titles):
        ax.set(xlabel="epoch", title=titles[name])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save(fig, path)


def main(argv=None) -> int:
    return experiment_main(argv, name="vae", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run,
                           quick="500 training digits, hidden 64, 2 epochs")


if __name__ == "__main__":
    sys.exit(main())
