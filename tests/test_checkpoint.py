"""Checkpoints: exact round trips, like= validation, corrupt files, and atomic writes."""
import json
import math
import re
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import checkpoint


class SgdState(NamedTuple):
    step: object
    momentum: object


class Pair(NamedTuple):
    first: object
    second: object


def nasty_tree():
    return {
        "params": {"dense": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros((1, 1))},
                   "half": jnp.array([1.5, -2.0], jnp.bfloat16)},
        "opt_state": (SgdState(step=jnp.array(7, jnp.int32), momentum=[None, np.ones(2, np.float32)]), None),
        "key": jax.random.PRNGKey(42),
        "typed_keys": jax.random.split(jax.random.key(3), 2),
        "scalar": jnp.array(2.5),
        "flags": np.array([True, False]),
        "empty": (np.zeros((0, 3), np.uint8), [], {}, ()),
        "python": [1, 2.5, True, -(2**62)],
        "numpy_scalar": np.float32(0.25),
    }


def assert_same_tree(actual, expected, where="root"):
    """Same container types, keys and order, leaf types, dtypes, shapes and values (NaN == NaN)."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same_tree(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_tree(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == expected or (math.isnan(actual) and math.isnan(expected)), where
    elif isinstance(expected, (jax.Array, np.ndarray, np.generic)):
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), where
        if jnp.issubdtype(expected.dtype, jax.dtypes.prng_key):
            actual, expected = jax.random.key_data(actual), jax.random.key_data(expected)
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected), err_msg=where)
    else:
        assert actual == expected, where


# --- round trips ------------------------------------------------------------------------------


def test_nasty_tree_round_trips_exactly(tmp_path):
    tree = nasty_tree()
    path = checkpoint.save(tmp_path / "state.npz", tree)
    restored = checkpoint.load(path)
    assert_same_tree(restored, tree)
    assert restored["opt_state"][0].momentum[0] is None
    assert restored["params"]["dense"]["b"].shape == (1, 1) and restored["scalar"].shape == ()
    # The restored keys still work as keys.
    draw = lambda state: jax.random.uniform(state["typed_keys"][1])  # noqa: E731
    np.testing.assert_array_equal(draw(restored), draw(tree))


def test_file_is_readable_with_plain_numpy(tmp_path):
    tree = nasty_tree()
    checkpoint.save(tmp_path / "state.npz", tree)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as contents:
        np.testing.assert_array_equal(contents["['params']['dense']['w']"], tree["params"]["dense"]["w"])
        assert contents["['opt_state'][0].step"] == 7
        np.testing.assert_array_equal(contents["['typed_keys']"], jax.random.key_data(tree["typed_keys"]))
        assert contents["['params']['half']"].dtype == np.uint16  # bfloat16 bits
        description = checkpoint.read_description(contents[checkpoint.DESCRIPTION_ENTRY])
    assert description["format"] == "fnn.checkpoint" and description["version"] == checkpoint.FORMAT_VERSION


def test_a_bare_leaf_round_trips(tmp_path):
    for tree in (jnp.ones((1, 1), jnp.int32), 3, None, jax.random.key(0)):
        assert_same_tree(checkpoint.load(checkpoint.save(tmp_path / "leaf.npz", tree)), tree)


def test_float64_round_trips(tmp_path, x64):
    tree = {"w": jnp.array([1 / 3], jnp.float64), "n": jnp.array(2**40, jnp.int64)}
    assert_same_tree(checkpoint.load(checkpoint.save(tmp_path / "f64.npz", tree)), tree)


def test_float64_jax_array_without_x64_is_refused(tmp_path):
    with jax.enable_x64(True):
        checkpoint.save(tmp_path / "f64.npz", {"w": jnp.ones(2, jnp.float64)})
    message = r"f64.npz at \['w'\]: a float64 jax array would become float32 because jax_enable_x64 is off"
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(tmp_path / "f64.npz")


# Random trees: every container type, Python scalars, and arrays of many dtypes and shapes.
DTYPES = [np.float32, np.float64, np.int32, np.uint32, np.int8, np.bool_, np.complex64, jnp.bfloat16]
numpy_arrays = st.builds(
    lambda dtype, shape, seed: np.random.default_rng(seed).normal(size=shape).astype(dtype),
    st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3).map(tuple), st.integers(0, 2**16),
)
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    numpy_arrays, numpy_arrays.map(lambda array: array[()] if array.ndim == 0 else array),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.dictionaries(st.text("abc_'[].", max_size=4), children, max_size=3),
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.builds(Pair, children, children),
    ),
    max_leaves=10,
)


@settings(max_examples=30, deadline=None)
@given(trees)
def test_random_trees_round_trip(tree):
    with tempfile.TemporaryDirectory() as directory:
        assert_same_tree(checkpoint.load(checkpoint.save(Path(directory) / "tree.npz", tree)), tree)


# --- like= ------------------------------------------------------------------------------------


def test_like_accepts_the_template_and_its_eval_shape(tmp_path):
    tree = nasty_tree()
    checkpoint.save(tmp_path / "state.npz", tree)
    assert_same_tree(checkpoint.load(tmp_path / "state.npz", like=tree), tree)
    abstract = jax.tree_util.tree_map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) if isinstance(leaf, jax.Array) else leaf, tree
    )
    assert_same_tree(checkpoint.load(tmp_path / "state.npz", like=abstract), tree)


def test_like_supplies_classes_that_cannot_be_imported(tmp_path):
    class LocalState(NamedTuple):  # qualname contains <locals>: not importable
        count: int

    checkpoint.save(tmp_path / "local.npz", {"state": LocalState(count=3)})
    message = rf"at \['state'\]: cannot import the NamedTuple class {re.escape(__name__)}:.*LocalState .*pass like="
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(tmp_path / "local.npz")
    assert checkpoint.load(tmp_path / "local.npz", like={"state": LocalState(count=0)}) == {"state": LocalState(3)}


def test_a_namedtuple_whose_fields_changed_is_refused(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / "state.npz", SgdState(step=1, momentum=2))

    class SgdStateV2(NamedTuple):
        step: int
        velocity: int

    monkeypatch.setattr(sys.modules[__name__], "SgdState", SgdStateV2)
    message = rf"{re.escape(__name__)}:SgdState is not a NamedTuple with fields \('step', 'momentum'\); the class"
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(tmp_path / "state.npz")


LIKE_MISMATCHES = [
    ("shape", {"w": jnp.ones((3, 2)), "opt": SgdState(0, [1.0])},
     r"at \['w'\]: the checkpoint has float32\[2, 3\], like= has float32\[3, 2\]"),
    ("dtype", {"w": jnp.ones((2, 3), jnp.bfloat16), "opt": SgdState(0, [1.0])},
     r"at \['w'\]: the checkpoint has float32\[2, 3\], like= has bfloat16\[2, 3\]"),
    ("keys", {"w": jnp.ones((2, 3)), "optimizer": SgdState(0, [1.0])},
     r"at the root: the checkpoint has dict with keys \['opt', 'w'\], like= has dict with keys \['optimizer', 'w'\]"),
    ("container", {"w": jnp.ones((2, 3)), "opt": SgdState(0, (1.0,))},
     r"at \['opt'\].momentum: the checkpoint has list of length 1, like= has tuple of length 1"),
    ("python scalar", {"w": jnp.ones((2, 3)), "opt": SgdState(jnp.array(0), [1.0])},
     r"at \['opt'\].step: the checkpoint has int, like= has int32\[\]"),
    ("namedtuple", {"w": jnp.ones((2, 3)), "opt": Pair(0, [1.0])},
     r"at \['opt'\]: the checkpoint has NamedTuple with fields \('step', 'momentum'\), like= has NamedTuple with "
     r"fields \('first', 'second'\)"),
]


@pytest.mark.parametrize("template, message", [case[1:] for case in LIKE_MISMATCHES],
                         ids=[case[0] for case in LIKE_MISMATCHES])
def test_like_mismatch_names_the_path_and_prints_both_structures(tmp_path, template, message):
    checkpoint.save(tmp_path / "state.npz", {"w": jnp.ones((2, 3)), "opt": SgdState(step=0, momentum=[1.0])})
    with pytest.raises(checkpoint.CheckpointError, match=r"load: .*state.npz does not match like= " + message) as error:
        checkpoint.load(tmp_path / "state.npz", like=template)
    stored, expected = str(error.value).splitlines()[1:]
    assert stored == "  checkpoint: {'w': float32[2, 3], 'opt': SgdState(step=int, momentum=[float])}"
    assert expected.startswith("  like=:      {")


# --- broken files -----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    """A good checkpoint whose weights are a recognizable byte pattern."""
    path = tmp_path / "state.npz"
    checkpoint.save(path, {"w": np.full(64, 0x5A5A5A5A, np.uint32), "step": np.int64(3)})
    return path


def test_truncated_file(saved):
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"load: .*state.npz is truncated or not an .npz file"):
        checkpoint.load(saved)


@pytest.mark.parametrize("contents", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_file(tmp_path, contents):
    (tmp_path / "bad.npz").write_bytes(contents)
    with pytest.raises(checkpoint.CheckpointError, match=r"load: .*bad.npz is truncated or not an .npz file"):
        checkpoint.load(tmp_path / "bad.npz")


def test_flipped_bit_in_the_data_fails_the_checksum(saved):
    data = bytearray(saved.read_bytes())
    data[data.index(b"\x5a\x5a\x5a\x5a" * 4) + 5] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=r"load: .*state.npz is truncated .*CRC"):
        checkpoint.load(saved)


def test_npy_file_and_foreign_npz(tmp_path):
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"array.npy is a single .npy array, not an fnn checkpoint"):
        checkpoint.load(tmp_path / "array.npy")
    np.savez(tmp_path / "foreign.npz", w=np.ones(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"foreign.npz has no __fnn_checkpoint__ entry"):
        checkpoint.load(tmp_path / "foreign.npz")


def rewrite(path, edit_description=lambda description: None, drop=(), add=None):
    """Rewrite a checkpoint's npz with its JSON description edited, entries dropped or added."""
    with np.load(path) as contents:
        arrays = {name: contents[name] for name in contents.files if name not in drop}
    description = checkpoint.read_description(arrays[checkpoint.DESCRIPTION_ENTRY])
    edit_description(description)
    arrays[checkpoint.DESCRIPTION_ENTRY] = np.frombuffer(json.dumps(description).encode(), np.uint8)
    np.savez(path, **arrays, **(add or {}))


def test_description_that_disagrees_with_the_data(saved):
    rewrite(saved, lambda description: description["tree"]["children"][0].update(shape=[8, 8]))
    with pytest.raises(checkpoint.CheckpointError, match=r"state.npz at \['w'\]: the description says uint32\[8, 8\] "
                       r"but the file holds uint32\[64\]"):
        checkpoint.load(saved)


def test_missing_and_unexpected_entries(saved):
    rewrite(saved, drop=["['step']"])
    with pytest.raises(checkpoint.CheckpointError, match=r"at \['step'\]: the entry \"\['step'\]\" is missing"):
        checkpoint.load(saved)
    rewrite(saved, add={"['step']": np.array(3), "['extra']": np.ones(2)})
    message = r"entries not described by the structure: \[\"\['extra'\]\"\]"
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(saved)


def test_malformed_description_and_newer_version(saved):
    rewrite(saved, lambda description: description["tree"].pop("keys"))
    with pytest.raises(checkpoint.CheckpointError, match=r"state.npz has a malformed structure description \(KeyError"):
        checkpoint.load(saved)
    rewrite(saved, lambda description: description.update(version=99))
    with pytest.raises(checkpoint.CheckpointError, match=r"format version 99; this fnn reads up to version 2"):
        checkpoint.load(saved)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "nowhere.npz")


# --- atomic writes ----------------------------------------------------------------------------


def test_a_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "state.npz"
    checkpoint.save(path, {"step": 1})

    def crash_halfway(file, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(checkpoint, "_write_npz", crash_halfway)
    with pytest.raises(KeyboardInterrupt, match="power cut"):
        checkpoint.save(path, {"step": 2})
    assert checkpoint.load(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary file left behind


def test_save_replaces_an_existing_checkpoint(tmp_path):
    checkpoint.save(tmp_path / "state.npz", {"step": 1})
    checkpoint.save(tmp_path / "state.npz", {"step": 2})
    assert checkpoint.load(tmp_path / "state.npz") == {"step": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


# --- save errors, naming ----------------------------------------------------------------------


@pytest.mark.parametrize("tree, error, message", [
    ({"a": [1, "text"]}, TypeError, r"save: unsupported str at \['a'\]\[1\] of tree; expected dicts with str keys"),
    ({1: 2.0}, TypeError, r"save: dict keys must be str; got 1 in the dict at the root"),
    ({"n": 2**70}, ValueError, r"save: the Python int at \['n'\] does not fit in int64"),
    ({"a": np.array(["x"])}, TypeError, r"save: unsupported dtype <U1 at \['a'\]; expected numbers"),
    (jax.ShapeDtypeStruct((2,), jnp.float32), TypeError, r"save: unsupported ShapeDtypeStruct at the root of tree"),
])
def test_save_rejects_what_it_cannot_restore(tmp_path, tree, error, message):
    with pytest.raises(error, match=message):
        checkpoint.save(tmp_path / "state.npz", tree)
    assert not list(tmp_path.iterdir())


def test_like_with_an_unsupported_leaf(saved):
    with pytest.raises(TypeError, match=r"load: unsupported str at \['w'\] of like; .*jax.ShapeDtypeStruct"):
        checkpoint.load(saved, like={"w": "weights", "step": np.int64(0)})


def test_step_path_and_latest(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    for step in (5, 120, 40):
        checkpoint.save(checkpoint.step_path(tmp_path, step), {"step": step})
    (tmp_path / "step_notes.npz").write_bytes(b"")
    assert checkpoint.step_path(tmp_path, 120).name == "step_000000120.npz"
    assert checkpoint.latest(tmp_path) == checkpoint.step_path(tmp_path, 120)
    assert checkpoint.load(checkpoint.latest(tmp_path)) == {"step": 120}


# --- format versions and size -----------------------------------------------------------------

# A version 1 file as fnn wrote it before 2026-11-29 (the description as a UTF-32 string, an entry
# per Python scalar, each leaf record naming its entry): it must keep loading.
V1_DESCRIPTION = (
    '{"format": "fnn.checkpoint", "version": 1, "tree": {"node": "dict", "keys": ["run", "progress"], '
    '"children": [{"node": "namedtuple", "class": "fnn.train:TrainState", "fields": ["params", "state", '
    '"opt_state"], "children": [{"node": "dict", "keys": ["w"], "children": [{"leaf": "numpy", "dtype": '
    '"float32", "shape": [2, 3], "entry": "[\'run\'].params[\'w\']"}]}, {"node": "dict", "keys": [], '
    '"children": []}, {"node": "tuple", "children": [{"leaf": "jax", "dtype": "int32", "shape": [], '
    '"entry": "[\'run\'].opt_state[0]"}, {"node": "none"}]}]}, {"node": "dict", "keys": ["epoch", "loss", '
    '"done"], "children": [{"leaf": "python", "dtype": "int", "shape": [], "entry": "[\'progress\'][\'epoch\']"}, '
    '{"node": "list", "children": [{"leaf": "python", "dtype": "float", "shape": [], "entry": '
    '"[\'progress\'][\'loss\'][0]"}, {"leaf": "python", "dtype": "float", "shape": [], "entry": '
    '"[\'progress\'][\'loss\'][1]"}]}, {"leaf": "python", "dtype": "bool", "shape": [], "entry": '
    '"[\'progress\'][\'done\']"}]}]}}')


def test_version_1_files_still_load(tmp_path):
    from fnn.train import TrainState
    np.savez(tmp_path / "v1.npz", **{
        "['run'].params['w']": np.arange(6, dtype=np.float32).reshape(2, 3),
        "['run'].opt_state[0]": np.array(7, np.int32), "['progress']['epoch']": np.array(2),
        "['progress']['loss'][0]": np.array(0.5), "['progress']['loss'][1]": np.array(np.nan),
        "['progress']['done']": np.array(True), checkpoint.DESCRIPTION_ENTRY: np.array(V1_DESCRIPTION)})
    expected = {"run": TrainState({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {},
                                  (jnp.array(7, jnp.int32), None)),
                "progress": {"epoch": 2, "loss": [0.5, math.nan], "done": True}}
    assert_same_tree(checkpoint.load(tmp_path / "v1.npz"), expected)


def test_python_scalars_are_inline_and_the_description_is_compact(tmp_path):
    """A record of many numbers adds no entries, and the structure costs about 1 byte per
    character of compact JSON (version 1: 4 bytes per character, 300 bytes of zip per number)."""
    history = {"loss": [0.1 * i for i in range(200)] + [math.inf, -math.inf, math.nan],
               "epoch": list(range(203)), "stopped": [True, False]}
    w = np.ones((64, 64), np.float32)
    path = checkpoint.save(tmp_path / "state.npz", {"w": w, "history": history})
    with np.load(path) as contents:
        assert sorted(contents.files) == sorted(["['w']", checkpoint.DESCRIPTION_ENTRY])
        stored = contents[checkpoint.DESCRIPTION_ENTRY]
        assert stored.dtype == np.uint8
        text = stored.tobytes().decode()
    assert json.loads(text)["tree"]["children"][1]["children"][0]["children"][-1]["value"] == "nan"
    assert_same_tree(checkpoint.load(path)["history"], history)
    assert path.stat().st_size < w.nbytes + len(text) + 1000
    assert len(text) < 120 * (200 + 203 + 2 + 1)  # about 60 characters per number
