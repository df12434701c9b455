"""Two-class 2-D toy data sets, after the TensorFlow Playground's: examples with no download.

Every generator has the signature ``(key, n, noise) -> (x float32 (n, 2), y int32 (n,))``:
labels alternate 0, 1, 0, 1, … (balanced, also in every prefix); the points of a clean shape
lie roughly in [−1, 1]², and ``noise`` is the standard deviation of Gaussian noise added to each
coordinate. The same key always gives the same data.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn.checks import check_int, check_nonnegative

Shape = Callable[[jax.Array, jax.Array], jax.Array]  # (key, labels (n,)) -> clean points (n, 2)


def _two_classes(name: str, shape: Shape, key, n: int, noise: float):
    n = check_int(name, "n", n, minimum=2)
    noise = check_nonnegative(name, "noise", noise)
    x, labels = _sample(shape, key, n, noise)
    return np.asarray(x, np.float32), np.asarray(labels, np.int32)


@partial(jax.jit, static_argnums=(0, 2))
def _sample(shape: Shape, key, n: int, noise):
    """Labels 0, 1, 0, … (n,) and points (n, 2): the clean shape plus N(0, noise²) per coordinate."""
    shape_key, noise_key = jax.random.split(key)
    labels = jnp.arange(n) % 2
    return shape(shape_key, labels) + noise * jax.random.normal(noise_key, (n, 2)), labels


def _polar(radius, angle):
    return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)


def _spiral(key, labels):
    radius = jax.random.uniform(key, labels.shape)
    return _polar(radius, 1.75 * 2 * jnp.pi * radius + jnp.pi * labels)


def _circles(key, labels):
    radius_key, angle_key = jax.random.split(key)
    u = jax.random.uniform(radius_key, labels.shape)
    radius = jnp.where(labels == 0, 0.5 * u, 0.7 + 0.3 * u)
    return _polar(radius, jax.random.uniform(angle_key, labels.shape, maxval=2 * jnp.pi))


def _xor(key, labels):
    size_key, sign_key = jax.random.split(key)
    size = jax.random.uniform(size_key, labels.shape + (2,), minval=0.1, maxval=1.0)
    sign = jnp.where(jax.random.bernoulli(sign_key, shape=labels.shape), 1.0, -1.0)
    signs = jnp.stack([sign, jnp.where(labels == 0, sign, -sign)], axis=-1)
    return size * signs


def _gaussians(key, labels):
    centre = jnp.where(labels == 0, -0.5, 0.5)[:, None]
    return centre + 0.25 * jax.random.normal(key, labels.shape + (2,))


def spiral(key, n: int, noise: float = 0.0):
    """Two interleaved spirals: radius r ~ U(0, 1), angle ``3.5π r + π y``."""
    return _two_classes("spiral", _spiral, key, n, noise)


def circles(key, n: int, noise: float = 0.0):
    """A disc inside a ring: class 0 has radius in [0, 0.5], class 1 in [0.7, 1]."""
    return _two_classes("circles", _circles, key, n, noise)


def xor(key, n: int, noise: float = 0.0):
    """XOR of the signs: class 0 in quadrants I and III, class 1 in II and IV; |coordinates| in
    [0.1, 1], leaving a margin along the axes."""
    return _two_classes("xor", _xor, key, n, noise)


def gaussians(key, n: int, noise: float = 0.0):
    """Two Gaussian blobs with std 0.25 around (−0.5, −0.5) (class 0) and (0.5, 0.5) (class 1)."""
    return _two_classes("gaussians", _gaussians, key, n, noise)


DATASETS = {"spiral": spiral, "circles": circles, "xor": xor, "gaussians": gaussians}


def get(name: str) -> Callable:
    """The generator called ``name``: ``"spiral"``, ``"circles"``, ``"xor"`` or ``"gaussians"``."""
    if name not in DATASETS:
        raise ValueError(f"fnn.data.synthetic.get: unknown data set {name!r}; "
                         f"expected one of {sorted(DATASETS)}.")
    return DATASETS[name]
