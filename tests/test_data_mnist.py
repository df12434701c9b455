"""MNIST: the real files (when FNN_DATA has them), then look-up, verification and download on tiny
fake files registered in place of the real table, served from file:// mirrors (no network)."""
import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fnn.data import CorruptFileError, as_float, encode_idx, load_mnist, mnist

# ---------------------------------------------------------------------------- the real data
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SHARED_MNIST = Path(os.environ.get("FNN_DATA", "/nonexistent")) / "mnist"


@pytest.fixture(scope="module")
def real_mnist():
    if not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("the MNIST files are not in $FNN_DATA/mnist")
    return {split: load_mnist(split, download=False) for split in ("train", "test")}


@pytest.mark.parametrize("split, n, counts", [("train", 60000, TRAIN_COUNTS),
                                              ("test", 10000, TEST_COUNTS)])
def test_real_mnist(real_mnist, split, n, counts):
    images, labels = real_mnist[split]
    assert images.dtype == np.uint8 and images.shape == (n, 28, 28)
    assert labels.dtype == np.uint8 and labels.shape == (n,)
    assert np.bincount(labels, minlength=10).tolist() == counts
    assert images.min() == 0 and images.max() == 255
    floats = as_float(images[:5], flatten=True)
    assert floats.dtype == np.float32 and floats.shape == (5, 784)
    np.testing.assert_allclose(floats * 255, images[:5].reshape(5, 784), atol=1e-4)


def test_as_float_keeps_the_image_shape_and_rejects_non_uint8():
    assert as_float(np.full((2, 3, 3), 255, np.uint8)).tolist() == np.ones((2, 3, 3)).tolist()
    with pytest.raises(ValueError, match=r"as_float: expects uint8 pixels in 0\.\.255; got dtype "
                                         r"float32"):
        as_float(np.zeros((2, 3, 3), np.float32))


def test_unknown_split():
    with pytest.raises(ValueError, match=r"load_mnist: `split` must be one of \['test', "
                                         r"'train'\]; got 'validation'"):
        load_mnist("validation")


# ---------------------------------------------------------------------------- fake files
IMAGES = np.arange(6 * 2 * 2, dtype=np.uint8).reshape(6, 2, 2)
LABELS = np.array([0, 1, 2, 0, 1, 2], np.uint8)
NAMES = ("fake-images", "fake-labels")


def spec(name, array):
    return mnist.IdxFile(name, array.shape, hashlib.sha256(encode_idx(array)).hexdigest())


def write_split(folder, images=IMAGES, labels=LABELS, compress=True):
    """Write the fake split's two files into ``folder`` (gzipped, as the mirrors serve them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(NAMES, (images, labels)):
        data = encode_idx(array)
        (folder / (f"{name}.gz" if compress else name)).write_bytes(
            gzip.compress(data) if compress else data)
    return folder


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean world: only the fake split, no FNN_DATA, a private cache, no mirrors or network."""
    monkeypatch.setattr(mnist, "SPLITS", {"train": (spec(NAMES[0], IMAGES),
                                                    spec(NAMES[1], LABELS))})
    monkeypatch.setattr(mnist, "MIRRORS", ())
    monkeypatch.delenv("FNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def no_network(url, *args, **kwargs):
        if not url.startswith("file:"):
            raise AssertionError(f"the test tried the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def cache(env):
    return env / "xdg" / "fnn" / "mnist"


def assert_fake(loaded):
    images, labels = loaded
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)


def corrupt(folder):
    """Replace the fake images in ``folder`` by a same-shape file with other pixels."""
    write_split(folder, images=IMAGES[::-1].copy())


def test_cache_dir_follows_xdg_then_home(env, monkeypatch):
    assert mnist.cache_dir() == env / "xdg" / "fnn" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(env / "home"))
    assert mnist.cache_dir() == env / "home" / ".cache" / "fnn" / "mnist"


@pytest.mark.parametrize("compress", [False, True])
def test_loads_raw_or_gzipped_from_data_dir(env, compress):
    assert_fake(load_mnist("train", data_dir=write_split(env / "d", compress=compress)))


def test_look_up_order(env, monkeypatch):
    """data_dir, then $FNN_DATA/mnist, then the cache: a corrupt file further down is never read."""
    given, shared, cached = env / "given", env / "shared", cache(env)
    monkeypatch.setenv("FNN_DATA", str(shared))
    corrupt(shared / "mnist")
    write_split(given)
    assert_fake(load_mnist("train", data_dir=given))
    with pytest.raises(CorruptFileError, match=rf"{shared / 'mnist' / 'fake-images.gz'}: checksum"):
        load_mnist("train")

    write_split(shared / "mnist")
    corrupt(cached)
    assert_fake(load_mnist("train"))
    monkeypatch.delenv("FNN_DATA")
    with pytest.raises(CorruptFileError, match=rf"{cached / 'fake-images.gz'}: checksum"):
        load_mnist("train")


def test_found_files_are_verified(env):
    folder = env / "d"
    write_split(folder, images=IMAGES[:5])
    with pytest.raises(CorruptFileError, match=r"fake-images\.gz: expected uint8 data of shape "
                                               r"\(6, 2, 2\); got uint8 of shape \(5, 2, 2\)"):
        load_mnist("train", data_dir=folder)
    corrupt(folder)
    with pytest.raises(CorruptFileError, match=r"fake-images\.gz: checksum mismatch: the "
                                               r"uncompressed SHA-256 is [0-9a-f]{64}, expected"):
        load_mnist("train", data_dir=folder)
    path = folder / "fake-images.gz"
    path.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(CorruptFileError, match=r"fake-images\.gz: bad gzip data"):
        load_mnist("train", data_dir=folder)


def test_not_found_without_download_says_where_it_looked(env, monkeypatch):
    monkeypatch.setenv("FNN_DATA", str(env / "shared"))
    with pytest.raises(FileNotFoundError) as error:
        load_mnist("train", data_dir=env / "given", download=False)
    message = str(error.value)
    assert "found neither fake-images nor fake-images.gz" in message
    for folder, why in [(env / "given", "the `data_dir` argument"),
                        (env / "shared" / "mnist", "$FNN_DATA/mnist"),
                        (cache(env), "the user cache")]:
        assert f"{folder}  ({why})" in message
    assert "Downloading is off (download=False)" in message and "set FNN_DATA" in message
    assert "FNN_DATA is not set" not in message
    assert not cache(env).exists()


def test_no_network_reports_every_mirror(env, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(mnist, "MIRRORS", ("https://a.example/mnist/", "https://b.example/"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match=r"(?s)The download failed:\n"
                       r"  https://a\.example/mnist/fake-images\.gz: .*no network here>\n"
                       r"  https://b\.example/fake-images\.gz: .*no network here>\n"
                       r".*FNN_DATA is not set"):
        load_mnist("train")


def test_download_verifies_then_caches_atomically(env, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", (write_split(env / "mirror").as_uri() + "/",))
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((Path(src), Path(dst))),
                                                         real_replace(src, dst))[1])
    assert_fake(load_mnist("train"))
    assert sorted(p.name for p in cache(env).iterdir()) == ["fake-images.gz", "fake-labels.gz"]
    assert [dst for _, dst in renames] == [cache(env) / "fake-images.gz",
                                           cache(env) / "fake-labels.gz"]
    assert all(src.parent == cache(env) and src.name.startswith(".") for src, _ in renames)

    monkeypatch.setattr(mnist, "MIRRORS", ())  # now served from the cache
    assert_fake(load_mnist("train", download=False))


def test_corrupt_download_is_rejected_and_never_cached(env, monkeypatch):
    bad = env / "bad"
    corrupt(bad)
    monkeypatch.setattr(mnist, "MIRRORS", (bad.as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match=r"(?s)The download failed:\n  file://.*/bad/"
                                                r"fake-images\.gz: .*checksum mismatch"):
        load_mnist("train")
    assert not cache(env).exists() or not any(cache(env).iterdir())

    good = write_split(env / "good")
    monkeypatch.setattr(mnist, "MIRRORS", (bad.as_uri() + "/", good.as_uri() + "/"))
    assert_fake(load_mnist("train"))  # falls back to the second mirror
    assert_fake(load_mnist("train", data_dir=cache(env), download=False))


def test_download_without_tqdm(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes `import tqdm.auto` fail
    monkeypatch.setattr(mnist, "MIRRORS", (write_split(env / "mirror").as_uri() + "/",))
    assert_fake(load_mnist("train"))


def test_unwritable_cache_warns_and_still_returns_the_data(env, monkeypatch):
    (env / "xdg").mkdir()
    (env / "xdg" / "fnn").write_text("a file where the cache folder should be")
    monkeypatch.setattr(mnist, "MIRRORS", (write_split(env / "mirror").as_uri() + "/",))
    with pytest.warns(UserWarning, match=r"load_mnist: could not cache fake-\w+\.gz in") as caught:
        assert_fake(load_mnist("train"))
    assert [w.filename for w in caught] == [__file__] * 2  # the warnings point at the caller
