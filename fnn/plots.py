"""Plots of evaluation and debugging results, written straight to image files (PNG by default).

Figures are built with matplotlib's object API (``Figure`` + the Agg renderer), never pyplot:
no display is needed, no backend is switched in the caller's process and no figure is left
open. matplotlib is the optional ``viz`` extra, imported on first use. Every function returns
the path it wrote, its format following the suffix.
"""
from __future__ import annotations

import math
import textwrap
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


def nonfinite_note(name: str, values: Sequence[float]) -> Optional[str]:
    """A note for a curve with NaN or infinite values (a diverged run), e.g. ``"loss: nan from
    epoch 3 (not drawn)"``; None when every value is finite."""
    values = np.asarray(values, np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return None
    return f"{name}: {values[bad[0]]} from epoch {bad[0] + 1} (not drawn)"


def plot_history(history: Mapping[str, Sequence[float]], path, title: str = "",
                 best_epoch: Optional[int] = None, note: str = "") -> Path:
    """Loss and accuracy per epoch (train and, when logged, validation), with the epoch that
    early stopping kept marked.

    A diverged run is shown as such, never as an empty panel: values that are NaN or infinite
    are left out and named in a red note (`nonfinite_note`), as is ``note`` (e.g. "training
    diverged at epoch 3, batch 5"); with no epoch to draw, the figure holds the note alone."""
    panels = [m for m in ("loss", "accuracy") if m in history]
    if not panels and not note:
        raise ValueError(f"plot_history: expected 'loss' or 'accuracy' in history; "
                         f"got {sorted(history)}.")
    fig = figure("plot_history", figsize=(5 * max(len(panels), 1), 3.6), layout="tight")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    notes = [note] if note else []
    for ax, name in zip(axes, panels):
        epochs = np.arange(1, len(history[name]) + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key not in history:
                continue
            values = np.asarray(history[key], np.float64)
            bad = nonfinite_note(key, values)
            if bad:
                notes.append(bad)
            ax.plot(epochs, np.where(np.isfinite(values), values, np.nan), marker="." if
                    len(epochs) < 3 else None, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"kept (epoch {best_epoch})")
        ax.set(xlabel="epoch", ylabel=name, title=f"{title} {name}".strip(),
               xlim=(0.5, len(epochs) + 0.5))  # every epoch, drawn or not
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    if not panels:
        axes[0].set(title=f"{title} (no finished epoch)".strip(), xticks=[], yticks=[])
        axes[0].text(0.5, 0.5, "\n".join(textwrap.fill(n, 48) for n in notes),
                     transform=axes[0].transAxes, ha="center", va="center", color="red")
    elif notes:
        fig.suptitle("\n".join(notes), color="red", fontsize=9)
    return save(fig, path)


def plot_decision_boundary(predict_fn, data, path, title: str = "", resolution: int = 200) -> Path:
    """The predicted class over a grid around 2-D points ``data = (x (n, 2), y (n,))``, with the
    points on top (coloured by their true class); ``predict_fn(grid (m, 2)) -> scores (m, C)``.
    The legend names each class's colour; a shaded region is the class the model predicts there."""
    x, y = (np.asarray(a) for a in data)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: expected 2-D points of shape (n, 2); got {x.shape}.")
    (x0, y0), (x1, y1) = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    scores = np.asarray(predict_fn(grid))
    classes = scores.argmax(-1).reshape(gx.shape)
    num_classes = max(scores.shape[-1], int(y.max()) + 1 if y.size else 0)
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    base = colormaps["coolwarm"] if num_classes <= 2 else colormaps["tab10" if num_classes <= 10
                                                                     else "turbo"]
    colors = [base(k / max(num_classes - 1, 1)) if num_classes <= 2 or num_classes > 10
              else base(k) for k in range(num_classes)]
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)
    fig = figure("plot_decision_boundary", figsize=(5.2, 4.5), layout="tight")
    ax = fig.subplots()
    ax.contourf(gx, gy, classes, levels=np.arange(num_classes + 1) - 0.5, alpha=0.3, cmap=cmap,
                norm=norm)
    ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap=cmap, norm=norm, edgecolors="k", linewidths=0.2)
    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=colors[k],
                      markeredgecolor="k", markeredgewidth=0.3, label=f"class {k}")
               for k in range(num_classes)]
    handles.append(Patch(facecolor="lightgray", alpha=0.6, label="shade: predicted class"))
    ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)
    ax.set(title=title, xlabel="x1", ylabel="x2")
    return save(fig, path)


def plot_image_rows(rows: Mapping[str, Any], path, title: str = "", shape=(28, 28)) -> Path:
    """A grid of grey images: one row per entry of ``rows`` (row label -> images (n, ...), each
    reshaped to ``shape``; rows may differ in length), values in [0, 1] with 0 black. Used for
    digits and their reconstructions, samples and interpolations."""
    if not rows or any(len(images) == 0 for images in rows.values()):
        raise ValueError("plot_image_rows: `rows` must map row labels to non-empty image "
                         "arrays.")
    n = max(len(images) for images in rows.values())
    fig = figure("plot_image_rows", figsize=(0.9 * n + 1.6, 0.95 * len(rows) + 0.5),
                 layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(np.asarray(images[c]).reshape(shape), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
