"""Data: MNIST and IDX files, scaling, input/output codings, splits and batches, toy 2-D sets.

Loading, splitting and batching work on host NumPy arrays; scaling and codings are jitted jnp.

    images, labels = load_mnist("train")                    # uint8 (60000, 28, 28), (60000,)
    x = as_float(images, flatten=True)                      # float32 (60000, 784) in [0, 1]
    (x_tr, y_tr), (x_va, y_va) = split(key, (x, labels), (0.9, 0.1), stratify=labels)
    stats = fit_standardize(x_tr, axis=None)                # one mean and σ for all pixels
    x_tr, x_va = rescale(x_tr, stats), rescale(x_va, stats)
    for xb, yb in batches((x_tr, y_tr), 128, key=fold_in(key, epoch)): ...
"""
from fnn.data import augment, coding, idx, mnist, scaling, splits, synthetic
from fnn.data.coding import (binary_code, decode_binary_code, decode_one_hot, decode_thermometer,
                             num_bits, one_hot, thermometer)
from fnn.data.idx import CorruptFileError, decode_idx, encode_idx, read_idx
from fnn.data.mnist import as_float, load_mnist
from fnn.data.scaling import (Affine, Scaler, fit_mean_norm, fit_minmax, fit_standardize,
                              rescale, unit_norm, unscale)
from fnn.data.splits import batch_indices, batches, num_examples, resolve_batch_size, split, split_indices, take
from fnn.data.synthetic import circles, gaussians, spiral, xor

__all__ = [
    "augment", "coding", "idx", "mnist", "scaling", "splits", "synthetic",
    "one_hot", "decode_one_hot", "thermometer", "decode_thermometer", "binary_code",
    "decode_binary_code", "num_bits",
    "read_idx", "decode_idx", "encode_idx", "CorruptFileError",
    "load_mnist", "as_float",
    "Affine", "Scaler", "fit_minmax", "fit_mean_norm", "fit_standardize", "rescale", "unscale",
    "unit_norm",
    "split_indices", "split", "batch_indices", "batches", "num_examples", "resolve_batch_size", "take",
    "spiral", "circles", "xor", "gaussians",
]
