"""Save and load training state (any pytree of arrays) as one ``.npz`` file.

    fnn.checkpoint.save("run/step_1000.npz", {"params": params, "opt_state": opt_state, "key": key})
    state = fnn.checkpoint.load("run/step_1000.npz", like=state)   # like= is optional

Supported trees: dicts with str keys, lists, tuples, NamedTuples, None, Python bool/int/float,
NumPy arrays and scalars, and jax arrays of any dtype, including PRNG keys (raw uint32 and typed
``jax.random.key``). Everything round-trips exactly: container types and NamedTuple classes, dict
key order, shapes (0-d stays 0-d), dtypes (bfloat16 too), and Python scalars stay Python scalars.

File format (readable with plain NumPy, no pickle): each array leaf is an entry named by its pytree
path, ``jax.tree_util.keystr(path)``, e.g. ``"['params']['dense_1']['w']"`` or ``"['opt_state'].step"``;
dtypes NumPy cannot name (bfloat16, float8, int4) are stored as unsigned ints of the same width, and
typed keys as their ``key_data``. The entry ``__fnn_checkpoint__`` holds a compact JSON description of
the structure as UTF-8 bytes (a uint8 array; `read_description` decodes it): container types,
NamedTuple classes (``module:qualname``), each leaf's kind, dtype and shape, and the values of Python
scalars (no entry of their own, so a record of a few numbers costs a few bytes). Writes are atomic: a
crash mid-save leaves the previous file intact.

Version 1 files (the description as a UTF-32 string, one entry per Python scalar, each leaf record
naming its entry) still load.
"""
import contextlib
import importlib
import json
import math
import os
import re
import secrets
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, GetAttrKey, SequenceKey, keystr

FORMAT = "fnn.checkpoint"
FORMAT_VERSION = 2
DESCRIPTION_ENTRY = "__fnn_checkpoint__"  # leaf entries start with "[" or "." ("" for a bare leaf)

# How a Python scalar is stored; `.item()` turns the 0-d array back into the same Python type.
_PYTHON_SCALAR_DTYPES = {"bool": np.dtype(np.bool_), "int": np.dtype(np.int64), "float": np.dtype(np.float64)}


class _AsSaved:
    """The type of `AS_SAVED`."""

    def __repr__(self):
        return "fnn.checkpoint.AS_SAVED"


AS_SAVED = _AsSaved()
"""A ``like=`` entry that accepts whatever the file holds at that place (its structure is read
from the file): for parts whose structure the caller cannot know, such as a metrics history."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded faithfully: it is truncated, corrupt, not a checkpoint,
    does not match ``like=``, or holds something this process cannot restore."""


def save(path, tree) -> Path:
    """Write ``tree`` to ``path`` atomically and return the path.

    The file is written to a temporary file in the same directory, flushed and fsynced, then
    renamed onto ``path``: readers see either the old file or the complete new one.
    """
    path = Path(path)
    arrays = {}
    description = {"format": FORMAT, "version": FORMAT_VERSION, "tree": _describe(tree, "save", arrays)}
    text = json.dumps(description, separators=(",", ":"), allow_nan=False)
    arrays[DESCRIPTION_ENTRY] = np.frombuffer(text.encode("utf-8"), np.uint8)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def load(path, like=None):
    """Read a tree written by :func:`save`.

    Args:
      path: the checkpoint file.
      like: optional template tree with the expected structure, e.g. the freshly initialized state
        or ``jax.eval_shape`` of it (leaves may be arrays, ``jax.ShapeDtypeStruct`` or Python
        scalars). The checkpoint must match it exactly (containers, dict keys, NamedTuple fields,
        shapes, dtypes); NamedTuple classes are then taken from the template instead of imported.
        A subtree given as `AS_SAVED` is taken as the file holds it.

    Raises:
      FileNotFoundError: no file at ``path``.
      CheckpointError: the file is not a complete fnn checkpoint, or does not match ``like``.
    """
    path = Path(path)
    description, arrays = _read(path)
    expected = None if like is None else _describe(like, "load")
    with _malformed_description(path):
        if expected is not None:
            mismatch = _first_mismatch(description["tree"], expected, ())
            if mismatch is not None:
                where, detail = mismatch
                raise CheckpointError(
                    f"load: {path} does not match like= at {_named(where)}: {detail}.\n"
                    f"  checkpoint: {_format(description['tree'])}\n"
                    f"  like=:      {_format(expected)}"
                )
        tree = _Restorer(path, arrays).node(description["tree"], like, ())
    if arrays:
        raise CheckpointError(f"load: {path}: entries not described by the structure: {sorted(arrays)}.")
    return tree


def read_description(array) -> dict:
    """The JSON structure description stored in a file's ``__fnn_checkpoint__`` entry (UTF-8 bytes
    as a uint8 array; a UTF-32 string in version 1 files)."""
    array = np.asarray(array)
    if array.dtype.kind == "U" and array.ndim == 0:
        return json.loads(str(array[()]))
    if array.dtype == np.uint8 and array.ndim == 1:
        return json.loads(array.tobytes().decode("utf-8"))
    raise ValueError(f"read_description: expected UTF-8 bytes (uint8 of shape (n,)) or a string; "
                     f"got {array.dtype}{list(array.shape)}.")


def step_path(directory, step: int) -> Path:
    """The conventional checkpoint name for a training step: ``directory/step_000001000.npz``."""
    return Path(directory) / f"step_{step:09d}.npz"


def latest(directory):
    """The :func:`step_path` file with the highest step in ``directory``, or None if there is none."""
    steps = {}
    for candidate in Path(directory).glob("step_*.npz"):
        match = re.fullmatch(r"step_(\d+)\.npz", candidate.name)
        if match:
            steps[int(match.group(1))] = candidate
    return steps[max(steps)] if steps else None


# --- describing a tree ------------------------------------------------------------------------


def _describe(tree, function, arrays=None, path=()):
    """JSON-able description of ``tree``'s structure; leaf records carry kind, dtype and shape.

    With ``arrays`` (a dict), also store each leaf's values there under its entry name.
    """
    where = keystr(path)
    if tree is None:
        return {"node": "none"}
    if tree is AS_SAVED and function == "load":
        return {"node": "as_saved"}
    if type(tree) is dict:
        for key in tree:
            if type(key) is not str:
                raise TypeError(f"{function}: dict keys must be str; got {key!r} in the dict at {_named(where)}.")
        node, children = {"node": "dict", "keys": list(tree)}, [(DictKey(key), tree[key]) for key in tree]
    elif _is_namedtuple(tree):
        cls = type(tree)
        node = {"node": "namedtuple", "class": f"{cls.__module__}:{cls.__qualname__}", "fields": list(cls._fields)}
        children = [(GetAttrKey(field), child) for field, child in zip(cls._fields, tree)]
    elif type(tree) in (list, tuple):
        node, children = {"node": type(tree).__name__}, [(SequenceKey(i), child) for i, child in enumerate(tree)]
    else:
        return _describe_leaf(tree, function, arrays, where)
    node["children"] = [_describe(child, function, arrays, path + (key,)) for key, child in children]
    return node


def _describe_leaf(leaf, function, arrays, where):
    if type(leaf) in (bool, int, float):
        record = {"leaf": "python", "dtype": type(leaf).__name__, "shape": []}
    elif _is_typed_key(leaf):
        record = {"leaf": "key", "dtype": str(leaf.dtype), "shape": list(leaf.shape),
                  "impl": str(jax.random.key_impl(leaf))}
    elif isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        kind = "jax" if isinstance(leaf, jax.Array) else "numpy" if isinstance(leaf, np.ndarray) else "numpy_scalar"
        record = {"leaf": kind, "dtype": str(leaf.dtype), "shape": list(leaf.shape)}
    elif function == "load" and isinstance(leaf, jax.ShapeDtypeStruct):
        record = {"leaf": "abstract", "dtype": str(leaf.dtype), "shape": list(leaf.shape)}
    else:
        argument, templates = ("tree", "") if function == "save" else ("like", ", jax.ShapeDtypeStruct")
        raise TypeError(
            f"{function}: unsupported {type(leaf).__name__} at {_named(where)} of {argument}; expected dicts "
            f"with str keys, lists, tuples, NamedTuples, None, Python bool/int/float, arrays{templates}."
        )
    if arrays is not None:
        values = _stored_values(leaf, record, where)
        if record["leaf"] == "python":  # inline: no entry of its own
            record["value"] = _json_scalar(values.item())
        else:
            arrays[where] = values
    return record


def _json_scalar(value):
    """A Python scalar as strict JSON: NaN and ±inf as the strings "nan", "inf", "-inf"."""
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else value


def _stored_values(leaf, record, where):
    """The array written for a leaf; dtypes NumPy cannot name are stored as same-width uints."""
    if record["leaf"] == "python":
        try:
            return np.asarray(leaf, _PYTHON_SCALAR_DTYPES[record["dtype"]])
        except OverflowError:
            message = f"save: the Python int at {_named(where)} does not fit in int64: {leaf}."
            raise ValueError(message) from None
    values = np.asarray(jax.random.key_data(leaf) if record["leaf"] == "key" else leaf)
    if not _is_numeric(values.dtype):
        raise TypeError(f"save: unsupported dtype {values.dtype} at {_named(where)}; expected numbers.")
    return values.view(_storage_dtype(values.dtype))


def _is_numeric(dtype):
    """bool, int, uint, float, complex, or a float/int type from ml_dtypes (bfloat16, float8_*, int4)."""
    if dtype.kind in "biufc":
        return dtype.isnative
    try:
        return dtype.kind == "V" and _dtype(str(dtype)) == dtype
    except TypeError:
        return False


def _storage_dtype(dtype):
    return np.dtype(f"u{dtype.itemsize}") if dtype.kind == "V" else dtype


def _dtype(name):
    """A NumPy dtype from its name, including the ml_dtypes ones jax knows (bfloat16, float8_*)."""
    return np.dtype(jnp.dtype(name))


def _named(where):
    """A keystr path for messages: the empty path is the root."""
    return where or "the root"


def _is_namedtuple(node):
    return _is_namedtuple_class(type(node))


def _is_namedtuple_class(cls):
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _is_typed_key(leaf):
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


# --- comparing and printing descriptions ------------------------------------------------------


def _summary(node):
    """One line saying what a node is, without its children: equal summaries = same node type."""
    if "leaf" in node:
        return node["dtype"] if node["leaf"] == "python" else f"{node['dtype']}{node['shape']}"
    kind = node["node"]
    if kind == "dict":
        return f"dict with keys {sorted(node['keys'])}"
    if kind == "namedtuple":
        return f"NamedTuple with fields {tuple(node['fields'])}"
    if kind in ("list", "tuple"):
        return f"{kind} of length {len(node['children'])}"
    return "None"


def _first_mismatch(stored, expected, path):
    """``(keystr path, detail)`` of the first difference between two descriptions, or None."""
    if expected.get("node") == "as_saved":
        return None
    if _summary(stored) != _summary(expected):
        return keystr(path), f"the checkpoint has {_summary(stored)}, like= has {_summary(expected)}"
    if stored.get("node") in ("dict", "list", "tuple", "namedtuple"):
        children = dict(zip(_child_keys(expected), expected["children"]))
        for key, child in zip(_child_keys(stored), stored["children"]):
            mismatch = _first_mismatch(child, children[key], path + (key,))
            if mismatch is not None:
                return mismatch
    return None


def _child_keys(node):
    if node["node"] == "dict":
        return [DictKey(key) for key in node["keys"]]
    if node["node"] == "namedtuple":
        return [GetAttrKey(field) for field in node["fields"]]
    return [SequenceKey(i) for i in range(len(node["children"]))]


def _format(node):
    """A compact one-line rendering of a description, e.g. ``{'w': float32[3, 4], 'n': int}``."""
    if "leaf" in node:
        return _summary(node)
    kind, children = node["node"], [_format(child) for child in node.get("children", [])]
    if kind == "dict":
        return "{" + ", ".join(f"{key!r}: {child}" for key, child in zip(node["keys"], children)) + "}"
    if kind == "namedtuple":
        name = node["class"].rpartition(":")[2]
        return f"{name}(" + ", ".join(f"{f}={child}" for f, child in zip(node["fields"], children)) + ")"
    if kind == "list":
        return "[" + ", ".join(children) + "]"
    if kind == "tuple":
        return "(" + ", ".join(children) + ("," if len(children) == 1 else "") + ")"
    return "AS_SAVED" if kind == "as_saved" else "None"


# --- files ------------------------------------------------------------------------------------


def _write_npz(file, arrays):
    np.savez(file, **arrays)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read(path):
    """``(description, {entry: array})`` from a checkpoint file, or CheckpointError."""
    with open(path, "rb") as file:  # a missing file is a FileNotFoundError, not a corrupt one
        try:
            contents = np.load(file, allow_pickle=False)
            if isinstance(contents, np.lib.npyio.NpzFile):
                with contents:
                    arrays = {name: contents[name] for name in contents.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
            raise CheckpointError(f"load: {path} is truncated or not an .npz file ({error}).") from error
    if not isinstance(contents, np.lib.npyio.NpzFile):
        raise CheckpointError(f"load: {path} is a single .npy array, not an fnn checkpoint (.npz).")
    if DESCRIPTION_ENTRY not in arrays:
        raise CheckpointError(
            f"load: {path} has no {DESCRIPTION_ENTRY} entry; it was not written by fnn.checkpoint.save."
        )
    with _malformed_description(path):
        description = read_description(arrays.pop(DESCRIPTION_ENTRY))
        format_name, version = description["format"], description["version"]
    if format_name != FORMAT or not isinstance(version, int):
        raise CheckpointError(f"load: {path} is not an fnn checkpoint (format {format_name!r}).")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"load: {path} uses format version {version}; this fnn reads up to version {FORMAT_VERSION}. "
            "Upgrade fnn."
        )
    return description, arrays


@contextlib.contextmanager
def _malformed_description(path):
    """Turn a lookup that fails on a damaged JSON description into a CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"load: {path} has a malformed structure description ({error!r}).") from error


class _Restorer:
    """Rebuilds a tree from its description, consuming the entries of ``arrays``."""

    def __init__(self, path, arrays):
        self.path, self.arrays = path, arrays

    def error(self, where, message):
        return CheckpointError(f"load: {self.path} at {_named(where)}: {message}")

    def node(self, node, like, path):
        if like is AS_SAVED:
            like = None
        if "leaf" in node:
            return self.leaf(node, keystr(path))
        kind = node["node"]
        if kind == "none":
            return None
        if kind == "dict":
            return {key: self.node(child, _child(like, key), path + (DictKey(key),))
                    for key, child in zip(node["keys"], node["children"], strict=True)}
        children = [self.node(child, _child(like, i), path + (key,))
                    for i, (key, child) in enumerate(zip(_child_keys(node), node["children"], strict=True))]
        if kind == "list":
            return children
        if kind == "tuple":
            return tuple(children)
        if kind == "namedtuple":
            cls = type(like) if like is not None else self.namedtuple_class(node, keystr(path))
            return cls(*children)
        raise self.error(keystr(path), f"unknown node type {kind!r}.")

    def namedtuple_class(self, node, where):
        module_name, _, qualname = node["class"].partition(":")
        try:
            cls = importlib.import_module(module_name)
            for attribute in qualname.split("."):
                cls = getattr(cls, attribute)
        except (ImportError, AttributeError) as error:
            raise self.error(
                where,
                f"cannot import the NamedTuple class {node['class']} ({error}). Make it importable, or "
                "pass like= a template tree whose NamedTuples provide the classes.",
            ) from error
        if not _is_namedtuple_class(cls) or list(cls._fields) != node["fields"]:
            raise self.error(
                where,
                f"{node['class']} is not a NamedTuple with fields {tuple(node['fields'])}; the class changed "
                "since saving. Pass like= a template tree with the current classes.",
            )
        return cls

    def leaf(self, record, where):
        kind = record["leaf"]
        if kind == "python" and "value" in record:  # version 2: the value is in the description
            return self.python_scalar(record, where)
        entry = record.get("entry", where)  # version 1 named the entry; it is the leaf's path
        if entry not in self.arrays:
            raise self.error(where, f"the entry {entry!r} is missing.")
        values, shape = self.arrays.pop(entry), tuple(record["shape"])
        if kind == "key":
            return self.key(values, shape, record["impl"], where)
        dtype = _PYTHON_SCALAR_DTYPES[record["dtype"]] if kind == "python" else _dtype(record["dtype"])
        if values.shape != shape or values.dtype != _storage_dtype(dtype):
            raise self.error(
                where,
                f"the description says {_storage_dtype(dtype)}{list(shape)} but the file holds "
                f"{values.dtype}{list(values.shape)}.",
            )
        values = values.view(dtype)
        if kind == "python":
            return values.item()
        if kind == "numpy":
            return values
        if kind == "numpy_scalar":
            return values[()]
        if kind == "jax":
            if jax.dtypes.canonicalize_dtype(dtype) != dtype:
                raise self.error(
                    where,
                    f"a {dtype} jax array would become {jax.dtypes.canonicalize_dtype(dtype)} because "
                    "jax_enable_x64 is off; enable it with jax.config.update('jax_enable_x64', True).",
                )
            return jax.device_put(values)  # (no program compiled per shape, as jnp.asarray would)
        raise self.error(where, f"unknown leaf kind {kind!r}.")

    def python_scalar(self, record, where):
        """A Python bool, int or float written inline (non-finite floats as strings)."""
        value, dtype = record["value"], record["dtype"]
        if dtype == "float" and isinstance(value, str):
            value = float(value)
        if type(value) is not {"bool": bool, "int": int, "float": float}[dtype] and not (
                dtype == "float" and type(value) is int):
            raise self.error(where, f"the description says a Python {dtype} but holds {value!r}.")
        return float(value) if dtype == "float" else value

    def key(self, key_data, shape, impl, where):
        """Typed PRNG keys from their stored ``key_data``."""
        problem = f"cannot make {impl} keys of shape {shape} from {key_data.dtype}{list(key_data.shape)}"
        try:
            key = jax.random.wrap_key_data(jnp.asarray(key_data), impl=impl)
        except (ValueError, TypeError) as error:
            raise self.error(where, f"{problem} ({error}).") from error
        if key.shape != shape:
            raise self.error(where, f"{problem}.")
        return key


def _child(like, key):
    """The template's child at ``key`` (a dict key or position), None without a template."""
    return None if like is None else like[key]
