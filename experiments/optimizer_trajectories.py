"""Optimizer trajectories: every `fnn.optim` alias on the course's 2-D surfaces.

Each optimizer (sgd, classic momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, AdamW, Adamax,
Nadam, Rprop, sign-SGD) starts from the same point on each surface of the config:

* an elongated quadratic, the "ravine" ``f = ½(u² + κ v²)`` (κ = 50), axis-aligned and rotated:
  ``(u, v)`` are the coordinates along and across the valley floor;
* Rosenbrock's banana ``f = (a − x)² + b (y − x²)²`` (a = 1, b = 100) from the classic (−1.2, 1);
* the saddle ``f = x² − y²`` from just off the ridge, (1, 10⁻³): who escapes, and how fast.

A run is a whole trajectory in one compiled call (``lax.scan`` under ``jit``, in float64), and
the learning rates of a sweep run side by side (``vmap``). For every (surface, optimizer) pair
the experiment runs the learning rate of the config and, with ``tuning.enabled``, a log-spaced
grid, and keeps the rate that reaches the surface's target in the fewest steps. The target is
``f ≤ target``: ``f − f* ≤ tol`` at a minimum, ``f ≤ −c`` (escaped) on the saddle; a run reaches
it at the step from which it stays there to the end of the budget (a run that passes through
and leaves again does not count). The numbers: steps to the target, the final loss, and whether
the run diverged (left the box ``|θ_i| ≤ radius`` without reaching the target).

Run it from the repository root (about 70 s on 2 busy CPU cores; ``--quick``, the config's
learning rates without the sweep, about half of that)::

    python experiments/optimizer_trajectories.py configs/optimizer_trajectories.toml \
        [--out DIR] [--quick] [--no-progress]
    python experiments/optimizer_trajectories.py --replot RUN_FOLDER   # redraw the PNGs

The run folder (``runs/optimizer_trajectories-<date>-<time>/`` unless ``--out``) holds
``config.toml``, ``results.json`` (every number, the config and the date), ``trajectories.npz``
(the plotted paths and losses), and per surface ``trajectories_<surface>.png`` (contours with
every optimizer's path, one panel per frame) and ``loss_<surface>.png`` (loss against step), plus
``tuning.png`` (steps to the target against the learning rate).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optim
from fnn.config import ConfigError, from_dict, load as load_toml
from fnn.experiment import experiment_main, write_json
from fnn.plots import available as plots_available, figure, save
from fnn.train import progress_bar



# ----------------------------------------------------------------------------- surfaces

class Surface(NamedTuple):
    """A 2-D test function and what the table and the plots need to know about it."""

    loss: Callable[[jax.Array], jax.Array]  # θ of shape (2,) -> scalar
    minimum: Optional[Tuple[float, float]]  # None: unbounded below (the saddle)
    formula: str
    log_levels: bool  # contours at log-spaced f − f* (a minimum) or evenly spaced f


def quadratic(condition: float = 50.0, angle_degrees: float = 0.0, center_x: float = 0.0,
              center_y: float = 0.0) -> Surface:
    """The ravine ``f = ½(u² + κ v²)``, ``u`` along a valley floor at ``angle_degrees`` from the
    x-axis and ``v`` across it, both measured from the minimum ``(center_x, center_y)``, where
    f = 0: μ = 1, L = κ. (A minimum off the origin keeps weight decay, which pulls towards 0,
    from helping AdamW for free.)"""
    if not condition > 0:
        raise ValueError(f"condition must be > 0; got {condition}.")
    cos, sin = math.cos(math.radians(angle_degrees)), math.sin(math.radians(angle_degrees))

    def loss(theta):
        dx, dy = theta[0] - center_x, theta[1] - center_y
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        return 0.5 * (u ** 2 + condition * v ** 2)

    turned = f", floor at {angle_degrees:g}°" if angle_degrees else ""
    return Surface(loss, (center_x, center_y), f"½(u² + {condition:g} v²){turned}", True)


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """Rosenbrock's ``f = (a − x)² + b (y − x²)²``: minimum 0 at ``(a, a²)`` at the end of a
    curved, flat-bottomed valley."""
    if not b > 0:
        raise ValueError(f"b must be > 0; got {b}.")

    def loss(theta):
        return (a - theta[0]) ** 2 + b * (theta[1] - theta[0] ** 2) ** 2

    return Surface(loss, (a, a * a), f"({a:g} − x)² + {b:g}(y − x²)²", True)


def saddle() -> Surface:
    """``f = x² − y²``: a saddle point at the origin, unbounded below along y."""
    return Surface(lambda theta: theta[0] ** 2 - theta[1] ** 2, None, "x² − y²", False)


SURFACE_KINDS = {"quadratic": quadratic, "rosenbrock": rosenbrock, "saddle": saddle}


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class SurfaceSpec:
    """One surface: its kind, the kind's options (every other key), the start and the budget."""

    kind: str = "quadratic"  # quadratic | rosenbrock | saddle
    start: List[float] = field(default_factory=lambda: [-7.0, 1.0])
    target: float = 1e-6  # the goal: f ≤ target from some step to the end of the budget
    steps: int = 1000  # step budget
    frames: List[int] = field(default_factory=lambda: [10, 50, 200])  # steps drawn as panels
    radius: float = 1000.0  # a run that leaves |θ_i| ≤ radius stops there
    max_learning_rate: Optional[float] = None  # tuning: leave larger grid rates out here
    view: List[float] = field(default_factory=lambda: [-8.0, 2.0, -2.0, 2.0])  # x0 x1 y0 y1
    options: Dict[str, float] = field(default_factory=dict)  # the kind's parameters
    EXTRA_KEYS = "options"  # from_dict puts every key not named above here


@dataclass(frozen=True)
class TuningSpec:
    enabled: bool = True  # also sweep a log grid of learning rates per (surface, optimizer)
    low: float = 1e-4  # grid from low to high, per_decade points per factor of 10
    high: float = 10.0
    per_decade: int = 4
    use_tuned: bool = True  # plots and headline table: the grid's best rate (False: the config's)


@dataclass(frozen=True)
class TrajectoriesConfig:
    name: str = "optimizer_trajectories"
    optimizers: List[str] = field(default_factory=lambda: list(optim.ALIASES))
    surfaces: Dict[str, SurfaceSpec] = field(default_factory=dict)
    learning_rates: Dict[str, Dict[str, float]] = field(default_factory=dict)  # surface -> alias
    tuning: TuningSpec = field(default_factory=TuningSpec)


QUICK = {"tuning": {"enabled": False, "use_tuned": False}}  # the config's learning rates only


def load_config(path, quick: bool = False) -> TrajectoriesConfig:
    """Read and check a TOML config; ``quick`` turns the tuning sweep off (a smoke run)."""
    cfg = load_toml(path, TrajectoriesConfig, overrides=QUICK if quick else None)
    check(cfg)
    return cfg


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key `{key}` {message}")


def make_surface(spec: SurfaceSpec, key: str = "surface") -> Surface:
    """The `Surface` a spec names, its options checked against the kind's parameters."""
    _require(spec.kind in SURFACE_KINDS, f"{key}.kind",
             f"must be one of {sorted(SURFACE_KINDS)}; got {spec.kind!r}.")
    factory = SURFACE_KINDS[spec.kind]
    known = inspect.signature(factory).parameters
    for option in spec.options:
        _require(option in known, f"{key}.{option}",
                 f"is not an option of a {spec.kind} surface; expected one of "
                 f"{sorted(known) or 'none'}.")
    try:
        return factory(**spec.options)
    except ValueError as error:
        raise ConfigError(f"config key `{key}`: {error}") from None


def check(cfg: TrajectoriesConfig) -> None:
    """Reject names and values the schema's types cannot catch, naming the key."""
    _require(bool(cfg.optimizers) and len(set(cfg.optimizers)) == len(cfg.optimizers),
             "optimizers", f"must list distinct optimizer names; got {cfg.optimizers}.")
    for i, name in enumerate(cfg.optimizers):
        _require(name in optim.ALIASES, f"optimizers[{i}]",
                 f"must be one of {sorted(optim.ALIASES)}; got {name!r}.")
    _require(bool(cfg.surfaces), "surfaces", "must define at least one [surfaces.NAME] table.")
    for name, spec in cfg.surfaces.items():
        key = f"surfaces.{name}"
        make_surface(spec, key)
        _require(len(spec.start) == 2, f"{key}.start", f"must be a point [x, y]; got {spec.start}.")
        view = spec.view
        _require(len(view) == 4 and view[0] < view[1] and view[2] < view[3], f"{key}.view",
                 f"must be [x_min, x_max, y_min, y_max]; got {view}.")
        _require(spec.steps >= 1, f"{key}.steps", f"must be positive; got {spec.steps}.")
        _require(spec.radius > 0, f"{key}.radius", f"must be positive; got {spec.radius}.")
        cap = spec.max_learning_rate
        _require(cap is None or cap >= cfg.tuning.low, f"{key}.max_learning_rate",
                 f"must be >= tuning.low = {cfg.tuning.low} (or left out); got {cap}.")
        _require(all(0 < k < spec.steps for k in spec.frames), f"{key}.frames",
                 f"must be steps between 1 and steps - 1 = {spec.steps - 1}; got {spec.frames}.")
    for surface, rates in cfg.learning_rates.items():
        _require(surface in cfg.surfaces, f"learning_rates.{surface}",
                 f"names no surface; expected one of {sorted(cfg.surfaces)}.")
        for name, rate in rates.items():
            _require(name in cfg.optimizers, f"learning_rates.{surface}.{name}",
                     f"names no optimizer of `optimizers`; expected one of {cfg.optimizers}.")
            _require(rate > 0, f"learning_rates.{surface}.{name}", f"must be > 0; got {rate}.")
    for surface in cfg.surfaces:
        for name in cfg.optimizers:
            _require(name in cfg.learning_rates.get(surface, {}),
                     f"learning_rates.{surface}.{name}", "is missing: every optimizer needs a "
                     "learning rate on every surface.")
    t = cfg.tuning
    _require(0 < t.low <= t.high, "tuning.low", f"must be in (0, tuning.high]; got {t.low}.")
    _require(t.per_decade >= 1, "tuning.per_decade", f"must be positive; got {t.per_decade}.")
    _require(t.enabled or not t.use_tuned, "tuning.use_tuned",
             "needs tuning.enabled = true (there is no tuned rate otherwise).")


def learning_rate_grid(tuning: TuningSpec, cap: Optional[float] = None) -> List[float]:
    """``per_decade`` log-spaced rates per factor of 10 from ``low`` to ``high`` (and at most
    ``cap``), the powers of 10 among them, each rounded to 3 significant digits."""
    if not tuning.enabled:
        return []
    high = tuning.high if cap is None else min(tuning.high, cap)
    first = math.floor(math.log10(tuning.low) * tuning.per_decade + 1e-9)
    last = math.ceil(math.log10(high) * tuning.per_decade - 1e-9)
    rates = [float(f"{10 ** (k / tuning.per_decade):.3g}") for k in range(first, last + 1)]
    return [r for r in rates if tuning.low * (1 - 1e-9) <= r <= high * (1 + 1e-9)]


# ----------------------------------------------------------------------------- trajectories

STATIC_LEARNING_RATE = frozenset({"rprop"})  # Δ₀ must be a Python float: one compile per rate


def trajectory(loss: Callable, optimizer: optim.Optimizer, start, steps: int,
               radius: float) -> jax.Array:
    """The iterates ``θ_0 = start, θ_1, ..., θ_steps`` of ``optimizer`` on ``loss``, shape
    ``(steps + 1, 2)``: one ``lax.scan``, so the whole trajectory compiles into one call.

    A run stops where it first leaves the box ``|θ_i| ≤ radius`` (or turns non-finite): later
    iterates repeat that point, so a divergent run ends at a finite, recognisable place. The
    iterates have the dtype of ``start``.
    """
    start = jnp.asarray(start)

    def step(carry, _):
        theta, state = carry
        updates, new_state = optimizer.update(jax.grad(loss)(theta), state, theta)
        stopped = ~jnp.all(jnp.abs(theta) <= radius)  # also True for NaN
        theta = jnp.where(stopped, theta, optim.apply_updates(theta, updates))
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(stopped, old, new),
                                       new_state, state)
        return (theta, state), theta

    _, path = jax.lax.scan(step, (start, optimizer.init(start)), None, length=steps)
    return jnp.concatenate([start[None], path])


def constant(rate):
    """A constant schedule ``step -> rate``: how a traced learning rate reaches an alias (a
    schedule is not checked with ``float()``, so ``vmap`` can sweep it)."""
    return lambda step: rate


def sweep(surface: Surface, name: str, rates: Sequence[float], start, steps: int,
          radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """The trajectories ``(len(rates), steps + 1, 2)`` of alias ``name`` at every learning rate,
    and the loss at every iterate ``(len(rates), steps + 1)``, in float64.

    The rates run side by side in one compiled, vmapped call; Rprop's rate is its initial step
    size, which must be a Python float, so it compiles once per rate instead. float64 keeps the
    rounding of float32 (about 1e-7 near the minimum (1, 1)) from deciding who converges: a
    sign-like rule that lands exactly on the minimum gets a zero gradient and stops there.
    """
    factory = optim.get(name)
    with jax.enable_x64(True):
        start = np.asarray(start, np.float64)

        def path(rate):
            return trajectory(surface.loss, factory(rate), start, steps, radius)

        # The losses are computed in the same compiled program as the paths, and the results
        # stacked on the host: one program per sweep (per rate for Rprop), no eager ops.
        if name in STATIC_LEARNING_RATE:
            @functools.partial(jax.jit, static_argnums=0)
            def one(rate):
                p = path(rate)
                return p, jax.vmap(surface.loss)(p)

            paths, losses = zip(*[one(float(rate)) for rate in rates])
            return np.stack(paths), np.stack(losses)

        @jax.jit
        def every(rates):
            p = jax.vmap(lambda rate: path(constant(rate)))(rates)
            return p, jax.vmap(jax.vmap(surface.loss))(p)

        paths, losses = every(np.asarray(rates, np.float64))
        return np.asarray(paths), np.asarray(losses)


# ----------------------------------------------------------------------------- numbers

def first_at_or_below(values, target: float) -> Optional[int]:
    """The first index ``t`` with ``values[t] ≤ target`` (the steps taken to get there), or None;
    NaN never counts."""
    hits = np.flatnonzero(np.asarray(values, np.float64) <= target)
    return int(hits[0]) if hits.size else None


def settled_at_or_below(values, target: float, hold: int = 1) -> Optional[int]:
    """The first index ``t`` from which every value is ``≤ target`` to the end, provided that is
    at least ``hold`` values, or None: a run that only passes through the target and leaves
    again has not reached it, nor has one that oscillates across it and happens to end on the
    low side. NaN never counts."""
    above = np.flatnonzero(~(np.asarray(values, np.float64) <= target))
    settled = int(above[-1]) + 1 if above.size else 0
    return settled if len(values) - settled >= hold else None


def first_outside(positions, radius: float) -> Optional[int]:
    """The first index whose point leaves ``|θ_i| ≤ radius`` or is not finite, or None."""
    inside = np.all(np.abs(np.asarray(positions, np.float64)) <= radius, axis=-1)
    misses = np.flatnonzero(~inside)
    return int(misses[0]) if misses.size else None


def _finite_or_none(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


HOLD = 10  # iterates a run must stay at the target, up to the end of its budget, to count


def summarize(positions, losses, target: float, radius: float, hold: int = HOLD) -> Dict:
    """The numbers of one run: the steps after which f stays at or below the target, the first
    step at or below it, the final and lowest loss, where the run left the box, and whether it
    diverged (left the box, or went non-finite, without reaching the target for good: escaping
    the saddle reaches ``f ≤ −c`` on the way out, so it does not count)."""
    reached = settled_at_or_below(losses, target, hold)
    left = first_outside(positions, radius)
    finite = np.asarray(losses, np.float64)[np.isfinite(losses)]
    return {
        "steps_to_target": reached,
        "first_at_target": first_at_or_below(losses, target),
        "final_loss": _finite_or_none(float(losses[-1])),
        "lowest_loss": float(finite.min()) if finite.size else None,
        "left_box_at": left,
        "diverged": left is not None and reached is None,
        "final_position": [_finite_or_none(float(v)) for v in positions[-1]],
    }


def _rank(summary: Dict, rate: float) -> tuple:
    """Sort key of a grid run: fewest steps to the target, then (none reached) the lowest final
    loss of a run that did not diverge; the smaller rate breaks ties."""
    if summary["steps_to_target"] is not None:
        return (0, summary["steps_to_target"], rate)
    if not summary["diverged"] and summary["final_loss"] is not None:
        return (1, summary["final_loss"], rate)
    return (2, 0.0, rate)


def best_rate_index(summaries: Sequence[Dict], rates: Sequence[float]) -> int:
    """The index of the grid rate the tuning keeps (see ``_rank``)."""
    return min(range(len(rates)), key=lambda i: _rank(summaries[i], rates[i]))


def study_pair(surface: Surface, spec: SurfaceSpec, name: str, config_rate: float,
               grid: Sequence[float], use_tuned: bool) -> Tuple[Dict, np.ndarray, np.ndarray]:
    """Run one optimizer on one surface at the config's rate and every grid rate.

    Returns the JSON record (``config``, and with a grid ``tuned`` and ``grid``; ``chosen`` says
    which one the plots use) and the chosen run's trajectory and losses.
    """
    rates = [*grid, config_rate]
    paths, losses = sweep(surface, name, rates, spec.start, spec.steps, spec.radius)
    runs = [summarize(p, l, spec.target, spec.radius) for p, l in zip(paths, losses)]
    record = {"config": {"learning_rate": config_rate, **runs[-1]}, "chosen": "config"}
    chosen = len(rates) - 1
    if grid:
        best = best_rate_index(runs[:-1], grid)
        record["tuned"] = {"learning_rate": grid[best], **runs[best]}
        record["grid"] = {"learning_rates": list(grid),
                          **{key: [run[key] for run in runs[:-1]]
                             for key in ("steps_to_target", "final_loss", "diverged")}}
        if use_tuned:
            record["chosen"], chosen = "tuned", best
    return record, paths[chosen], losses[chosen]


def chosen_run(record: Dict) -> Dict:
    """The run of a (surface, optimizer) record that the table and the plots show."""
    return record[record["chosen"]]


# ----------------------------------------------------------------------------- the study

def describe(spec: SurfaceSpec, surface: Surface) -> Dict:
    """What results.json says about a surface: formula, start, target, budget, minimum."""
    minimum = surface.minimum
    return {"kind": spec.kind, "formula": surface.formula, "options": dict(spec.options),
            "start": list(spec.start), "target": spec.target, "steps": spec.steps,
            "minimum": None if minimum is None else list(minimum),
            "minimum_value": None if minimum is None else float(jax.jit(surface.loss)(
                np.asarray(minimum, np.float32))),  # jitted: one program, no eager ops
            "start_loss": float(surface.loss(np.asarray(spec.start, np.float64)))}


def run(cfg: TrajectoriesConfig, out, *, progress: bool = True, log=print) -> Dict:
    """Every optimizer on every surface; writes results.json, trajectories.npz and the PNGs."""
    check(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    surfaces = {name: make_surface(spec, f"surfaces.{name}") for name, spec in cfg.surfaces.items()}
    grid_size = len(learning_rate_grid(cfg.tuning))
    log(f"{cfg.name}: {len(cfg.optimizers)} optimizers x {len(surfaces)} surfaces at the config's "
        f"learning rates" + (f" and a grid of {grid_size}" if grid_size else "") + f" -> {out}")
    bar = progress_bar(len(surfaces) * len(cfg.optimizers), cfg.name, progress)
    started = time.perf_counter()
    results: Dict[str, Dict[str, Dict]] = {}
    arrays: Dict[str, np.ndarray] = {}
    for surface_name, surface in surfaces.items():
        spec = cfg.surfaces[surface_name]
        grid = learning_rate_grid(cfg.tuning, spec.max_learning_rate)
        for name in cfg.optimizers:
            if bar is not None:
                bar.set_postfix_str(f"{surface_name}/{name}")
            record, path, losses = study_pair(surface, spec, name,
                                              cfg.learning_rates[surface_name][name], grid,
                                              cfg.tuning.use_tuned)
            results.setdefault(surface_name, {})[name] = record
            arrays[f"{surface_name}/{name}/positions"] = path
            arrays[f"{surface_name}/{name}/losses"] = losses
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    report = {
        "name": cfg.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": dataclasses.asdict(cfg),
        "notes": (f"steps_to_target: the first step t from which f(θ_s) ≤ target for every "
                  f"s ≥ t up to the budget, counted if that is at least {HOLD} iterates (null: "
                  "not within the budget); first_at_target: the first step with f ≤ target, "
                  "even if it leaves again. A run stops where it leaves |θ_i| ≤ radius; "
                  "diverged: it left (or went non-finite) without reaching the target. "
                  "'config' is the run at the "
                  "config's learning rate, 'tuned' the grid's rate with the fewest steps (then "
                  "the lowest final loss of a run that did not diverge; ties: the smaller rate); "
                  "'chosen' is the one the plots and the table use. Rprop's learning rate is its "
                  "initial step size Δ₀. Trajectories in float64."),
        "surfaces": {name: describe(cfg.surfaces[name], s) for name, s in surfaces.items()},
        "table": {s: {name: chosen_run(r)["steps_to_target"] for name, r in per.items()}
                  for s, per in results.items()},
        "learning_rates": {s: {name: chosen_run(r)["learning_rate"] for name, r in per.items()}
                           for s, per in results.items()},
        "results": results,
    }
    write_json(out / "results.json", report)
    np.savez_compressed(out / "trajectories.npz", **arrays)
    plot_all(report, arrays, out, surfaces)
    log(format_table(report))
    return report


def format_table(report: Dict) -> str:
    """Steps to the target (learning rate) per optimizer and surface; '—' not reached,
    'diverged' when the run left the box first."""
    surfaces = list(report["table"])
    width = max(20, *(len(s) + 2 for s in surfaces))
    lines = [f"{'optimizer':<10}" + "".join(f"{s:>{width}}" for s in surfaces)]
    for name in report["config"]["optimizers"]:
        cells = []
        for s in surfaces:
            run_ = chosen_run(report["results"][s][name])
            steps = run_["steps_to_target"]
            text = "diverged" if run_["diverged"] else "—" if steps is None else str(steps)
            cells.append(f"{text} (η {run_['learning_rate']:.3g})")
        lines.append(f"{name:<10}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

MARKERS = "osD^vP*X<>hp"
EXTRA_COLORS = ["black", "#6a3d9a"]  # after the ten of matplotlib's default cycle


def style(names: Sequence[str]) -> Dict[str, Tuple[str, str]]:
    """A distinct (color, marker) per optimizer, fixed by its position in the config."""
    import matplotlib
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"] + EXTRA_COLORS
    return {n: (colors[i % len(colors)], MARKERS[i % len(MARKERS)]) for i, n in enumerate(names)}


class LevelSets(NamedTuple):
    """A surface sampled over a plot's view, with the contour levels to draw."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray  # f − f* around a minimum, else f
    levels: np.ndarray
    norm: object  # a matplotlib LogNorm for log-spaced levels, else None


def level_sets(surface: Surface, view: Sequence[float], resolution: int = 160) -> LevelSets:
    """Log-spaced levels of f − f* around a minimum (the Rosenbrock valley and the ravine show
    only then), evenly spaced levels of f otherwise."""
    from matplotlib.colors import LogNorm

    x0, x1, y0, y1 = view
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    points = np.stack([gx.ravel(), gy.ravel()], 1)
    values = np.asarray(jax.jit(jax.vmap(surface.loss))(points), np.float64).reshape(gx.shape)
    if not surface.log_levels:
        return LevelSets(gx, gy, values, np.linspace(values.min(), values.max(), 21), None)
    gap = values - float(jax.jit(surface.loss)(np.asarray(surface.minimum)))  # no eager ops
    low = max(np.percentile(gap, 0.5), 1e-3 * gap.max(), 1e-12)
    levels = np.geomspace(low, gap.max(), 18)
    return LevelSets(gx, gy, np.maximum(gap, low * 0.999), levels, LogNorm(low, gap.max()))


def _draw_levels(ax, sets: LevelSets) -> None:
    """Light filled level sets with thin contour lines, the view's limits and axis labels."""
    ax.contourf(sets.x, sets.y, sets.values, levels=sets.levels, norm=sets.norm,
                cmap="Greys_r", alpha=0.35, extend="both")
    ax.contour(sets.x, sets.y, sets.values, levels=sets.levels, colors="gray", linewidths=0.5,
               alpha=0.8)
    ax.set(xlim=(sets.x[0, 0], sets.x[0, -1]), ylim=(sets.y[0, 0], sets.y[-1, 0]),
           xlabel="x", ylabel="y")


def _legend_label(name: str, run_: Dict) -> str:
    steps = run_["steps_to_target"]
    outcome = ("diverged" if run_["diverged"] else "not reached" if steps is None
               else f"{steps} steps")
    return f"{name} η={run_['learning_rate']:.3g}: {outcome}"


def plot_trajectories(report: Dict, arrays: Dict, surface_name: str, surface: Surface,
                      path) -> bool:
    """One panel per frame (the path up to step k, a marker at θ_k) and one with every step."""
    if not plots_available():
        return False
    spec = report["config"]["surfaces"][surface_name]
    info = report["surfaces"][surface_name]
    names = report["config"]["optimizers"]
    styles = style(names)
    frames = [*spec["frames"], spec["steps"]]
    fig = figure("plot_trajectories", figsize=(4.3 * len(frames), 4.9), layout="constrained")
    axes = fig.subplots(1, len(frames), squeeze=False)[0]
    sets = level_sets(surface, spec["view"])
    handles = []
    for ax, k in zip(axes, frames):
        _draw_levels(ax, sets)
        for name in names:
            color, marker = styles[name]
            points = arrays[f"{surface_name}/{name}/positions"][: k + 1]
            label = _legend_label(name, chosen_run(report["results"][surface_name][name]))
            ax.plot(points[:, 0], points[:, 1], "-", color=color, lw=1.1, alpha=0.85)
            head, = ax.plot(*points[-1], marker, color=color, ms=7, mec="black", mew=0.6,
                            label=label)
            if ax is axes[0]:
                handles.append(head)
        ax.plot(*info["start"], "x", color="black", ms=8, mew=1.5)
        if info["minimum"] is not None:
            ax.plot(*info["minimum"], "*", color="gold", ms=14, mec="black", mew=0.8)
        ax.set_title(f"step {k}" if k < spec["steps"] else f"all {k} steps", fontsize=10)
    fig.suptitle(f"{surface_name}: f = {info['formula']}, start {tuple(info['start'])} (×), "
                 f"target f ≤ {info['target']:g}", fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    save(fig, path)
    return True


def plot_losses(report: Dict, arrays: Dict, surface_name: str, path) -> bool:
    """The loss (f − f*, log scale; on the saddle f itself, symlog) against the step."""
    if not plots_available():
        return False
    info = report["surfaces"][surface_name]
    names = report["config"]["optimizers"]
    styles = style(names)
    fig = figure("plot_losses", figsize=(8.5, 5.2), layout="constrained")
    ax = fig.subplots()
    offset = info["minimum_value"] or 0.0
    floor = 1e-15  # f − f* is 0 on the minimum itself
    for name in names:
        color, marker = styles[name]
        run_ = chosen_run(report["results"][surface_name][name])
        values = arrays[f"{surface_name}/{name}/losses"].astype(np.float64) - offset
        if info["minimum"] is not None:
            values = np.maximum(values, floor)
        steps = np.arange(len(values))
        ax.plot(steps[1:], values[1:], "-", color=color, lw=1.2,
                label=_legend_label(name, run_))
        if run_["steps_to_target"]:
            at = run_["steps_to_target"]
            ax.plot(at, values[at], marker, color=color, ms=6, mec="black", mew=0.5)
    ax.axhline(info["target"] - offset, color="gray", ls=":", lw=1,
               label="target (marker: reached)")
    ax.set_xscale("log")
    if info["minimum"] is not None:
        ax.set_yscale("log")
        ax.set_ylabel("f(θ_t) − f*")
    else:
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylim(top=3 * max(1.0, info["start_loss"]))
        ax.set_ylabel("f(θ_t)  (symlog)")
    ax.set(xlabel="step t", title=f"{surface_name}: f = {info['formula']}")
    ax.grid(alpha=0.3, which="major")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7.5, loc="outside right upper")
    save(fig, path)
    return True


def plot_tuning(report: Dict, path) -> bool:
    """Steps to the target against the learning rate, one panel per surface; the chosen rate
    circled, runs that never reached the target left out."""
    if not report["config"]["tuning"]["enabled"] or not plots_available():
        return False
    names = report["config"]["optimizers"]
    styles = style(names)
    surfaces = list(report["results"])
    fig = figure("plot_tuning", figsize=(4.6 * len(surfaces), 4.6), layout="constrained")
    axes = fig.subplots(1, len(surfaces), squeeze=False)[0]
    for ax, surface_name in zip(axes, surfaces):
        budget = report["surfaces"][surface_name]["steps"]
        fewest = min((s for record in report["results"][surface_name].values()
                      for s in record["grid"]["steps_to_target"] if s), default=1)
        for name in names:
            color, marker = styles[name]
            record = report["results"][surface_name][name]
            grid = record["grid"]["learning_rates"]
            steps = np.array([np.nan if s is None else s
                              for s in record["grid"]["steps_to_target"]], np.float64)
            ax.plot(grid, steps, "-", marker=marker, color=color, ms=4, lw=1, label=name)
            best = record["tuned"]
            if best["steps_to_target"] is not None:
                ax.plot(best["learning_rate"], best["steps_to_target"], "o", mfc="none",
                        mec=color, ms=11, mew=1.5)
        ax.axhline(budget, color="gray", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", ylim=(fewest / 1.5, budget * 1.5),
               xlabel="learning rate η (Rprop: Δ₀)", ylabel="steps to target",
               title=f"{surface_name} (budget {budget}; gaps: not reached)")
        ax.grid(alpha=0.3, which="major")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=12,
               fontsize=8, frameon=False)
    save(fig, path)
    return True


def plot_all(report: Dict, arrays: Dict, out, surfaces: Dict[str, Surface]) -> None:
    """Draw every PNG of a run folder (``--replot`` redraws them from its files)."""
    out = Path(out)
    for name, surface in surfaces.items():
        plot_trajectories(report, arrays, name, surface, out / f"trajectories_{name}.png")
        plot_losses(report, arrays, name, out / f"loss_{name}.png")
    plot_tuning(report, out / "tuning.png")


def _without_nulls(value):
    """A JSON value with every null dict entry left out (TOML, hence the schema, has no null)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def config_of(report: Dict) -> TrajectoriesConfig:
    """The config a results.json was made with."""
    return from_dict(_without_nulls(report["config"]), TrajectoriesConfig)


def replot(folder) -> Dict:
    """Redraw the PNGs of a run folder from its results.json and trajectories.npz."""
    folder = Path(folder)
    report = json.loads((folder / "results.json").read_text())
    cfg = config_of(report)
    with np.load(folder / "trajectories.npz") as saved:
        arrays = dict(saved)
    surfaces = {name: make_surface(spec) for name, spec in cfg.surfaces.items()}
    plot_all(report, arrays, folder, surfaces)
    return report


# ----------------------------------------------------------------------------- command line

def _replot(folder: Path) -> None:
    print(format_table(replot(folder)))


def main(argv=None) -> int:
    return experiment_main(argv, name="optimizer_trajectories", description=__doc__.split("\n")[0],
                           load_config=load_config, run=run, quick="the config's learning rates only, no tuning sweep", replot=_replot)


if __name__ == "__main__":
    sys.exit(main())
