"""The IDX file format (MNIST's), raw or gzip-compressed.

Layout, all integers big-endian::

    bytes 0-1   0x00 0x00
    byte  2     dtype code: 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32, 0E float64
    byte  3     ndim
    then        ndim uint32 sizes, then prod(sizes) items, row-major
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Union

import numpy as np

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

DTYPES = {  # IDX dtype code -> big-endian NumPy dtype
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


class CorruptFileError(ValueError):
    """A data file is unreadable or is not the expected content; the message says which and why."""


def read_idx(source: Source) -> np.ndarray:
    """Read an IDX array from a path (raw, or gzip if the data starts with the gzip magic) or bytes.

    Returns a native-endian, writable array of the stored dtype and shape. Raises
    `CorruptFileError` naming the source for bad gzip, bad magic, a truncated header or payload,
    and trailing bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_idx(gunzip(bytes(source), "<bytes>"), "<bytes>")
    path = os.fspath(source)
    with open(path, "rb") as file:
        blob = file.read()
    return decode_idx(gunzip(blob, path, require=path.endswith(".gz")), path)


def gunzip(blob: bytes, origin: str, *, require: bool = False) -> bytes:
    """Decompress ``blob`` if it starts with the gzip magic (``require``: it must), else return it.

    ``origin`` names the file (or URL) in error messages.
    """
    if not blob.startswith(GZIP_MAGIC):
        if require:
            raise CorruptFileError(f"{origin}: not a gzip file (a .gz file must start with bytes "
                                   f"1f 8b; it starts with {blob[:2].hex(' ') or 'nothing'}).")
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        raise CorruptFileError(f"{origin}: bad gzip data ({error}); the file is truncated or "
                               "corrupt.") from error


def decode_idx(data: bytes, origin: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into an array; ``origin`` names the source in errors."""
    def fail(problem):
        raise CorruptFileError(f"{origin}: not a valid IDX file: {problem}.")

    if len(data) < 4:
        fail(f"{len(data)} bytes is shorter than the 4-byte magic number")
    zeros, code, ndim = data[:2], data[2], data[3]
    if zeros != b"\x00\x00" or code not in DTYPES:
        fail(f"bad magic number {data[:4].hex(' ')}; expected 00 00 <dtype code> <ndim> with a "
             f"dtype code in {{{', '.join(f'{c:02x}' for c in DTYPES)}}}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        fail(f"header truncated: {ndim} dims need {header_size} header bytes, got {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_size
    if got != expected:
        what = "payload truncated" if got < expected else "trailing bytes after the payload"
        fail(f"{what}: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes "
             f"after the header, got {got}")
    flat = np.frombuffer(data, dtype=dtype, offset=header_size)
    return flat.astype(dtype.newbyteorder("=")).reshape(shape)


def encode_idx(array) -> bytes:
    """The uncompressed IDX bytes of ``array`` (inverse of `decode_idx`)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(d.newbyteorder("=").name for d in DTYPES.values())
        raise ValueError(f"encode_idx: IDX stores {names}; got an array of dtype {array.dtype}.")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(DTYPES[code], copy=False).tobytes()
