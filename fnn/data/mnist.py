"""MNIST: 60,000 training and 10,000 test digits, 28×28 uint8 pixels, labels 0–9.

Each file is looked for, under its standard name raw or gzipped (``.gz``), in

1. ``data_dir`` (if given),
2. ``$FNN_DATA/mnist`` (if ``FNN_DATA`` is set),
3. the user cache ``$XDG_CACHE_HOME/fnn/mnist`` (default ``~/.cache/fnn/mnist``),

and otherwise downloaded into the cache. Every file, found or downloaded, is checked against the
SHA-256 of its *uncompressed* IDX bytes (the ``.gz`` bytes differ between mirrors), so a wrong,
truncated or corrupt file is never used. A download is verified in memory and only then written to
the cache, through a temporary file and a rename, so the cache never holds a partial file.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fnn.data.idx import CorruptFileError, decode_idx, gunzip


class IdxFile(NamedTuple):
    """An expected IDX file: standard name (no ``.gz``), shape, SHA-256 of the raw IDX bytes."""

    name: str
    shape: tuple
    sha256: str


SPLITS = {  # split -> (images, labels)
    "train": (
        IdxFile("train-images-idx3-ubyte", (60000, 28, 28),
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        IdxFile("train-labels-idx1-ubyte", (60000,),
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ),
    "test": (
        IdxFile("t10k-images-idx3-ubyte", (10000, 28, 28),
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        IdxFile("t10k-labels-idx1-ubyte", (10000,),
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
}
MIRRORS = (  # tried in order; each serves "<name>.gz"
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT = 30  # seconds without progress before a mirror is given up


def load_mnist(split: str = "train", data_dir=None, download: bool = True):
    """Load one MNIST split as raw arrays: images uint8 (N, 28, 28) in 0..255, labels uint8 (N,).

    N is 60,000 for ``"train"`` and 10,000 for ``"test"``. See the module docstring for where the
    files are looked for; ``download=False`` never touches the network. Use `as_float` (or a
    `fnn.data.scaling` scaler) to get network inputs.
    """
    if split not in SPLITS:
        raise ValueError(f"load_mnist: `split` must be one of {sorted(SPLITS)}; got {split!r}.")
    images, labels = SPLITS[split]
    return _load(images, data_dir, download), _load(labels, data_dir, download)


def as_float(images, *, flatten: bool = False) -> np.ndarray:
    """uint8 pixels (N, H, W) -> float32 in [0, 1]: (N, H, W), or (N, H·W) with ``flatten``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"as_float: expects uint8 pixels in 0..255; got dtype {images.dtype}.")
    floats = images.astype(np.float32) / np.float32(255)
    return floats.reshape(len(floats), -1) if flatten else floats


def cache_dir() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/fnn/mnist``, default ``~/.cache/fnn/mnist``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "fnn" / "mnist"


def search_dirs(data_dir=None) -> list[tuple[Path, str]]:
    """The folders searched, in order, each with the reason it is searched."""
    dirs = []
    if data_dir is not None:
        dirs.append((Path(data_dir), "the `data_dir` argument"))
    if os.environ.get("FNN_DATA"):
        dirs.append((Path(os.environ["FNN_DATA"]) / "mnist", "$FNN_DATA/mnist"))
    dirs.append((cache_dir(), "the user cache"))
    return dirs


def _load(spec: IdxFile, data_dir, download: bool) -> np.ndarray:
    dirs = search_dirs(data_dir)
    for folder, _ in dirs:
        for path in (folder / spec.name, folder / f"{spec.name}.gz"):
            if path.is_file():
                return _verified(path.read_bytes(), spec, str(path), gzipped=path.suffix == ".gz")
    if download:
        try:
            return _download(spec, cache_dir())
        except OSError as error:
            failure = f"The download failed:\n{error}"
    else:
        failure = "Downloading is off (download=False)."
    looked = "\n".join(f"  {folder}  ({why})" for folder, why in dirs)
    fnn_data = "" if os.environ.get("FNN_DATA") else " FNN_DATA is not set."
    raise FileNotFoundError(
        f"load_mnist: found neither {spec.name} nor {spec.name}.gz. Looked in:\n{looked}\n"
        f"{failure}\nFix: set FNN_DATA to a folder whose mnist/ subfolder holds the files, pass "
        f"data_dir=, or allow download=True with network access.{fnn_data}")


def _verified(blob: bytes, spec: IdxFile, origin: str, *, gzipped: bool = False) -> np.ndarray:
    """Decode a raw or gzipped file's bytes; raise `CorruptFileError` unless they match ``spec``."""
    data = gunzip(blob, origin, require=gzipped)
    array = decode_idx(data, origin)
    if array.dtype != np.uint8 or array.shape != spec.shape:
        raise CorruptFileError(f"{origin}: expected uint8 data of shape {spec.shape}; got "
                               f"{array.dtype} of shape {array.shape}.")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise CorruptFileError(f"{origin}: checksum mismatch: the uncompressed SHA-256 is "
                               f"{digest}, expected {spec.sha256}. Delete the file to fetch a "
                               "fresh copy.")
    return array


def _download(spec: IdxFile, target: Path) -> np.ndarray:
    """Fetch ``<spec.name>.gz`` from the first mirror that serves a verified copy; cache it."""
    failures = []
    for mirror in MIRRORS:
        url = f"{mirror}{spec.name}.gz"
        try:
            blob = _fetch(url, spec.name)
            array = _verified(blob, spec, url, gzipped=True)
        except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
            failures.append(f"  {url}: {error}")
            continue
        try:
            _write_atomically(target / f"{spec.name}.gz", blob)
        except OSError as error:
            warnings.warn(f"load_mnist: could not cache {spec.name}.gz in {target}: {error}",
                          stacklevel=4)
        return array
    raise OSError("\n".join(failures) or "  no mirrors configured (fnn.data.mnist.MIRRORS)")


def _fetch(url: str, label: str) -> bytes:
    """The bytes at ``url``, with a tqdm progress bar when tqdm is installed."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        total = response.headers.get("Content-Length") if response.headers else None
        buffer, progress = io.BytesIO(), _progress_bar(int(total) if total else None, label)
        try:
            while chunk := response.read(1 << 16):
                buffer.write(chunk)
                progress.update(len(chunk))
        finally:
            progress.close()
    return buffer.getvalue()


def _write_atomically(path: Path, blob: bytes) -> None:
    """Write via a hidden temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress_bar(total, label):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {label}.gz")
