"""The README's Python examples run as written, in order, in one namespace."""
import re
from pathlib import Path

import numpy as np

import fnn.data

README = Path(__file__).resolve().parents[1] / "README.md"


def _mnist_is_here() -> bool:
    try:
        fnn.data.load_mnist("test", download=False)
    except (FileNotFoundError, OSError, ValueError):
        return False
    return True


# The README trains on 10,000 digits, twice (3 epochs each): seconds of arithmetic that test
# nothing more than 1,000 digits do (the same code, the last batch padded as well: 1,000 is
# not a multiple of 64). The test gives the README the first SUBSET digits of each split.
SUBSET = 1_000


def test_readme_examples_run(monkeypatch):
    if _mnist_is_here():
        real = fnn.data.load_mnist

        def first_digits(split="train", data_dir=None, download=True):
            images, labels = real(split, data_dir=data_dir, download=False)
            return images[:SUBSET], labels[:SUBSET]
        monkeypatch.setattr(fnn.data, "load_mnist", first_digits)
    else:
        # No MNIST (no ../shared/data, no FNN_DATA, no cache) and no network in tests: the
        # README's MNIST example then runs on stand-in digits of the same shapes and types.
        def stand_in(split="train", data_dir=None, download=True):
            rng = np.random.default_rng(0)
            return (rng.integers(0, 256, (SUBSET, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, SUBSET).astype(np.uint8))
        monkeypatch.setattr(fnn.data, "load_mnist", stand_in)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["grads"]["dense_0"]["w"].shape == (784, 300)
    assert namespace["per_example"].shape == (8, 10)
    assert set(namespace["model"].init(namespace["jax"].random.PRNGKey(0), (None, 4))[1]) == {
        "dense_0", "scale_0", "relu_0"}
    assert len(namespace["result"].history["loss"]) == 2  # the two-input model's fit
