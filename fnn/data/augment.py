"""Data augmentation: pure, jit-able random transformations of image batches.

Images are floats of shape (N, H, W) (grayscale) or (N, H, W, C) (NHWC); every function returns
the same shape and dtype. An augmentation is a function ``augment(key, images) -> images`` made
by a factory; it splits ``key`` into one key per example (``jax.random.split(key, N)``) and draws
that example's transformation from it, so the same key always gives the same batch::

    augment = compose(random_shift(2), random_rotation(10), gaussian_noise(0.05))
    xb = augment(jax.random.fold_in(key, step), xb)

The random factories draw parameters for four deterministic transforms, public for test-time use
and plots; each takes one value for the whole batch or one per example:
``translate(images, shifts)``, ``rotate(images, degrees)``, ``zoom(images, factors)``,
``blur(images, sigma)``. Augmentations and transforms come jitted (called eagerly, they would
dispatch op by op) and compose under an outer `jax.jit` or `vmap` as any jitted function does.

Conventions: rows point down, columns right. A shift (dy, dx) moves content dy rows down and dx
columns right. Positive angles turn the picture counterclockwise as displayed (``rotate(x, 90)``
equals ``jnp.rot90(x, axes=(1, 2))``). A zoom factor s > 1 enlarges the content. Rotation and zoom
turn about the centre ((H − 1)/2, (W − 1)/2) with bilinear interpolation; pixels brought in from
outside the image are 0, as for shifts. Blur replicates the edge pixels beyond the border.
"""
from __future__ import annotations

import math
import numbers
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.ndimage import map_coordinates

from fnn.checks import check_int, check_nonnegative

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]  # (key, images) -> images

FLIPS = {"left_right": 1, "up_down": 0}  # direction -> axis of one (H, W, C) image
_MIN_SIGMA = 1e-3  # σ floor: this narrow, the kernel is exactly a unit impulse (e^{−5·10⁵} = 0)


# --- the batch plumbing -----------------------------------------------------------------------

def _check_images(where: str, images):
    if getattr(images, "ndim", None) not in (3, 4):
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"{where} expects images of shape (N, H, W) or (N, H, W, C); got {got}.")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"{where} expects float images; got {images.dtype}. Convert them first, "
                        "e.g. with fnn.data.as_float.")


def _map_images(where: str, per_image: Callable, images, *per_example):
    """``per_image(image (H, W, C), *args_i)`` for every image i; each arg has a leading N axis."""
    _check_images(where, images)
    grayscale = images.ndim == 3
    x = images[..., None] if grayscale else images
    y = jax.vmap(per_image)(x, *per_example).astype(images.dtype)
    return y[..., 0] if grayscale else y


def _per_example(where: str, arg: str, value, images, tail=(), dtype=None):
    """``value`` as one value per example, shape (N, *tail): given per example, or one for all."""
    _check_images(where, images)
    n = images.shape[0]
    value = jnp.asarray(value, images.dtype if dtype is None else dtype)
    if value.shape not in (tuple(tail), (n, *tail)):
        raise ValueError(f"{where}: `{arg}` must have shape {tuple(tail)} (one for all) or "
                         f"{(n, *tail)} (one per example); got {tuple(value.shape)}.")
    return jnp.broadcast_to(value, (n, *tail))


def _example_keys(where: str, key, images):
    _check_images(where, images)
    return jax.random.split(key, images.shape[0])


def _uniform(keys, low, high, dtype):
    """One draw from U(low, high) per key: shape (N,)."""
    return jax.vmap(lambda k: jax.random.uniform(k, (), dtype, low, high))(keys)


def _named(name: str, augment: Augmentation) -> Augmentation:
    """``augment`` jitted (eager calls would dispatch op by op) and named for display."""
    augment.__name__ = augment.__qualname__ = name
    return jax.jit(augment)


def _check_range(where: str, arg: str, value, *, positive: bool = False):
    """A number v (fixed: the range (v, v)) or a pair (low, high) with 0 <= low <= high
    (0 < low when ``positive``); returned as a pair of floats."""
    pair = (value, value) if isinstance(value, numbers.Real) else value
    ok = (isinstance(pair, (tuple, list)) and len(pair) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in pair)
          and (0 < pair[0] if positive else 0 <= pair[0]) and pair[0] <= pair[1])
    if not ok:
        bound = "0 < low" if positive else "0 <= low"
        raise ValueError(f"{where}: `{arg}` must be a number or a pair (low, high) with "
                         f"{bound} <= high; got {value!r}.")
    return float(pair[0]), float(pair[1])


# --- deterministic transforms -----------------------------------------------------------------

def _translate_one(image, shift):
    """y[r, c] = x[r − dy, c − dx], and 0 where that source lies outside the image."""
    h, w = image.shape[:2]
    rows = jnp.arange(h)[:, None] - shift[0]
    cols = jnp.arange(w)[None, :] - shift[1]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    moved = image[jnp.clip(rows, 0, h - 1), jnp.clip(cols, 0, w - 1)]
    return jnp.where(inside[..., None], moved, jnp.zeros_like(moved))


def _warp_one(image, inverse):
    """Bilinear resampling ``y(p) = x(c + A (p − c))`` about the centre c; A = ``inverse`` (2, 2)
    maps an output pixel's offset from the centre to its source's offset. 0 outside the image."""
    h, w = image.shape[:2]
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2], inverse.dtype)[:, None, None]
    grid = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")).astype(
        inverse.dtype)  # (2, H, W): the (row, col) of every output pixel
    source = jnp.einsum("ij,jhw->ihw", inverse, grid - centre) + centre

    def sample(channel):  # (H, W) -> (H, W)
        return map_coordinates(channel, list(source), order=1, mode="constant", cval=0.0)

    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)


def _rotate_one(image, degrees):
    t = jnp.deg2rad(degrees)
    cos, sin = jnp.cos(t), jnp.sin(t)
    # output offset (r, c) samples the source at (r, c) turned by −θ (rows point down)
    return _warp_one(image, jnp.array([[cos, sin], [-sin, cos]]))


def _zoom_one(image, factor):
    return _warp_one(image, jnp.eye(2, dtype=image.dtype) / factor)


def _gaussian_kernel(sigma, radius: int):
    """k_t ∝ exp(−t² / 2σ²) for t = −R..R, normalized to sum 1: shape (2R + 1,)."""
    t = jnp.arange(-radius, radius + 1, dtype=sigma.dtype)
    k = jnp.exp(-0.5 * (t / jnp.maximum(sigma, _MIN_SIGMA)) ** 2)
    return k / k.sum()


def _convolve_axis(image, kernel, axis: int):
    """``y_i = Σ_t k_t x_{i+t−R}`` along ``axis`` (k is symmetric), edge pixels replicated."""
    radius, n = (kernel.shape[0] - 1) // 2, image.shape[axis]
    pad = [(0, 0)] * image.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(image, pad, mode="edge")
    return sum(kernel[t] * lax.slice_in_dim(padded, t, t + n, axis=axis)
               for t in range(2 * radius + 1))


def _blur_one(image, sigma, radius: int):
    kernel = _gaussian_kernel(sigma, radius)  # separable: rows, then columns
    return _convolve_axis(_convolve_axis(image, kernel, 0), kernel, 1)


@jax.jit
def translate(images, shifts):
    """Move the content by whole pixels, zero fill: ``y[n, r, c] = x[n, r − dy_n, c − dx_n]``.

    ``shifts``: int (2,) = (dy, dx) for every image, or (N, 2) one per image.
    """
    shifts = _per_example("translate", "shifts", shifts, images, (2,), jnp.int32)
    return _map_images("translate", _translate_one, images, shifts)


@jax.jit
def rotate(images, degrees):
    """Turn each image counterclockwise by ``degrees`` (a scalar or (N,)) about its centre."""
    degrees = _per_example("rotate", "degrees", degrees, images)
    return _map_images("rotate", _rotate_one, images, degrees)


@jax.jit
def zoom(images, factors):
    """Scale each image about its centre by ``factors`` (a scalar or (N,), > 0; > 1 zooms in)."""
    factors = _per_example("zoom", "factors", factors, images)
    return _map_images("zoom", _zoom_one, images, factors)


def blur(images, sigma, *, radius: int | None = None):
    """Gaussian blur with standard deviation ``sigma`` pixels (a scalar or (N,)).

    The separable kernel spans ``radius`` pixels each side, by default ceil(3·max σ): pass
    ``radius`` when ``sigma`` is traced (under jit). σ → 0 is the identity.
    """
    if radius is None:
        try:
            radius = math.ceil(3 * float(np.max(sigma)))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            raise ValueError("blur: `sigma` is traced (under jit?), so the kernel size cannot be "
                             "read from it; pass a static `radius=`.") from None
    return _blur(images, sigma, check_int("blur", "radius", radius, minimum=0))


@partial(jax.jit, static_argnums=2)
def _blur(images, sigma, radius: int):
    sigma = _per_example("blur", "sigma", sigma, images)
    return _map_images("blur", lambda x, s: _blur_one(x, s, radius), images, sigma)


# --- random augmentations ---------------------------------------------------------------------

def random_shift(max_shift: int = 2) -> Augmentation:
    """Shift each image by (dy, dx), each uniform over the integers in [−max_shift, max_shift]."""
    max_shift = check_int("random_shift", "max_shift", max_shift, minimum=0)

    def augment(key, images):
        keys = _example_keys("random_shift", key, images)
        shifts = jax.vmap(lambda k: jax.random.randint(k, (2,), -max_shift, max_shift + 1))(keys)
        return translate(images, shifts)

    return _named(f"random_shift({max_shift})", augment)


def gaussian_noise(std: float = 0.1) -> Augmentation:
    """Add independent N(0, std²) noise to every pixel: ``y = x + std·ε``."""
    std = check_nonnegative("gaussian_noise", "std", std)

    def augment(key, images):
        keys = _example_keys("gaussian_noise", key, images)
        if std == 0:
            return images
        noise = jax.vmap(lambda k: jax.random.normal(k, images.shape[1:], images.dtype))(keys)
        return images + std * noise

    return _named(f"gaussian_noise({std})", augment)


def random_rotation(max_degrees: float = 10.0) -> Augmentation:
    """Rotate each image by an angle uniform in [−max_degrees, max_degrees]."""
    max_degrees = check_nonnegative("random_rotation", "max_degrees", max_degrees)

    def augment(key, images):
        keys = _example_keys("random_rotation", key, images)
        return rotate(images, _uniform(keys, -max_degrees, max_degrees, images.dtype))

    return _named(f"random_rotation({max_degrees})", augment)


def random_zoom(factors=(0.9, 1.1)) -> Augmentation:
    """Zoom each image by a factor uniform in ``factors`` = (low, high) (a number: fixed)."""
    low, high = _check_range("random_zoom", "factors", factors, positive=True)

    def augment(key, images):
        keys = _example_keys("random_zoom", key, images)
        return zoom(images, _uniform(keys, low, high, images.dtype))

    return _named(f"random_zoom({factors})", augment)


def random_flip(direction: str = "left_right", p: float = 0.5) -> Augmentation:
    """Mirror each image with probability ``p``: ``"left_right"`` reverses its columns,
    ``"up_down"`` its rows."""
    if direction not in FLIPS:
        raise ValueError(f"random_flip: `direction` must be one of {tuple(FLIPS)}; "
                         f"got {direction!r}.")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"random_flip: `p` is a probability and must be in [0, 1]; got {p!r}.")
    axis = FLIPS[direction]

    def flip_one(image, flip):
        return jnp.where(flip, jnp.flip(image, axis), image)

    def augment(key, images):
        keys = _example_keys("random_flip", key, images)
        flips = jax.vmap(lambda k: jax.random.bernoulli(k, p))(keys)
        return _map_images("random_flip", flip_one, images, flips)

    return _named(f"random_flip({direction!r}, p={p})", augment)


def random_blur(sigma=(0.0, 1.0)) -> Augmentation:
    """Blur each image with a Gaussian of σ uniform in ``sigma`` = (low, high) pixels (a number:
    fixed)."""
    low, high = _check_range("random_blur", "sigma", sigma)
    radius = math.ceil(3 * high)

    def augment(key, images):
        keys = _example_keys("random_blur", key, images)
        return blur(images, _uniform(keys, low, high, images.dtype), radius=radius)

    return _named(f"random_blur({sigma})", augment)


def compose(*augmentations: Augmentation) -> Augmentation:
    """Apply the augmentations in order, the i-th with the key ``fold_in(key, i)``."""
    for i, augmentation in enumerate(augmentations):
        if not callable(augmentation):
            raise TypeError(f"compose: augmentation {i} must be a function (key, images) -> "
                            f"images; got {augmentation!r:.80}.")

    def augment(key, images):
        for i, augmentation in enumerate(augmentations):
            images = augmentation(jax.random.fold_in(key, i), images)
        return images

    names = ", ".join(getattr(a, "__name__", "augment") for a in augmentations)
    return _named(f"compose({names})", augment)


__all__ = ["Augmentation", "translate", "rotate", "zoom", "blur", "random_shift",
           "gaussian_noise", "random_rotation", "random_zoom", "random_flip", "random_blur",
           "compose"]
