"""The README's Python examples run as written, in order, in one namespace."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["grads"]["dense_0"]["w"].shape == (784, 300)
    assert namespace["per_example"].shape == (8, 10)
    assert set(namespace["model"].init(namespace["jax"].random.PRNGKey(0), (None, 4))[1]) == {
        "dense_0", "scale_0", "relu_0"}
