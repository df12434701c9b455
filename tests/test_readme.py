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


def test_readme_examples_run(monkeypatch):
    if not _mnist_is_here():
        # No MNIST (no ../shared/data, no FNN_DATA, no cache) and no network in tests: the
        # README's MNIST example then runs on stand-in digits of the same shapes and types.
        def stand_in(split="train", data_dir=None, download=True):
            n = 60_000 if split == "train" else 10_000
            rng = np.random.default_rng(0)
            return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, n).astype(np.uint8))
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
