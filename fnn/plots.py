"""Plots of evaluation and debugging results, written straight to image files (PNG by default).

Figures are built with matplotlib's object API (``Figure`` + the Agg renderer), never pyplot:
no display is needed, no backend is switched in the caller's process and no figure is left
open. matplotlib is the optional ``viz`` extra, imported on first use. Every function returns
the path it wrote, its format following the suffix.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

# Panel titles of the monitor statistics (fnn.monitor.STATS), in depth-of-diagnosis order.
MONITOR_TITLES = {
    "grad_norm": "gradient norm ‖∂L/∂W‖",
    "update_ratio": "update / weight ratio ‖u‖/‖W‖",
    "weight_var": "weight variance",
    "act_var": "activation variance",
    "dead_fraction": "fraction of dead units",
}
HEALTHY_UPDATE_RATIO = (1e-4, 1e-2)  # the band `fnn.monitor.diagnose` does not flag


def available() -> bool:
    """True when matplotlib (the ``viz`` extra) is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figure(function: str, **options):
    """A new matplotlib ``Figure`` (no pyplot); ``function`` names the caller in the error
    raised when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{function} needs matplotlib; install the viz extra: "
                          "pip install 'fnn[viz]'.") from None
    return Figure(**options)


def save(fig, path) -> Path:
    """Write ``fig`` to ``path`` (its parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def layer_colors(names: Sequence[str]) -> dict:
    """A distinct colour per name: the default cycle for up to 10, else evenly spaced on a
    colormap, so no two layers share a colour."""
    if len(names) <= 10:
        return {name: f"C{i}" for i, name in enumerate(names)}
    from matplotlib import colormaps
    cmap = colormaps["turbo"]
    return {name: cmap(i / (len(names) - 1)) for i, name in enumerate(names)}


def plot_confusion_matrix(cm, path, class_names: Optional[Sequence[str]] = None,
                          normalize: bool = False, title: str = "") -> Path:
    """The ``(C, C)`` confusion matrix (rows: true class, columns: predicted) as a heat map.

    With ``normalize`` each row is divided by its count, so row t shows where class t goes and
    the diagonal is the per-class recall; a class absent from the data keeps a row of zeros.
    Cells are annotated when C ≤ 20.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"plot_confusion_matrix: expected a square confusion matrix of shape "
                         f"(C, C); got shape {cm.shape}.")
    if not np.issubdtype(cm.dtype, np.number) or (cm < 0).any():
        raise ValueError("plot_confusion_matrix: `cm` must hold non-negative counts.")
    num_classes = cm.shape[0]
    names = [str(k) for k in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"plot_confusion_matrix: got {len(names)} class_names for a confusion "
                         f"matrix of {num_classes} classes.")
    values = cm.astype(np.float64)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)

    side = max(4.0, 0.45 * num_classes + 2.0)
    fig = figure("plot_confusion_matrix", figsize=(side + 1.0, side))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(num_classes)
    slanted = max(map(len, names)) > 3
    ax.set_xticks(ticks, names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(ticks, names)
    default_title = "confusion matrix (rows normalized)" if normalize else "confusion matrix"
    ax.set(xlabel="predicted class", ylabel="true class", title=title or default_title)
    if num_classes <= 20:
        dark = values.max() / 2
        for (t, p), value in np.ndenumerate(values):
            text = f"{value:.2f}" if normalize else f"{int(cm[t, p])}"
            ax.text(p, t, text, ha="center", va="center", fontsize=8,
                    color="white" if value > dark else "black")
    fig.tight_layout()
    return save(fig, path)


def plot_roc(curves: Mapping[str, Sequence[Any]], path, title: str = "ROC curves") -> Path:
    """ROC curves, TPR against FPR, one per entry ``name -> (fpr, tpr)``, with their AUC.

    A value may also be the ``(fpr, tpr, thresholds)`` triple of `fnn.metrics.roc_curve`; for
    one-vs-rest curves pass one entry per class, e.g. ``{f"class {k}": (fpr[k], tpr[k])}``.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("plot_roc: `curves` must be a non-empty dict name -> (fpr, tpr); "
                         f"got {curves!r:.80}.")
    lines = {}
    for name, curve in curves.items():
        if not isinstance(curve, (tuple, list)) or len(curve) not in (2, 3):
            raise ValueError(f"plot_roc: curve {name!r} must be a pair (fpr, tpr) or the triple "
                             f"(fpr, tpr, thresholds) of roc_curve; got {type(curve).__name__}.")
        fpr, tpr = np.asarray(curve[0], np.float64), np.asarray(curve[1], np.float64)
        if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
            raise ValueError(f"plot_roc: curve {name!r} needs fpr and tpr of one shape (points,) "
                             f"with at least 2 points; got {fpr.shape} and {tpr.shape}.")
        lines[name] = fpr, tpr

    fig = figure("plot_roc", figsize=(5.0, 5.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance (AUC 0.5)")
    for name, (fpr, tpr) in lines.items():
        auc = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2  # trapezoid rule
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate (1 − specificity)",
           ylabel="true-positive rate (sensitivity)", title=title, aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_monitor(history: Mapping[str, Any], path, title: str = "") -> Path:
    """One panel per statistic of a `fnn.monitor.Monitor` history, one line per layer.

    ``history`` is ``{"epoch": [e, ...], stat: {layer: [value per epoch]}}`` (``Monitor.history``).
    Log scale but for the dead fraction; the update-ratio panel shades the unflagged band and
    marks the course's target of 1e-3.
    """
    if not isinstance(history, Mapping) or "epoch" not in history:
        raise ValueError("plot_monitor: `history` must be a dict with an 'epoch' list and one "
                         "{layer: values} dict per statistic, as Monitor.history.")
    stats = [s for s in MONITOR_TITLES if history.get(s)]
    stats += [s for s in history if s != "epoch" and s not in MONITOR_TITLES]
    if not stats:
        raise ValueError("plot_monitor: `history` holds no statistics; record at least once.")
    epochs = list(history["epoch"])
    layers = list(dict.fromkeys(layer for s in stats for layer in history[s]))
    for stat in stats:
        for layer, values in history[stat].items():
            if len(values) != len(epochs):
                raise ValueError(f"plot_monitor: {stat}[{layer!r}] has {len(values)} values for "
                                 f"{len(epochs)} epochs.")

    columns = min(3, len(stats))
    rows = math.ceil(len(stats) / columns)
    fig = figure("plot_monitor", figsize=(4.6 * columns, 3.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colors = layer_colors(layers)
    for ax, stat in zip(axes, stats):
        for layer, values in history[stat].items():
            ax.plot(epochs, values, marker=".", label=layer, color=colors[layer])
        if stat == "update_ratio":
            ax.axhspan(*HEALTHY_UPDATE_RATIO, color="green", alpha=0.08)
            ax.axhline(1e-3, color="green", linestyle=":", linewidth=1)
        if stat == "dead_fraction":
            ax.set_ylim(-0.02, 1.02)
        else:
            ax.set_yscale("log")
        ax.set(title=MONITOR_TITLES.get(stat, stat), xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(stats):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


__all__ = ["plot_confusion_matrix", "plot_roc", "plot_monitor"]


def plot_history(history: Mapping[str, Sequence[float]], path, title: str = "",
                 best_epoch: Optional[int] = None) -> Path:
    """Loss and accuracy per epoch (train and, when logged, validation), with the epoch that
    early stopping kept marked."""
    panels = [m for m in ("loss", "accuracy") if m in history]
    if not panels:
        raise ValueError(f"plot_history: expected 'loss' or 'accuracy' in history; got {sorted(history)}.")
    fig = figure("plot_history", figsize=(5 * len(panels), 3.6), layout="tight")
    for ax, name in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"kept (epoch {best_epoch})")
        ax.set(xlabel="epoch", ylabel=name, title=f"{title} {name}".strip())
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, path)


def plot_decision_boundary(predict_fn, data, path, title: str = "", resolution: int = 200) -> Path:
    """The predicted class over a grid around 2-D points ``data = (x (n, 2), y (n,))``, with the
    points on top; ``predict_fn(grid (m, 2)) -> scores (m, C)``."""
    x, y = (np.asarray(a) for a in data)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: expected 2-D points of shape (n, 2); got {x.shape}.")
    (x0, y0), (x1, y1) = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    classes = np.asarray(predict_fn(grid)).argmax(-1).reshape(gx.shape)
    fig = figure("plot_decision_boundary", figsize=(4.5, 4.5), layout="tight")
    ax = fig.subplots()
    ax.contourf(gx, gy, classes, alpha=0.3, cmap="coolwarm")
    ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
    ax.set(title=title, xlabel="x1", ylabel="x2")
    return save(fig, path)
