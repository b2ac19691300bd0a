import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_ae.core.errors import UserError
from mnist_ae.data.idx import IMAGES_MAGIC, LABELS_MAGIC, gunzip, parse_idx, read_idx, write_idx_gz


def test_round_trip(tmp_path: Path) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28).astype(np.uint8)
    write_idx_gz(tmp_path / "images.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "images.gz", IMAGES_MAGIC), images)


def test_write_is_byte_stable(tmp_path: Path) -> None:
    labels = np.array([1, 2, 3], dtype=np.uint8)
    write_idx_gz(tmp_path / "a.gz", labels)
    write_idx_gz(tmp_path / "b.gz", labels)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def _labels_bytes(count_in_header: int, labels: bytes) -> bytes:
    return struct.pack(">II", LABELS_MAGIC, count_in_header) + labels


@pytest.mark.parametrize(
    ("data", "magic", "message"),
    [
        (b"\x00\x00", LABELS_MAGIC, "too short for an IDX header"),
        (_labels_bytes(3, b"\x01\x02\x03"), IMAGES_MAGIC, "magic number 0x00000801, expected 0x00000803"),
        (struct.pack(">I", IMAGES_MAGIC) + b"\x00\x00\x00\x01", IMAGES_MAGIC, "header cut short"),
        (_labels_bytes(4, b"\x01\x02\x03"), LABELS_MAGIC, "header says shape (4,) (12 bytes) but the file has 11"),
        (_labels_bytes(2, b"\x01\x02\x03"), LABELS_MAGIC, "header says shape (2,)"),
    ],
)
def test_malformed_bytes_are_rejected(data: bytes, magic: int, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_idx(data, magic)


def test_not_gzip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(_labels_bytes(3, b"\x01\x02\x03"))
    with pytest.raises(UserError, match="not a readable gzip file"):
        gunzip(path.read_bytes(), str(path))


def test_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(_labels_bytes(1000, bytes(1000)))[:-20])
    with pytest.raises(UserError, match="not a readable gzip file"):
        read_idx(path, LABELS_MAGIC)


# Mostly the right magic number followed by anything, so the fuzzing gets past the first check.
_IDX_LIKE = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda magic, rest: struct.pack(">I", magic) + rest,
              st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]), st.binary(max_size=64)),
)


@settings(max_examples=500, deadline=None)
@given(_IDX_LIKE, st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_fuzz_parser_only_raises_user_errors(data: bytes, magic: int) -> None:
    try:
        array = parse_idx(data, magic)
    except UserError:
        return
    # Whatever parses must be exactly what the header describes.
    assert array.ndim == magic & 0xFF
    assert len(data) == 4 + 4 * array.ndim + array.size


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 255), max_size=50), st.integers(0, 60))
def test_fuzz_label_counts(labels: list[int], claimed: int) -> None:
    data = _labels_bytes(claimed, bytes(labels))
    if claimed == len(labels):
        assert parse_idx(data, LABELS_MAGIC).tolist() == labels
    else:
        with pytest.raises(UserError, match="header says shape"):
            parse_idx(data, LABELS_MAGIC)


def test_a_forged_huge_header_is_rejected() -> None:
    # 2**31 * 2**31 * 4 overflows a 64-bit product to 0: the length check must still see the truth.
    data = struct.pack(">IIII", IMAGES_MAGIC, 2**31, 2**31, 4)
    with pytest.raises(UserError, match="header says shape"):
        parse_idx(data, IMAGES_MAGIC)
