"""IDX parsing against hand-built bytes, round trips, and every corruption with its message."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.data import CorruptFileError, decode_idx, encode_idx, read_idx

# IDX dtype code -> (struct format of one big-endian item, NumPy dtype); written independently of
# fnn.data.idx so the parser is checked against the format, not against itself.
FORMATS = {0x08: ("B", np.uint8), 0x09: ("b", np.int8), 0x0B: ("h", np.int16),
           0x0C: ("i", np.int32), 0x0D: ("f", np.float32), 0x0E: ("d", np.float64)}


def idx_bytes(code, shape, items):
    fmt = FORMATS[code][0]
    return (bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
            + struct.pack(f">{len(items)}{fmt}", *items))


def items_for(code):
    fmt, dtype = FORMATS[code]
    if fmt in "fd":
        width = 32 if fmt == "f" else 64
        return st.floats(allow_nan=False, width=width)
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def idx_cases(draw):
    code = draw(st.sampled_from(sorted(FORMATS)))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    items = draw(st.lists(items_for(code), min_size=int(np.prod(shape)),
                          max_size=int(np.prod(shape))))
    return code, shape, items


@settings(max_examples=60, deadline=None)
@given(idx_cases())
def test_decodes_hand_built_bytes_for_every_dtype_and_rank(case):
    code, shape, items = case
    array = read_idx(idx_bytes(code, shape, items))
    assert array.dtype == FORMATS[code][1] and array.dtype.isnative
    assert array.shape == shape
    np.testing.assert_array_equal(array.ravel(), np.array(items, FORMATS[code][1]))
    assert encode_idx(array) == idx_bytes(code, shape, items)


def test_known_bytes():
    data = bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 1]) + b"\x01\x02\xff\xfe"
    np.testing.assert_array_equal(read_idx(data), np.array([[258], [-2]], np.int16))


def test_result_is_writable():
    array = read_idx(encode_idx(np.arange(6, dtype=np.uint8)))
    array[0] = 7
    assert array[0] == 7


@pytest.mark.parametrize("compress", [False, True])
def test_reads_files_raw_or_gzipped(tmp_path, compress):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data = encode_idx(array)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), array)
    np.testing.assert_array_equal(read_idx(str(path)), array)
    np.testing.assert_array_equal(read_idx(path.read_bytes()), array)  # gzip found by its magic


GOOD = encode_idx(np.arange(12, dtype=np.int32).reshape(3, 4))


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", r"<bytes>: not a valid IDX file: 2 bytes is shorter than the 4-byte magic"),
    (b"\x01\x00\x08\x01" + GOOD[4:], r"bad magic number 01 00 08 01; expected 00 00"),
    (b"\x00\x00\x07\x01" + GOOD[4:], r"bad magic number 00 00 07 01.*dtype code in \{08, 09"),
    (GOOD[:9], r"header truncated: 2 dims need 12 header bytes, got 9"),
    (GOOD[:-1], r"payload truncated: shape \(3, 4\) of int32 needs 48 bytes .* got 47"),
    (GOOD + b"\x00", r"trailing bytes after the payload: .* needs 48 bytes .* got 49"),
])
def test_corrupt_idx_messages(data, message):
    with pytest.raises(CorruptFileError, match=message):
        read_idx(data)


def test_bad_gzip_messages(tmp_path):
    packed = gzip.compress(GOOD)
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorruptFileError, match=r"truncated\.gz: bad gzip data .*truncated or "
                                               r"corrupt"):
        read_idx(truncated)
    flipped = bytearray(packed)
    flipped[12] ^= 0xFF  # inside the deflate stream
    with pytest.raises(CorruptFileError, match=r"<bytes>: bad gzip data"):
        read_idx(bytes(flipped))
    not_gzip = tmp_path / "raw.gz"
    not_gzip.write_bytes(GOOD)
    with pytest.raises(CorruptFileError, match=r"raw\.gz: not a gzip file .* starts with 00 00"):
        read_idx(not_gzip)


def test_decode_names_the_origin():
    with pytest.raises(CorruptFileError, match=r"^somewhere/file: not a valid IDX file"):
        decode_idx(b"", "somewhere/file")


@pytest.mark.parametrize("dtype", [np.bool_, np.uint16, np.int64, np.complex64])
def test_encode_rejects_unsupported_dtypes(dtype):
    with pytest.raises(ValueError, match=rf"encode_idx: IDX stores uint8, int8, .*; got an array "
                                         rf"of dtype {np.dtype(dtype).name}"):
        encode_idx(np.zeros(3, dtype))


def test_encode_accepts_any_byte_order():
    big = np.arange(5, dtype=">i4")
    assert encode_idx(big) == encode_idx(big.astype("<i4"))
