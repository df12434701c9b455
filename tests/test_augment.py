"""Augmentations: shapes, dtypes and keys; each transform's geometry on images made to show it."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.data import augment as aug

# The augmentations come jitted; the checks below run in NumPy (each eager jnp op on their
# outputs would compile a program of its own).
KEY = jax.random.PRNGKey(0)
IMAGES = jax.device_put(  # NHWC; made in NumPy: a device_put compiles nothing
    np.random.default_rng(1).uniform(size=(6, 9, 9, 2)).astype(np.float32))
AUGMENTATIONS = {
    "shift": aug.random_shift(2),
    "noise": aug.gaussian_noise(0.1),
    "rotation": aug.random_rotation(15),
    "zoom": aug.random_zoom((0.8, 1.2)),
    "flip_left_right": aug.random_flip("left_right"),
    "flip_up_down": aug.random_flip("up_down", p=0.5),
    "blur": aug.random_blur((0.3, 1.0)),
}
COMPOSED = aug.compose(aug.random_shift(1), aug.random_flip("up_down"), aug.gaussian_noise(0.05))
by_name = pytest.mark.parametrize("name", AUGMENTATIONS)


def one_hot_image(size, row, col):
    image = np.zeros((1, size, size), np.float32)
    image[0, row, col] = 1.0
    return jnp.asarray(image)


def position(image):
    """The (row, col) of the largest pixel of one (H, W) image."""
    return tuple(int(i) for i in np.unravel_index(np.argmax(image), image.shape))


# --- the contract: shapes, dtypes, keys ---------------------------------------------------------

@pytest.mark.parametrize("name", [*AUGMENTATIONS, "composed_on_grayscale"])
def test_shape_dtype_and_determinism_per_key(name):
    """Augmentations come jitted: each call below after the first reuses the compilation.
    Tests that follow reuse these compilations too, on IMAGES-shaped batches, to stay fast."""
    augment = AUGMENTATIONS.get(name, COMPOSED)
    images = IMAGES if not name.endswith("grayscale") else jnp.asarray(np.asarray(IMAGES)[..., 0])
    a, b = augment(KEY, images), augment(KEY, images)  # (N, H, W) or NHWC
    chex.assert_trees_all_equal_shapes_and_dtypes(a, images)
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(a, augment(jax.random.PRNGKey(9), images))


@by_name
def test_dtype_preserved_under_x64(name, x64):
    for dtype in [jnp.float32, jnp.float64]:
        images = jax.ShapeDtypeStruct((6, 9, 9, 2), dtype)
        out = jax.eval_shape(AUGMENTATIONS[name], KEY, images)  # traces, compiles nothing
        assert out.shape == images.shape and out.dtype == dtype


@by_name
def test_each_example_gets_its_own_transformation(name):
    """The same image N times in a batch comes out N different ways."""
    batch = jnp.asarray(np.broadcast_to(np.asarray(IMAGES)[:1], IMAGES.shape))
    out = AUGMENTATIONS[name](KEY, batch)
    assert len({o.tobytes() for o in np.asarray(out)}) > 1


def test_compose_folds_the_key_in_per_step():
    first, second = AUGMENTATIONS["flip_left_right"], AUGMENTATIONS["flip_up_down"]
    composed = aug.compose(first, second)(KEY, IMAGES)
    by_hand = second(jax.random.fold_in(KEY, 1), first(jax.random.fold_in(KEY, 0), IMAGES))
    chex.assert_trees_all_close(composed, by_hand)
    chex.assert_trees_all_equal(aug.compose()(KEY, IMAGES), IMAGES)


# --- shifts -----------------------------------------------------------------------------------

def test_translate_moves_a_pixel_by_exactly_the_shift():
    shifts = np.array([(2, 0), (0, -3), (1, 2), (-4, -4)])  # one per image
    moved = np.asarray(aug.translate(np.tile(one_hot_image(9, 4, 4), (4, 1, 1)), shifts))
    np.testing.assert_array_equal(moved.sum(axis=(1, 2)), 1.0)
    assert [position(m) for m in moved] == [(4 + dy, 4 + dx) for dy, dx in shifts]


def test_translate_fills_with_zeros():
    ones = np.ones((2, 5, 6, 1), np.float32)
    moved = np.asarray(aug.translate(ones, np.array([[1, -2], [0, 7]])))  # one shift per image
    assert np.all(moved[0, 0] == 0) and np.all(moved[0, :, -2:] == 0)
    assert float(moved[0].sum()) == 4 * 4
    assert np.all(moved[1] == 0)  # shifted out of the picture


def test_random_shift_moves_by_at_most_max_shift_and_covers_every_offset():
    k, shift = 2, AUGMENTATIONS["shift"]
    batch = np.zeros(IMAGES.shape, np.float32)
    batch[:, 4, 4, :] = 1.0  # a point in the centre
    out = np.concatenate([shift(jax.random.fold_in(KEY, i), batch) for i in range(40)])
    np.testing.assert_array_equal(out.sum(axis=(1, 2)), 1.0)  # nothing lost, nothing blended
    offsets = {(r - 4, c - 4) for r, c in (position(o[..., 0]) for o in out)}
    assert offsets == {(dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)}


# --- noise ------------------------------------------------------------------------------------

def test_noise_has_the_requested_std():
    std, add_noise = 0.1, AUGMENTATIONS["noise"]
    images = np.asarray(IMAGES)
    noise = np.stack([np.asarray(add_noise(jax.random.fold_in(KEY, i), images)) - images
                      for i in range(20)])
    n = noise.size
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * n)
    chex.assert_trees_all_equal(aug.gaussian_noise(0.0)(KEY, IMAGES), IMAGES)


# --- rotations and zoom -----------------------------------------------------------------------

def test_zero_rotation_unit_zoom_and_zero_blur_are_the_identity():
    for identity in [aug.random_rotation(0), aug.random_zoom(1.0), aug.random_blur(0.0)]:
        chex.assert_trees_all_close(identity(KEY, IMAGES), IMAGES, atol=1e-6)


def test_rotation_by_quarter_turns_equals_rot90():
    """On an image without symmetry, so the direction (counterclockwise) is checked too."""
    images = np.asarray(IMAGES)
    for k in [1, 2, 3]:
        expected = np.rot90(images, k, axes=(1, 2))
        chex.assert_trees_all_close(np.asarray(aug.rotate(IMAGES, 90.0 * k)), expected, atol=1e-5)
    grey = images[..., 0]
    chex.assert_trees_all_close(np.asarray(aug.rotate(grey, -90.0)),
                                np.rot90(grey, -1, axes=(1, 2)), atol=1e-5)


def test_rotation_angles_per_example_and_interpolation():
    angles = np.array([0.0, 90.0, 180.0, 45.0, 10.0, -10.0], np.float32)
    out, images = np.asarray(aug.rotate(IMAGES, angles)), np.asarray(IMAGES)
    chex.assert_trees_all_close(out[0], images[0], atol=1e-6)
    chex.assert_trees_all_close(out[2], np.rot90(images[2], 2), atol=1e-5)
    # bilinear: a small rotation moves values only a little, and keeps them in the input's range
    assert float(np.abs(out[4] - images[4])[2:-2, 2:-2].mean()) < 0.3
    assert float(out.min()) >= 0.0 and float(out.max()) <= float(IMAGES.max()) + 1e-6


def test_zoom_scales_offsets_from_the_centre():
    """Output pixel p samples the input at c + (p − c)/s, c = (4, 4) the centre of a 9×9 image."""
    near, far = one_hot_image(9, 5, 4), one_hot_image(9, 6, 4)  # 1 and 2 rows below the centre
    zoomed_in = np.asarray(aug.zoom(near, 2.0))[0]
    assert position(zoomed_in) == (6, 4) and float(zoomed_in[6, 4]) == 1.0  # twice as far
    chex.assert_trees_all_close(zoomed_in[5, 4], 0.5)  # source row 4.5: bilinear half-way
    zoomed_out = np.asarray(aug.zoom(far, 0.5))[0]
    assert position(zoomed_out) == (5, 4) and float(zoomed_out[5, 4]) == 1.0  # half as far
    # zoom out: the border comes from outside: 0
    ones = np.asarray(aug.zoom(np.ones((1, 9, 9), np.float32), 0.5))[0]
    assert float(ones[0, 0]) == 0.0 and float(ones[4, 4]) == 1.0


# --- flips ------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction,axis", [("left_right", 2), ("up_down", 1)])
def test_flips(direction, axis):
    always = aug.random_flip(direction, p=1.0)
    images, n = np.asarray(IMAGES), 60 * len(IMAGES)
    chex.assert_trees_all_equal(np.asarray(always(KEY, IMAGES)), np.flip(images, axis))
    chex.assert_trees_all_equal(np.asarray(always(KEY, always(KEY, IMAGES))), images)
    out = np.concatenate([AUGMENTATIONS[f"flip_{direction}"](jax.random.fold_in(KEY, i), images)
                          for i in range(60)])  # p = 0.5
    flipped = np.all(out == np.tile(np.flip(images, axis), (60, 1, 1, 1)), axis=(1, 2, 3))
    kept = np.all(out == np.tile(images, (60, 1, 1, 1)), axis=(1, 2, 3))
    assert np.all(flipped | kept)  # each image mirrored or left alone
    assert abs(flipped.mean() - 0.5) < 5 * np.sqrt(0.25 / n)


# --- blur -------------------------------------------------------------------------------------

def test_blur_of_a_point_is_the_gaussian():
    sigma = 1.2
    image = one_hot_image(15, 7, 7)
    t = np.arange(-7, 8)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()  # the kernel covers the whole image here: radius 7 >= ceil(3σ) = 4
    blurred = np.asarray(aug.blur(image, sigma, radius=7))
    np.testing.assert_allclose(blurred[0], np.outer(g, g), atol=1e-6)
    default_radius = np.asarray(aug.blur(image, sigma))
    assert abs(float(default_radius[0].sum()) - 1.0) < 1e-5  # default radius: mass kept


def test_blur_keeps_constant_images_and_sigmas_per_example():
    # one σ per example, radius ceil(3·1) = 3
    sigmas = np.array([0.5, 1.0, 0.0, 0.2, 1.0, 0.7], np.float32)
    constant = np.full(IMAGES.shape, 0.7, np.float32)
    chex.assert_trees_all_close(np.asarray(aug.blur(constant, sigmas)), constant, atol=1e-6)
    out = np.asarray(aug.random_blur(1.0)(KEY, IMAGES))  # a number: a fixed σ
    chex.assert_trees_all_close(out, np.asarray(aug.blur(IMAGES, np.ones(6, np.float32))),
                                atol=1e-6)
    images = np.asarray(IMAGES)
    chex.assert_trees_all_close(np.asarray(aug.blur(IMAGES, sigmas))[2], images[2],
                                atol=1e-6)  # σ = 0
    assert float(out.std()) < float(images.std())  # smoother


# --- errors -----------------------------------------------------------------------------------

def test_errors_name_the_function_and_argument():
    shift = aug.random_shift(2)
    with pytest.raises(ValueError, match=r"random_shift expects images of shape \(N, H, W\) or "
                                         r"\(N, H, W, C\); got \(9, 9\)"):
        shift(KEY, np.zeros((9, 9), np.float32))  # NumPy inputs: no eager compile
    with pytest.raises(TypeError, match=r"rotate expects float images; got uint8.*as_float"):
        aug.rotate(np.zeros((2, 9, 9), np.uint8), 10.0)
    with pytest.raises(ValueError, match=r"translate: `shifts` must have shape \(2,\) \(one for "
                                         r"all\) or \(6, 2\) \(one per example\); got \(6,\)"):
        aug.translate(IMAGES, np.zeros(6, np.int32))
    with pytest.raises(ValueError, match=r"random_shift: `max_shift` must be an integer >= 0; "
                                         r"got 1.5"):
        aug.random_shift(1.5)
    with pytest.raises(ValueError, match=r"random_zoom: `factors` must be a number or a pair "
                                         r"\(low, high\) with 0 < low <= high; got \(1.2, 0.8\)"):
        aug.random_zoom((1.2, 0.8))
    with pytest.raises(ValueError, match=r"random_blur: `sigma` must be .* 0 <= low <= high"):
        aug.random_blur(-1.0)
    with pytest.raises(ValueError, match=r"gaussian_noise: `std` must be a real number >= 0"):
        aug.gaussian_noise(-0.1)
    with pytest.raises(ValueError, match=r"random_flip: `direction` must be one of "
                                         r"\('left_right', 'up_down'\); got 'horizontal'"):
        aug.random_flip("horizontal")
    with pytest.raises(ValueError, match=r"random_flip: `p` is a probability and must be in "
                                         r"\[0, 1\]; got 1.5"):
        aug.random_flip(p=1.5)
    with pytest.raises(ValueError, match=r"blur: `sigma` is traced .* pass a static `radius=`"):
        jax.jit(aug.blur)(IMAGES, 1.0)
    with pytest.raises(TypeError, match=r"compose: augmentation 1 must be a function"):
        aug.compose(shift, 3)
