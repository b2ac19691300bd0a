"""A strict reader for IDX files (the format of MNIST and its relatives), gzip-compressed or not.

Hand-written rather than torchvision's ``read_sn3_pascalvincent_tensor``: that one reads only
decompressed files and checks the header with ``assert``s, while a corrupt or foreign file here must
give a clear error, and the same reader serves the small IDX files the tests generate.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import UserError

# Magic numbers: 0x0000 then type 0x08 (unsigned byte) then the number of dimensions.
IMAGES_MAGIC = 0x0803
LABELS_MAGIC = 0x0801
GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file


def parse_idx(data: bytes, expected_magic: int, name: str = "IDX data") -> np.ndarray:
    """Parse decompressed IDX bytes of unsigned bytes into an array, checking header and length."""
    if len(data) < 4:
        raise UserError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise UserError(f"{name}: magic number {magic:#010x}, expected {expected_magic:#010x}; not the right IDX file")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise UserError(f"{name}: header cut short ({len(data)} bytes, {header_size} needed)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected_size = header_size + math.prod(shape)  # Python ints: a forged header cannot overflow
    if len(data) != expected_size:
        raise UserError(f"{name}: header says shape {shape} ({expected_size} bytes) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip bytes; a damaged stream is the user's file to replace, not a crash."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"{name}: not a readable gzip file ({error})") from None


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read and parse one IDX file, gzip-compressed (whatever its name) or not (as Kaggle ships MNIST)."""
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, str(path))
    return parse_idx(data, expected_magic, name=str(path))


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (for tests and hand-made datasets)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    # No name and mtime=0 in the gzip header: the same array gives the same bytes, and MD5, anywhere.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as file:
        file.write(header + array.tobytes())
