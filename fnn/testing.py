"""Conformance checks for layers: does a layer keep the protocol of `fnn.core`?

One call tests a layer you wrote (or any model) against every rule a layer must follow::

    report = fnn.testing.check_layer(Scale(), (4, 3))        # raises LayerCheckError if one fails
    report = fnn.testing.check_layer(layer, (4, 3), raise_on_failure=False)
    print(report)                                             # what failed, in words, with numbers

The checks (`CHECKS`; those marked [mode] run once in eval mode and once in train mode):

- ``init_shape`` [mode]: the output shape ``init`` reports equals the shape ``apply`` gives.
- ``unknown_batch``: ``init`` on a ``None`` batch axis reports ``None`` there and the same rest,
  params and state.
- ``eval_shape_init``: ``jax.eval_shape(init)`` works (nothing is computed) and agrees with init.
- ``init_deterministic``: the same key gives the same params and state (whatever the batch size).
- ``params_named``: params and state are nested dicts with string keys and array leaves.
- ``params_float32``: floating params and state are float32 by default.
- ``dtype`` [mode]: float32 inputs give float32 outputs (with x64 off and on: no stray
  promotion) and float64 inputs float64 outputs; the state keeps its dtypes.
- ``jit_matches_eager`` [mode]: ``jax.jit(apply)`` (``train`` static) computes what eager does.
- ``no_retrace`` [mode]: a second jitted call with new values of the same shapes, fed the state
  the first call returned, reuses the compiled function (traces are counted).
- ``state_stable`` [mode]: the new state has the structure, shapes and dtypes of the old, so it
  goes through ``lax.cond`` (and ``lax.scan``) unchanged: a ``lax.cond`` between apply's state
  and the identity is traced (that is where it would fail; nothing needs computing).
- ``eval_mode``: in eval mode the state does not change and no key is needed.
- ``per_example`` [mode]: ``vmap`` over examples (each applied as a batch of one) equals the
  batch: a layer acts on each example alone. Skipped in train mode for layers that use batch
  statistics (``batch_stats=True``) and for layers whose train-mode output depends on the key
  (random masks are drawn for the whole batch).
- ``mask`` [mode]: ``apply(..., context=Context(mask=m))`` works, and the rows with ``m = 0``
  (padding) change neither the outputs of the real rows nor the new state; for a per-example
  layer the mask leaves the real rows as they are without it. A layer with batch statistics
  must leave padded rows out of them (see `fnn.core`).
- ``gradients`` [mode]: in float64, ``jax.grad`` with respect to every floating parameter and
  input equals central finite differences, ``(L(θ + εe_i) − L(θ − εe_i)) / 2ε`` for the scalar
  ``L = Σ ⟨apply(params, x), c⟩`` with a fixed random cotangent ``c``; large leaves are
  sampled (``max_grad_coordinates`` coordinates each). With ``gradients="zero"`` (piecewise
  constant layers such as a binary step) the gradient must instead be exactly 0, never NaN.
  Train mode is skipped, with that reason, when it computed exactly what eval mode did (same
  outputs, no use of the key, no state change): its gradients are then the eval-mode ones.

Any check may be skipped with a stated reason, in both modes or in one: ``skip={"gradients":
"straight-through estimator"}``, ``skip={"mask[train]": "..."}``. ``abstract_only=True`` runs
only the checks that compute nothing (shapes and dtypes by `jax.eval_shape`), for large models
and sweeps over sizes.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fnn.checks import check_int
from fnn.core import Context, Layer, format_shape, init_shapes, is_shape

__all__ = ["CHECKS", "CheckResult", "LayerCheckError", "Report", "away_from_zero",
           "check_layer", "make_inputs", "normal_inputs"]

CHECKS: Dict[str, str] = {
    "init_shape": "init's output shape equals apply's",
    "unknown_batch": "init on a None batch axis",
    "eval_shape_init": "jax.eval_shape(init) agrees with init",
    "init_deterministic": "same key, same params and state",
    "params_named": "params and state are nested dicts of arrays",
    "params_float32": "floating params and state are float32 by default",
    "dtype": "float32 in -> float32 out, float64 in -> float64 out",
    "jit_matches_eager": "jit equals eager",
    "no_retrace": "a second call with the same shapes is not traced again",
    "state_stable": "new state has the old state's structure, shapes and dtypes",
    "eval_mode": "eval mode changes no state and needs no key",
    "per_example": "vmap over examples equals the batch",
    "mask": "padded rows (context mask 0) change nothing else",
    "gradients": "float64 gradients equal finite differences",
}
_PER_MODE = {"init_shape", "dtype", "jit_matches_eager", "no_retrace", "state_stable",
             "per_example", "mask", "gradients"}
_MODES = (("eval", False), ("train", True))
_DEFAULT_BATCH = 3  # replaces a None batch axis in `input_shape`
_MAX_ELEMENTS = 1 << 22  # of the perturbed copies of θ evaluated at once by finite differences
_CONV_BATCH = 4  # perturbed copies of θ evaluated at once for a layer with convolutions


# ----------------------------------------------------------------------------- the report

class CheckResult(NamedTuple):
    """One check's outcome: ``name`` (``"gradients[train]"`` for a per-mode check), ``status``
    (``"passed"``, ``"failed"`` or ``"skipped"``), ``detail`` (what was found or why it was
    skipped, in words) and ``numbers`` (what was measured: differences, tolerances, counts)."""

    name: str
    status: str
    detail: str = ""
    numbers: Mapping[str, Any] = {}

    @property
    def check(self) -> str:
        """The check's name without its mode: ``"gradients"`` for ``"gradients[train]"``."""
        return self.name.split("[")[0]

    def __str__(self):
        numbers = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        text = f"{self.status.upper() if self.status == 'failed' else self.status:7s} {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if numbers and self.status != "skipped":
            text += f" [{numbers}]"
        return text


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class LayerCheckError(AssertionError):
    """A layer failed `check_layer`; ``report`` holds every result."""

    def __init__(self, report: "Report"):
        self.report = report
        super().__init__(str(report))


class Report:
    """Every `CheckResult` of one `check_layer` call, in the order of `CHECKS`.

    ``report.ok`` is True when nothing failed; ``report.failures`` and ``report.skips`` list
    those results, ``report.failed_checks`` the names (without mode) of the checks that failed,
    ``report["gradients[eval]"]`` one result; ``str(report)`` says what failed, in words.
    """

    def __init__(self, layer_name: str, description: str, results: Sequence[CheckResult]):
        self.layer_name = layer_name
        self.description = description
        self.results: List[CheckResult] = list(results)

    @property
    def failures(self) -> List[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def skips(self) -> List[CheckResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed_checks(self) -> set:
        return {r.check for r in self.failures}

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"Report: no check named {name!r}; have {[r.name for r in self.results]}.")

    def __iter__(self):
        return iter(self.results)

    def raise_if_failed(self) -> "Report":
        """Raise `LayerCheckError` (an AssertionError) if any check failed; else return self."""
        if self.failures:
            raise LayerCheckError(self)
        return self

    def __str__(self):
        passed = [r for r in self.results if r.status == "passed"]
        head = (f"check_layer({self.layer_name}, {self.description}): "
                + (f"{len(self.failures)} of {len(self.results)} checks FAILED"
                   if self.failures else f"all {len(passed)} checks run passed")
                + (f", {len(self.skips)} skipped" if self.skips else "") + ".")
        lines = [head] + [f"  {r}" for r in self.failures + self.skips]
        if passed:
            lines.append(textwrap.fill(", ".join(r.name for r in passed), width=96,
                                       initial_indent="  passed: ", subsequent_indent=" " * 10))
        return "\n".join(lines)

    __repr__ = __str__


# ----------------------------------------------------------------------------- inputs

def normal_inputs(rng: np.random.Generator, shape, dtype):
    """Standard normal values of ``shape`` (the default test inputs)."""
    return rng.normal(size=shape).astype(dtype)


def away_from_zero(rng: np.random.Generator, shape, dtype):
    """Values of magnitude in [0.25, 1.5] with random signs: inputs for layers with a kink at 0
    (ReLU family, maxout), so that finite differences never straddle it."""
    return (rng.uniform(0.25, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def _map_shapes(fn, shape_tree):
    return jax.tree_util.tree_map(fn, shape_tree, is_leaf=is_shape)


def make_inputs(input_shape, *, inputs: Optional[Callable] = None, seed: int = 0,
                dtype=jnp.float32):
    """Deterministic test inputs: one array per shape in ``input_shape`` (a shape or a pytree of
    shapes), drawn in order from ``np.random.default_rng(seed)`` by
    ``inputs(rng, shape, dtype)`` (default `normal_inputs`). Made by NumPy, so nothing is
    compiled; floating arrays come back as ``dtype``."""
    # device_put, not jnp.asarray: no XLA compilation per shape
    return jax.tree_util.tree_map(jax.device_put, _numpy_inputs(input_shape, inputs, seed, dtype))


def _numpy_inputs(input_shape, inputs, seed, dtype):
    rng = np.random.default_rng(seed)
    make = normal_inputs if inputs is None else inputs

    def one(shape):
        a = np.asarray(make(rng, tuple(shape), np.dtype(dtype)))
        return a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a

    return _map_shapes(one, input_shape)


# ----------------------------------------------------------------------------- helpers

def _is_float(a) -> bool:
    return jnp.issubdtype(jnp.result_type(a), jnp.floating)


def _cast_floats(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if _is_float(a) and jnp.result_type(a) != dtype else a, tree)


def _specs(tree):
    """(shape, dtype) of every leaf: what jit's cache and lax.cond look at (weak types aside)."""
    return jax.tree_util.tree_map(lambda a: (tuple(np.shape(a)), jnp.result_type(a).name), tree)


def _shapes(y):
    return jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), y)


def _with_batch(shape_tree, batch):
    return _map_shapes(lambda s: tuple(batch if d is None else d for d in s), shape_tree)


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    first = text[0] if text else type(e).__name__
    return first if len(first) <= 400 else first[:400] + " ..."


def _path_name(prefix: str, path) -> str:
    return prefix + jax.tree_util.keystr(path)


def _leaves_with_names(prefix: str, tree):
    return [(_path_name(prefix, p), leaf)
            for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


class _Diff(NamedTuple):
    ok: bool
    message: str
    numbers: Dict[str, Any]


def _compare(actual, expected, rtol: float, atol: float, name: str = "y") -> _Diff:
    """``|actual − expected| <= atol + rtol·|expected|`` leafwise (NaN only where expected is
    NaN), with the worst entry named in the message."""
    if jax.tree_util.tree_structure(actual) != jax.tree_util.tree_structure(expected):
        return _Diff(False, f"{name} has structure {jax.tree_util.tree_structure(actual)}, "
                            f"expected {jax.tree_util.tree_structure(expected)}", {})
    worst = (-math.inf, None)
    max_abs = 0.0
    for (where, a), (_, e) in zip(_leaves_with_names(name, actual),
                                  _leaves_with_names(name, expected)):
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return _Diff(False, f"{where} has shape {a.shape}, expected {e.shape}", {})
        if a.size == 0:
            continue
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        both_nan = np.isnan(a64) & np.isnan(e64)
        diff = np.where(both_nan, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        excess = diff - (atol + rtol * np.abs(np.nan_to_num(e64)))
        i = int(np.argmax(excess))
        max_abs = max(max_abs, float(diff.max()))
        if excess.flat[i] > worst[0]:
            index = np.unravel_index(i, a.shape)
            worst = (excess.flat[i], (where, index, a64.flat[i], e64.flat[i], diff.flat[i]))
    numbers = {"max_abs_diff": max_abs, "rtol": rtol, "atol": atol}
    if worst[1] is None or worst[0] <= 0:
        return _Diff(True, "", numbers)
    where, index, a, e, d = worst[1]
    at = f"{where}[{', '.join(map(str, index))}]" if index else where
    return _Diff(False, f"{at} is {a:.6g}, expected {e:.6g} (|diff| {d:.3g})", numbers)


def _equal(actual, expected, name: str) -> _Diff:
    return _compare(actual, expected, 0.0, 0.0, name)


class _Checker:
    """Collects results; runs each check body, turning an exception into a failure."""

    def __init__(self, skip: Mapping[str, str]):
        self.skip = dict(skip)
        self.results: Dict[str, CheckResult] = {}

    def skipped_by_user(self, name: str) -> bool:
        return name in self.skip or name.split("[")[0] in self.skip

    def wanted(self, name: str) -> bool:
        return not self.skipped_by_user(name) and name not in self.results

    def add(self, name, status, detail="", numbers=None):
        if self.skipped_by_user(name):
            return  # computed on the way to other checks, but not reported
        if name not in self.results:
            self.results[name] = CheckResult(name, status, detail, dict(numbers or {}))

    def passed(self, name, detail="", numbers=None):
        self.add(name, "passed", detail, numbers)

    def failed(self, name, detail, numbers=None):
        self.add(name, "failed", detail, numbers)

    def skipped(self, name, reason):
        self.add(name, "skipped", reason)

    def verdict(self, name, problems: Sequence[str], numbers=None, detail=""):
        if problems:
            self.failed(name, "; ".join(problems), numbers)
        else:
            self.passed(name, detail, numbers)

    def run(self, name, body: Callable[[], None]):
        """Run ``body`` (which records ``name``) unless skipped; an exception fails ``name``."""
        if not self.wanted(name):
            return
        try:
            body()
        except Exception as e:  # noqa: BLE001 - any error of the layer is a finding
            self.failed(name, f"raised {_error(e)}")


# ----------------------------------------------------------------------------- check_layer

def check_layer(layer: Layer, input_shape, *, dtype=jnp.float32, key=None, seed: int = 0,
                inputs: Optional[Callable] = None, batch_stats: bool = False,
                gradients: str = "finite_differences", rtol: float = 1e-5, atol: float = 1e-6,
                grad_rtol: float = 1e-5, grad_atol: float = 1e-7, grad_eps: float = 1e-6,
                max_grad_coordinates: int = 128, skip: Optional[Mapping[str, str]] = None,
                abstract_only: bool = False, raise_on_failure: bool = True) -> Report:
    """Check ``layer`` against the layer protocol on inputs of ``input_shape``; see `CHECKS`.

    Args:
      layer: an `fnn.core.Layer` (a model is one too).
      input_shape: the input shape with its batch axis, e.g. ``(4, 3)``, or a pytree of shapes
        (a tuple for `parallel`); a ``None`` batch axis is replaced by 3. Batches of at least 2
        let the ``per_example`` and ``mask`` checks bite.
      dtype: the floating dtype of inputs and params for the computing checks (float64 turns
        x64 on for them); ``dtype`` itself always tests float32 and float64.
      key: the PRNG key; ``init`` gets it and ``apply`` gets ``fold_in(key, 1)``. Default
        ``PRNGKey(0)``.
      seed, inputs: test inputs are ``inputs(rng, shape, dtype)`` with
        ``rng = np.random.default_rng(seed)`` (default `normal_inputs`; `away_from_zero` for
        layers with kinks at 0; anything else, e.g. integer token ids, for special layers).
      batch_stats: the layer computes statistics over the batch in train mode (BatchNorm):
        ``per_example`` is skipped in train mode, and ``mask`` still demands that padded rows
        are left out of those statistics.
      gradients: ``"finite_differences"``, or ``"zero"`` for piecewise constant layers (the
        gradient must be exactly 0 and finite). Skip the check with ``skip``.
      rtol, atol: tolerances of the float32 comparisons (jit/eager, per example, mask).
      grad_rtol, grad_atol, grad_eps: tolerances and step ε of the float64 finite differences.
      max_grad_coordinates: at most this many coordinates per leaf are differenced (chosen at
        random, including the first and last, for larger leaves).
      skip: ``{check: reason}`` for checks that do not apply; each is reported as skipped with
        its reason.
      abstract_only: run only ``init_shape``, ``unknown_batch``, ``dtype``, ``params_float32``
        and ``state_stable``: nothing is compiled or computed.
      raise_on_failure: raise `LayerCheckError` (an AssertionError whose message is the report)
        when a check fails; otherwise return the `Report` either way.

    Returns:
      The `Report`.
    """
    if not isinstance(layer, Layer):
        raise ValueError(f"check_layer: `layer` must be an fnn.core.Layer; got "
                         f"{type(layer).__name__}.")
    shape_leaves = jax.tree_util.tree_leaves(input_shape, is_leaf=is_shape)
    if not shape_leaves or not all(is_shape(s) and len(s) >= 1 for s in shape_leaves):
        raise ValueError(f"check_layer: `input_shape` must be a shape with a batch axis, such as "
                         f"(4, 3), or a pytree of such shapes; got {input_shape!r}.")
    if gradients not in ("finite_differences", "zero"):
        raise ValueError(f"check_layer: `gradients` must be 'finite_differences' or 'zero'; "
                         f"got {gradients!r}.")
    skip = dict(skip or {})
    known = set(CHECKS) | {f"{c}[{mode}]" for c in _PER_MODE for mode, _ in _MODES}
    unknown = sorted(set(skip) - known)
    if unknown:
        raise ValueError(f"check_layer: `skip` names unknown checks {unknown}; the checks are "
                         f"{list(CHECKS)}, and 'check[eval]' or 'check[train]' for one mode of "
                         f"{sorted(_PER_MODE)}.")
    if not all(isinstance(r, str) and r for r in skip.values()):
        raise ValueError("check_layer: `skip` must map each check to its reason (a non-empty "
                         f"string); got {skip!r}.")
    check_int("check_layer", "max_grad_coordinates", max_grad_coordinates)

    dtype = jnp.dtype(dtype)
    shape = _with_batch(input_shape, _DEFAULT_BATCH)
    unknown_shape = _map_shapes(lambda s: (None,) + tuple(s[1:]), shape)
    batch = jax.tree_util.tree_leaves(shape, is_leaf=is_shape)[0][0]
    key = jax.random.PRNGKey(0) if key is None else key
    apply_key = jax.random.fold_in(key, 1)
    options = dict(rtol=rtol, atol=atol, grad_rtol=grad_rtol, grad_atol=grad_atol,
                   grad_eps=grad_eps, max_grad_coordinates=int(max_grad_coordinates),
                   batch_stats=batch_stats, gradients=gradients, seed=seed, inputs=inputs)

    checker = _Checker(skip)
    description = f"input {format_shape(shape)}, {dtype.name}"
    _run_checks(checker, layer, shape, unknown_shape, batch, key, apply_key, dtype,
                abstract_only, options)

    order = []
    for check in CHECKS:
        if check in skip:
            order.append(CheckResult(check, "skipped", skip[check]))
            continue
        for n in [check] + [f"{check}[{mode}]" for mode, _ in _MODES]:
            if n in skip:
                order.append(CheckResult(n, "skipped", skip[n]))
            elif n in checker.results:
                order.append(checker.results[n])
    report = Report(layer.name, description, order)
    if raise_on_failure:
        report.raise_if_failed()
    return report


def _run_checks(c: _Checker, layer, shape, unknown_shape, batch, key, apply_key, dtype,
                abstract_only, o):
    # ---- abstract: nothing is computed -------------------------------------------------------
    try:
        out_shape, params_abs, state_abs = init_shapes(layer, shape, key)
    except Exception as e:  # noqa: BLE001
        c.failed("eval_shape_init", f"init under jax.eval_shape raised {_error(e)}")
        try:  # maybe only abstract evaluation fails: carry on with a real init
            out_shape, params, state = layer.init(key, shape)
            params_abs, state_abs = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), (params, state))
        except Exception as e2:  # noqa: BLE001
            _init_failed(c, e2)
            return
    x_abs = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                   _numpy_inputs(shape, o["inputs"], o["seed"], dtype))

    applies = {}  # mode -> True if abstract apply worked
    for mode, train in _MODES:
        name = f"init_shape[{mode}]"

        def init_shape_check(train=train, name=name, mode=mode):
            with jax.enable_x64(dtype.itemsize == 8 or jax.config.jax_enable_x64):
                y, new_state = jax.eval_shape(
                    lambda p, s, x: layer.apply(p, s, x, key=apply_key, train=train),
                    _cast_floats_abstract(params_abs, dtype), state_abs, x_abs)
            applies[mode] = (y, new_state)
            got = _shapes(y)
            c.verdict(name, [] if got == out_shape else
                      [f"init says the output shape is {format_shape(out_shape)}; apply gives "
                       f"{format_shape(got)}"])

        try:
            init_shape_check()
        except Exception as e:  # noqa: BLE001
            c.failed(name, f"apply raised {_error(e)}")

    def unknown_batch():
        out_u, params_u, state_u = init_shapes(layer, unknown_shape, key)
        problems = []
        if not all(s[0] is None for s in jax.tree_util.tree_leaves(out_u, is_leaf=is_shape)):
            problems.append(f"init on {format_shape(unknown_shape)} reports "
                            f"{format_shape(out_u)}: the batch axis should stay unknown")
        elif _with_batch(out_u, batch) != out_shape:
            problems.append(f"init on {format_shape(unknown_shape)} reports "
                            f"{format_shape(out_u)}, on a batch of {batch} "
                            f"{format_shape(out_shape)}")
        if _specs((params_u, state_u)) != _specs((params_abs, state_abs)):
            problems.append("params or state depend on the batch size: "
                            f"{_specs((params_u, state_u))} vs {_specs((params_abs, state_abs))}")
        c.verdict("unknown_batch", problems)

    c.run("unknown_batch", unknown_batch)

    def params_float32():
        with jax.enable_x64(False):
            _, p, s = init_shapes(layer, shape, key)
        bad = [f"{n} is {leaf.dtype}" for n, leaf in
               _leaves_with_names("params", p) + _leaves_with_names("state", s)
               if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.dtype != jnp.float32]
        c.verdict("params_float32", bad)

    c.run("params_float32", params_float32)

    dtype_modes = [(m, t) for m, t in _MODES if m in applies and c.wanted(f"dtype[{m}]")]
    if dtype_modes:
        try:
            _check_dtypes(c, layer, shape, key, apply_key, x_abs, dtype_modes)
        except Exception as e:  # noqa: BLE001
            for mode, _ in dtype_modes:
                c.failed(f"dtype[{mode}]", f"raised {_error(e)}")
    for mode, train in _MODES:
        if mode not in applies:
            c.skipped(f"dtype[{mode}]", f"apply fails (see init_shape[{mode}])")
            c.skipped(f"state_stable[{mode}]", f"apply fails (see init_shape[{mode}])")
            continue
        if c.wanted(f"state_stable[{mode}]"):
            problems = _state_problems(state_abs, applies[mode][1])
            if not problems:  # what lax.cond demands of its branches, checked by tracing one
                try:
                    with jax.enable_x64(dtype.itemsize == 8 or jax.config.jax_enable_x64):
                        jax.eval_shape(lambda p, s, x, pred, train=train: jax.lax.cond(
                            pred, lambda s: layer.apply(p, s, x, key=apply_key, train=train)[1],
                            lambda s: s, s), _cast_floats_abstract(params_abs, dtype), state_abs,
                            x_abs, True)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"lax.cond(pred, apply's state, identity) raised "
                                    f"{_error(e)}")
            c.verdict(f"state_stable[{mode}]", problems)

    if abstract_only:
        return

    # ---- concrete ---------------------------------------------------------------------------
    x64 = dtype.itemsize == 8 or jax.config.jax_enable_x64
    with jax.enable_x64(x64):
        try:
            out_real, params, state = layer.init(key, shape)
        except Exception as e:  # noqa: BLE001
            _init_failed(c, e)
            return
        _check_init(c, layer, shape, unknown_shape, key, out_shape, params_abs, state_abs,
                    out_real, params, state)
        params = _cast_floats(params, dtype)
        observed = {}  # mode -> what its jitted apply gave (for _train_is_eval)
        for mode, train in _MODES:
            if mode not in applies:
                for check in ("jit_matches_eager", "no_retrace", "per_example", "mask",
                              "gradients"):
                    c.skipped(f"{check}[{mode}]", f"apply fails (see init_shape[{mode}])")
                if not train:
                    c.skipped("eval_mode", "apply fails (see init_shape[eval])")
                continue
            observed[mode] = _check_mode(c, layer, mode, train, shape, batch, params, state,
                                         out_shape, apply_key, dtype, o)
        for mode, train in _MODES:
            name = f"gradients[{mode}]"
            if train and c.wanted(name) and _train_is_eval(observed, state):
                c.skipped(name, "train mode computed exactly what eval mode did (same outputs, "
                                "no use of the key, no state change): its gradients are the ones "
                                "checked in eval mode")
            elif mode in applies:
                c.run(name, lambda train=train, name=name: _check_gradients(
                    c, name, layer, shape, params, state, apply_key, train, o))


def _train_is_eval(observed, state) -> bool:
    """Did train mode compute what eval mode did: same outputs, independent of the key, and no
    state change? Then the train-mode gradients are the eval-mode ones."""
    eval_, train = observed.get("eval"), observed.get("train")
    if eval_ is None or train is None or train.get("other_key") is None:
        return False
    return (_equal(train["other_key"], train["y"], "y").ok
            and _equal(train["y"], eval_["y"], "y").ok
            and _equal(train["state"], state, "state").ok)


def _init_failed(c: _Checker, error: BaseException):
    c.failed("init_shape", f"init raised {_error(error)}")
    for check in CHECKS:
        c.skipped(check, "init fails (see init_shape)")


def _cast_floats_abstract(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, dtype)
        if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _state_problems(state, new_state) -> List[str]:
    if jax.tree_util.tree_structure(new_state) != jax.tree_util.tree_structure(state):
        return [f"apply returns a state of structure {jax.tree_util.tree_structure(new_state)}; "
                f"init's is {jax.tree_util.tree_structure(state)}"]
    problems = []
    for (n, a), (_, b) in zip(_leaves_with_names("state", new_state),
                              _leaves_with_names("state", state)):
        if _specs(a) != _specs(b):
            (sa, da), (sb, db) = _specs(a), _specs(b)
            problems.append(f"{n} comes back as {da}{list(sa)}, was {db}{list(sb)}")
    return problems


def _check_dtypes(c, layer, shape, key, apply_key, x_specs, modes):
    """dtype[mode] for each of ``modes``: three dtype configurations, by abstract evaluation."""
    problems = {mode: [] for mode, _ in modes}
    for dtype, x64 in [("float32", False), ("float32", True), ("float64", True)]:
        where = f"{dtype} inputs and params (x64 {'on' if x64 else 'off'})"
        with jax.enable_x64(x64):
            _, params, state = init_shapes(layer, shape, key)
            params = _cast_floats_abstract(params, jnp.dtype(dtype))
            x = _cast_floats_abstract(x_specs, jnp.dtype(dtype))
            for mode, train in modes:
                try:  # abstract evaluation applies exactly the dtype rules that execution does
                    y, new_state = jax.eval_shape(
                        lambda p, s, x: layer.apply(p, s, x, key=apply_key, train=train),
                        params, state, x)
                except Exception as e:  # noqa: BLE001
                    problems[mode].append(f"with {where} apply raised {_error(e)}")
                    continue
                bad = [f"{n} is {leaf.dtype}" for n, leaf in _leaves_with_names("y", y)
                       if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.dtype != dtype]
                if bad:
                    problems[mode].append(f"{where} give {', '.join(bad)}")
                bad_state = _state_problems(state, new_state)
                if bad_state:
                    problems[mode].append(f"with {where} the " + "; ".join(bad_state))
    for mode, _ in modes:
        c.verdict(f"dtype[{mode}]", problems[mode])


def _check_init(c, layer, shape, unknown_shape, key, out_shape, params_abs, state_abs,
                out_real, params, state):
    def eval_shape_init():
        problems = []
        if out_real != out_shape:
            problems.append(f"output shape {format_shape(out_shape)} under eval_shape, "
                            f"{format_shape(out_real)} from init")
        abstract, real = (params_abs, state_abs), (params, state)
        if not all(isinstance(a, jax.ShapeDtypeStruct)
                   for a in jax.tree_util.tree_leaves(abstract)):
            problems.append("eval_shape(init) returned concrete values")
        if _specs(abstract) != _specs(real):
            problems.append(f"params/state under eval_shape {_specs(abstract)}, from init "
                            f"{_specs(real)}")
        c.verdict("eval_shape_init", problems)

    c.run("eval_shape_init", eval_shape_init)

    def init_deterministic():
        problems = []
        _, params_2, state_2 = layer.init(key, shape)
        d = _equal((params_2, state_2), (params, state), "init")
        if not d.ok:
            problems.append(f"init twice with the same key differs: {d.message}")
        _, params_u, state_u = layer.init(key, unknown_shape)
        d = _equal((params_u, state_u), (params, state), "init")
        if not d.ok:
            problems.append(f"init on {format_shape(unknown_shape)} differs from init on "
                            f"{format_shape(shape)}: {d.message}")
        c.verdict("init_deterministic", problems)

    c.run("init_deterministic", init_deterministic)

    def params_named():
        problems = []
        for what, tree in [("params", params), ("state", state)]:
            if not isinstance(tree, dict):
                problems.append(f"{what} is a {type(tree).__name__}, not a dict")
                continue
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                where = _path_name(what, path)
                if not all(isinstance(k, jax.tree_util.DictKey) and isinstance(k.key, str)
                           for k in path):
                    problems.append(f"{where}: every level must be a dict with string keys")
                if not isinstance(leaf, (jax.Array, np.ndarray)):
                    problems.append(f"{where} is a {type(leaf).__name__}, not an array")
        c.verdict("params_named", problems)

    c.run("params_named", params_named)


def _padding(batch: int) -> np.ndarray:
    """The mask of a padded batch: the last ⌊batch/2⌋ rows (at least one) are padding."""
    mask = np.ones(batch, np.float32)
    mask[batch - max(1, batch // 2):] = 0.0
    return mask


def _check_mode(c, layer, mode, train, shape, batch, params, state, out_shape, apply_key,
                dtype, o):
    """The computing checks of one mode, from one jitted function (one compilation)."""
    rtol, atol = o["rtol"], o["atol"]
    if not any(c.wanted(f"{check}[{mode}]") for check in (
            "jit_matches_eager", "no_retrace", "per_example", "mask")) and not (
            not train and c.wanted("eval_mode")):
        return None  # nothing to compute in this mode
    x = make_inputs(shape, inputs=o["inputs"], seed=o["seed"], dtype=dtype)
    x_2 = make_inputs(shape, inputs=o["inputs"], seed=o["seed"] + 1, dtype=dtype)
    masked = c.wanted(f"mask[{mode}]") and batch >= 2
    per_example = (c.wanted(f"per_example[{mode}]") and batch >= 2
                   and not (train and o["batch_stats"]))
    if masked:
        mask = _padding(batch)
        n_real = int(mask.sum())
        other = make_inputs(shape, inputs=o["inputs"], seed=o["seed"] + 2, dtype=dtype)
        x_alt = jax.tree_util.tree_map(
            lambda a, b: jax.device_put(np.concatenate([np.asarray(a)[:n_real],
                                                        np.asarray(b)[n_real:]])), x, other)
    else:
        mask, x_alt = None, None

    def apply(p, s, x, k, context=None):
        return layer.apply(p, s, x, key=k, train=train, context=context)

    def one_row(p, s, k):
        def row(xi):
            y, _ = apply(p, s, jax.tree_util.tree_map(lambda a: a[None], xi), k)
            return jax.tree_util.tree_map(lambda a: a[0], y)
        return row

    parts = {"main": lambda p, s, x, k, x_alt, m, pred: apply(p, s, x, k)}
    if train:  # does the train-mode output depend on the key?
        parts["other_key"] = lambda p, s, x, k, x_alt, m, pred: apply(
            p, s, x, jax.random.fold_in(k, 1))[0]
    if per_example:
        parts["per_example"] = lambda p, s, x, k, x_alt, m, pred: jax.vmap(one_row(p, s, k))(x)
    if masked and train:  # both with the mask: a batch-statistics layer's outputs change
        parts["mask"] = lambda p, s, x, k, x_alt, m, pred: (
            apply(p, s, x, k, Context(mask=m)), apply(p, s, x_alt, k, Context(mask=m)))
    elif masked:  # eval mode acts per example: compare with the batch without a context
        parts["mask"] = lambda p, s, x, k, x_alt, m, pred: (
            None, apply(p, s, x_alt, k, Context(mask=m)))

    traces = [0]
    errors: Dict[str, str] = {}

    def build(names):
        def probe(*args):
            traces[0] += 1  # a Python side effect: runs only while tracing
            return {n: parts[n](*args) for n in names}
        return jax.jit(probe)

    args = (params, state, x, apply_key, x_alt, mask, True)
    probe = build(list(parts))
    try:
        out = probe(*args)
    except Exception as e:  # noqa: BLE001 - find which part fails, keep the rest
        for n in list(parts):
            try:
                jax.jit(parts[n])(*args)
            except Exception as e_n:  # noqa: BLE001
                errors[n] = _error(e_n)
        if not errors:
            errors = {n: _error(e) for n in parts}
        if "main" in errors:
            for check in ("jit_matches_eager", "no_retrace", "per_example", "mask"):
                c.failed(f"{check}[{mode}]", f"jitted apply raised {errors['main']}")
            if not train:
                c.failed("eval_mode", f"jitted apply raised {errors['main']}")
            return None
        probe = build([n for n in parts if n not in errors])
        out = probe(*args)
    y, new_state = out["main"]
    traces_first = traces[0]

    # jit == eager
    def jit_matches_eager():
        y_eager, state_eager = layer.apply(params, state, x, key=apply_key, train=train)
        problems = []
        if _specs(y) != _specs(y_eager):
            problems.append(f"jit gives {_specs(y)}, eager {_specs(y_eager)}")
        if _shapes(y) != out_shape:
            problems.append(f"output shape {format_shape(_shapes(y))}, init says "
                            f"{format_shape(out_shape)}")
        numbers = {}
        for what, jitted, eager in [("y", y, y_eager), ("state", new_state, state_eager)]:
            d = _compare(jitted, eager, rtol, atol, what)
            numbers = {**d.numbers, "max_abs_diff": max(d.numbers.get("max_abs_diff", 0.0),
                                                        numbers.get("max_abs_diff", 0.0))}
            if not d.ok:
                problems.append(f"jit and eager differ: {d.message}")
        c.verdict(f"jit_matches_eager[{mode}]", problems, numbers)
        return y_eager

    name = f"jit_matches_eager[{mode}]"
    y_eager = None
    if c.wanted(name):
        try:
            y_eager = jit_matches_eager()
        except Exception as e:  # noqa: BLE001
            c.failed(name, f"eager apply raised {_error(e)}")

    # eval mode: no state change, no key needed
    if not train:
        def eval_mode():
            problems = []
            d = _equal(new_state, state, "state")
            if not d.ok:
                problems.append(f"eval mode changed the state: {d.message}")
            try:
                y_nokey, state_nokey = layer.apply(params, state, x)  # key=None, train=False
            except Exception as e:  # noqa: BLE001
                problems.append(f"apply without a key raised {_error(e)}")
            else:
                reference = y_eager if y_eager is not None else y
                d = _compare(y_nokey, reference, rtol, atol, "y")
                if not d.ok:
                    problems.append(f"the output depends on the key in eval mode: {d.message}")
                d = _equal(state_nokey, state, "state")
                if not d.ok:
                    problems.append(f"eval mode without a key changed the state: {d.message}")
            c.verdict("eval_mode", problems)

        c.run("eval_mode", eval_mode)

    # no retrace: new values of the same shapes, and the state the first call returned
    def no_retrace():  # jit's cache looks at types, not values: the same params will do
        probe(params, new_state, x_2, jax.random.fold_in(apply_key, 7), x_alt, mask, False)
        retraces = traces[0] - traces_first
        c.verdict(f"no_retrace[{mode}]", [] if retraces == 0 else [
            f"the second call with the same shapes was traced again ({retraces} more trace(s)): "
            "something in params, the returned state or the output changed its type (dtype, "
            "weak type, structure) or the layer keeps Python-side state"],
            {"traces": traces[0]})

    name = f"no_retrace[{mode}]"
    if c.wanted(name):
        try:
            no_retrace()
        except Exception as e:  # noqa: BLE001
            c.failed(name, f"the second call raised {_error(e)}")

    # per example
    name = f"per_example[{mode}]"
    if c.wanted(name):
        if batch < 2:
            c.skipped(name, f"a batch of {batch} has no other examples to mix with")
        elif train and o["batch_stats"]:
            c.skipped(name, "the layer uses batch statistics in train mode (batch_stats=True)")
        elif "per_example" in errors:
            c.failed(name, f"vmap over examples raised {errors['per_example']}")
        elif train and not _compare(out["other_key"], y, rtol, atol, "y").ok:
            c.skipped(name, "the train-mode output depends on the key (random masks drawn for "
                            "the whole batch), so one example alone cannot reproduce it")
        else:
            d = _compare(out["per_example"], y, rtol, atol, "y")
            c.verdict(name, [] if d.ok else [
                f"applying each example alone (vmap) differs from the batch: {d.message}; the "
                "layer mixes examples (pass batch_stats=True if it uses batch statistics)"],
                d.numbers)

    # padding mask
    name = f"mask[{mode}]"
    if c.wanted(name):
        if batch < 2:
            c.skipped(name, f"a batch of {batch} cannot hold a padded row")
        elif "mask" in errors:
            c.failed(name, f"apply with context=Context(mask=...) raised {errors['mask']}")
        else:
            masked_x, (y_alt, state_alt) = out["mask"]
            # eval mode changes no state and acts per example (else eval_mode and
            # per_example fail too): the batch without a context is the reference
            y_m, state_m = masked_x if train else (y, state)
            real = lambda t: jax.tree_util.tree_map(  # noqa: E731
                lambda a: np.asarray(a)[:n_real] if np.ndim(a) and np.shape(a)[0] == batch
                else a, t)
            problems, numbers = [], {"mask": mask.astype(int).tolist()}
            d = _compare(real(y_alt), real(y_m), rtol, atol, "y")
            numbers.update(d.numbers)
            if not d.ok:
                problems.append(f"changing the padded rows (mask {numbers['mask']}) changes the "
                                f"real rows' outputs: {d.message}")
            d = _compare(state_alt, state_m, rtol, atol, "state")
            if not d.ok:
                problems.append(f"changing the padded rows changes the new state: {d.message}")
            if train and not o["batch_stats"]:
                d = _compare(real(y_m), real(y), rtol, atol, "y")
                if not d.ok:
                    problems.append(f"the mask changes the real rows of a per-example layer: "
                                    f"{d.message}")
            c.verdict(name, problems, numbers)
    return {"y": y, "state": new_state, "other_key": out.get("other_key")}


def _check_gradients(c, name, layer, shape, params, state, apply_key, train, o):
    """Float64 gradients w.r.t. floating params and inputs against central differences."""
    with jax.enable_x64(True):
        x = make_inputs(shape, inputs=o["inputs"], seed=o["seed"], dtype=jnp.float64)
        leaves, treedef = jax.tree_util.tree_flatten((params, x))  # params cast under jit
        names = [("params" + n[3:]) if n.startswith("[0]") else ("x" + n[3:])
                 for n, _ in _leaves_with_names("", (params, x))]
        floats = [i for i, a in enumerate(leaves) if _is_float(a)]
        diff_leaves = [leaves[i] for i in floats]
        if not diff_leaves:
            c.skipped(name, "the layer has no floating params or inputs")
            return

        def outputs(diff_leaves):  # the floating outputs of apply, in float64
            p, x_ = _rebuild(treedef, leaves, floats,
                             [a.astype(jnp.float64) for a in diff_leaves])
            # the state in float64 too: a float32 running statistic would round the output
            y, _ = layer.apply(p, _cast_floats(state, jnp.float64), x_, key=apply_key,
                               train=train)
            return [a for a in jax.tree_util.tree_leaves(y) if _is_float(a)]

        def loss_of(diff_leaves, cotangent):  # L = Σ ⟨y, c⟩
            return sum(jnp.vdot(a, b) for a, b in zip(outputs(diff_leaves), cotangent))

        jaxpr, out_abs = jax.make_jaxpr(outputs, return_shape=True)(diff_leaves)
        if not out_abs:
            c.skipped(name, "the layer has no floating outputs")
            return
        if o["gradients"] == "zero":
            ones = [np.ones(a.shape, a.dtype) for a in out_abs]
            grads = jax.jit(jax.grad(loss_of))(diff_leaves, ones)
            problems = []
            for i, g in zip(floats, grads):
                g = np.asarray(g)
                if g.size and not np.all(g == 0):
                    problems.append(f"gradients='zero' but d(sum y)/d{names[i]} reaches "
                                    f"{np.nanmax(np.abs(g)):.3g}")
            c.verdict(name, problems)
            return

        rng = np.random.default_rng(o["seed"] + 3)
        cotangent = [rng.normal(size=a.shape) for a in out_abs]  # NumPy: constants under jit
        # coordinates: all of a small leaf, a random sample (with both ends) of a large one
        limit, sizes = o["max_grad_coordinates"], [int(np.size(a)) for a in diff_leaves]
        offsets = np.cumsum([0] + sizes[:-1]).astype(int)
        chosen, sampled = [], False
        for offset, n in zip(offsets, sizes):
            if n <= limit:
                idx = np.arange(n)
            else:
                sampled = True
                rest = rng.choice(np.arange(1, n - 1), max(limit - 2, 0), replace=False)
                idx = np.unique(np.concatenate([[0, n - 1], rest]))[:limit]
            chosen.append(offset + idx)
        coords = np.concatenate(chosen).astype(np.int32)
        eps, k = o["grad_eps"], len(coords)
        convolves = _uses_convolution(jaxpr.jaxpr)

        @jax.jit  # one compilation for the gradient and all the finite differences
        def grad_and_finite_diff(diff_leaves):
            flat, unravel = ravel_pytree([a.astype(jnp.float64) for a in diff_leaves])

            def loss(flat):
                return loss_of(unravel(flat), cotangent)

            where = np.concatenate([coords, coords])
            step = np.concatenate([np.full(k, eps), np.full(k, -eps)])
            if 2 * k * flat.size <= _MAX_ELEMENTS and not convolves:
                steps = np.zeros((2 * k, flat.size))  # small: θ ± ε e_i as one constant matrix
                steps[np.arange(2 * k), where] = step
                values = jax.vmap(loss)(flat[None] + steps)
            else:  # large, or convolving: a few coordinates at a time
                def shifted(where_step):  # L(θ ± ε e_i)
                    i, h = where_step
                    return loss(flat.at[i].add(h))

                values = jax.lax.map(shifted, (jnp.asarray(where), jnp.asarray(step)),
                                     batch_size=_CONV_BATCH if convolves
                                     else max(1, _MAX_ELEMENTS // flat.size))
            return jax.grad(loss)(flat)[coords], (values[:k] - values[k:]) / (2 * eps)

        grad, finite_diff = (np.asarray(a) for a in grad_and_finite_diff(diff_leaves))
    numbers = {"coordinates": k, "eps": eps}
    if sampled:
        numbers["sampled"] = True
    problems = []
    if grad.dtype != np.float64:
        problems.append(f"the gradient came back as {grad.dtype}, not float64")
    d = _compare(grad, finite_diff, o["grad_rtol"], o["grad_atol"], "grad")
    numbers.update(d.numbers)
    if not d.ok:
        excess = np.abs(grad - finite_diff) - (o["grad_atol"]
                                               + o["grad_rtol"] * np.abs(finite_diff))
        i = int(np.argmax(np.where(np.isnan(excess), np.inf, excess)))
        leaf = int(np.searchsorted(offsets, coords[i], side="right") - 1)
        index = np.unravel_index(int(coords[i] - offsets[leaf]), np.shape(diff_leaves[leaf]))
        at = names[floats[leaf]] + (f"[{', '.join(map(str, index))}]" if index else "")
        problems.append(f"d/d{at}: autodiff {grad[i]:.6g}, finite differences "
                        f"{finite_diff[i]:.6g}")
        numbers.update(at=at, autodiff=float(grad[i]), finite_difference=float(finite_diff[i]))
    elif np.abs(grad).max() == 0:
        problems.append("the gradient is identically zero, which tests nothing (for a piecewise "
                        "constant layer pass gradients='zero')")
    c.verdict(name, problems, numbers)


def _uses_convolution(jaxpr) -> bool:
    """Does ``jaxpr`` (or one nested in it: scan, cond, custom rules) hold a convolution?
    Finite differences perturb the kernel too, and a convolution ``vmap``-ped over its kernel
    becomes a grouped convolution, which XLA:CPU runs in time quadratic in the batch (the
    perturbed copies: seconds for a few hundred); the finite differences of such layers are
    evaluated a few copies at a time instead (`_CONV_BATCH`), in linear time."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for value in eqn.params.values():
            for sub in (value if isinstance(value, (tuple, list)) else (value,)):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                if hasattr(inner, "eqns") and _uses_convolution(inner):
                    return True
    return False


def _rebuild(treedef, leaves, floats, diff_leaves):
    full = list(leaves)
    for i, a in zip(floats, diff_leaves):
        full[i] = a
    return jax.tree_util.tree_unflatten(treedef, full)
