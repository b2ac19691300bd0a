import functools
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from helpers import write_dataset
from mnist_ae.core.dataset import IDX_FILES
from mnist_ae.core.errors import UserError
from mnist_ae.data import download
from mnist_ae.data.download import ensure_raw_files, md5_of
from mnist_ae.data.sources import MIRROR_ENV, Source, get_source


def test_torchvision_is_the_authority_for_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    source = get_source("MNIST")
    assert source.md5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert sorted(source.md5) == sorted(IDX_FILES)
    assert source.mirrors[0].startswith("https://")


def test_env_mirror_is_tried_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    assert get_source("MNIST").mirrors[0] == tmp_path.resolve().as_uri() + "/"


def test_files_in_place_are_verified_and_kept(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    source = Source("custom", md5, mirrors=())
    root = tmp_path / "raw"
    source.raw_folder(root).mkdir(parents=True)
    for name in IDX_FILES:
        (source.raw_folder(root) / name).write_bytes((folder / name).read_bytes())
    paths = ensure_raw_files(source, root)
    assert {name: md5_of(path) for name, path in paths.items()} == md5


def _layout(folder: Path, md5: dict[str, str], tmp_path: Path) -> tuple[Source, Path]:
    """A source whose raw folder is empty and whose only mirror is ``folder``."""
    return Source("custom", md5, mirrors=(folder.as_uri() + "/",)), tmp_path / "raw"


def test_missing_files_come_from_the_mirror(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    source, root = _layout(folder, md5, tmp_path)
    paths = ensure_raw_files(source, root)
    assert all(path.parent == root / "custom" / "raw" for path in paths.values())
    assert {name: md5_of(path) for name, path in paths.items()} == md5
    assert not list((root / "custom" / "raw").glob(".*"))  # no temporary file left


def _flip_a_byte(data: bytes) -> bytes:
    return data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]


@pytest.mark.parametrize("damage", [_flip_a_byte, lambda data: data[:-1], lambda data: b"not gzip"])
def test_corrupt_existing_file_names_file_checksums_and_fix(small_dataset, tmp_path: Path, damage) -> None:
    folder, md5 = small_dataset
    source, root = _layout(folder, md5, tmp_path)
    ensure_raw_files(source, root)
    bad = root / "custom" / "raw" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, root)
    message = str(error.value)
    assert str(bad) in message and md5["train-labels-idx1-ubyte.gz"] in message and md5_of(bad) in message
    assert "Delete it and run again" in message


def test_bad_mirrors_are_skipped_and_wrong_downloads_never_kept(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    for name in IDX_FILES:
        (garbage / name).write_bytes(b"<html>not found</html>")
    mirrors = ((tmp_path / "absent").as_uri() + "/", garbage.as_uri() + "/", folder.as_uri() + "/")
    root = tmp_path / "raw"
    paths = ensure_raw_files(Source("custom", md5, mirrors), root)
    assert {name: md5_of(path) for name, path in paths.items()} == md5


def test_files_of_another_dataset_are_refused(small_dataset, tmp_path: Path) -> None:
    _, md5 = small_dataset
    source = Source("custom", md5, mirrors=())
    other = write_dataset(source.raw_folder(tmp_path / "raw"), n_train=300, n_test=100)  # same names, other data
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(UserError, match=f"has MD5 {other[name]}, expected {md5[name]}"):
        ensure_raw_files(source, tmp_path / "raw")


def test_no_mirror_has_the_file(small_dataset, tmp_path: Path) -> None:
    _, md5 = small_dataset
    source = Source("custom", md5, mirrors=((tmp_path / "absent").as_uri() + "/",))
    root = tmp_path / "raw"
    with pytest.raises(UserError) as error:
        ensure_raw_files(source, root)
    message = str(error.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert "put the four files" in message and str(root / "custom" / "raw") in message
    assert not any((root / "custom" / "raw").iterdir())  # nothing partial left behind


# --- Mirrors over HTTP, served on the loopback interface by the test itself. ---


class _GarbageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls for a GET
        body = b"<html>this mirror answers every request with this page</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _http_server(handler) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _raw_server(reply: bytes | Callable[[socket.socket], None] | None) -> Iterator[str]:
    """A TCP server on loopback that answers each connection with ``reply`` and hangs up (or lets
    ``reply(connection)`` answer), or, with ``None``, accepts and never answers (a mirror that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.recv(4096)
            with suppress(OSError):  # the client hung up: it gave up on this mirror
                reply(connection) if callable(reply) else connection.sendall(reply)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    if reply is not None:
        threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        listener.close()


def test_a_hanging_and_a_garbage_mirror_are_skipped(small_dataset, tmp_path: Path, monkeypatch) -> None:
    folder, md5 = small_dataset
    monkeypatch.setattr(download, "TIMEOUT_SECONDS", 0.5)
    not_http = b"\x00\x01 this is no HTTP\r\n\r\n"
    with _raw_server(None) as hanging, _raw_server(not_http) as babbling, _http_server(_GarbageHandler) as garbage, \
            _http_server(functools.partial(_QuietFileHandler, directory=str(folder))) as good:
        paths = ensure_raw_files(Source("custom", md5, (hanging, babbling, garbage, good)), tmp_path / "raw")
    assert {name: md5_of(path) for name, path in paths.items()} == md5


def test_only_bad_mirrors_give_a_clear_error(small_dataset, tmp_path: Path, monkeypatch) -> None:
    _, md5 = small_dataset
    monkeypatch.setattr(download, "TIMEOUT_SECONDS", 0.5)
    root = tmp_path / "raw"
    with _raw_server(None) as hanging, _http_server(_GarbageHandler) as garbage:
        with pytest.raises(UserError) as error:
            ensure_raw_files(Source("custom", md5, (hanging, garbage)), root)
    message = str(error.value)
    assert "timed out" in message and "MD5 " in message and "put the four files" in message
    assert not any((root / "custom" / "raw").iterdir())


# --- Mirrors that keep sending: a trickle that would take forever, a body that never ends. ---


# Both give up after GIVE_UP seconds, so that a client without bounds fails the test instead of hanging it.
GIVE_UP = 10.0


def _trickle(connection: socket.socket) -> None:
    """Announces a small file, then sends it one byte every 50 ms: never silent, never done."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500000\r\n\r\n")
    end = time.monotonic() + GIVE_UP
    while time.monotonic() < end:
        connection.sendall(b"x")
        time.sleep(0.05)


def _endless(connection: socket.socket) -> None:
    """A body without a length, sent as fast as the client takes it, forever (or GIVE_UP seconds)."""
    connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    block = bytes(1 << 16)
    end = time.monotonic() + GIVE_UP
    while time.monotonic() < end:
        connection.sendall(block)


def _huge(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")


@pytest.fixture
def tight_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "MAX_SECONDS", 0.5)
    monkeypatch.setattr(download, "MAX_BYTES", 2_000_000)  # above the small dataset's files


def test_endless_and_trickling_mirrors_are_abandoned(small_dataset, tmp_path: Path, tight_bounds) -> None:
    folder, md5 = small_dataset
    started = time.monotonic()
    with _raw_server(_trickle) as trickle, _raw_server(_endless) as endless, _raw_server(_huge) as huge, \
            _http_server(functools.partial(_QuietFileHandler, directory=str(folder))) as good:
        paths = ensure_raw_files(Source("custom", md5, (trickle, endless, huge, good)), tmp_path / "raw")
    assert {name: md5_of(path) for name, path in paths.items()} == md5
    assert time.monotonic() - started < GIVE_UP  # four files, each abandoned by the trickle after 0.5 s


def test_a_bound_names_the_mirror_it_abandoned(small_dataset, tmp_path: Path, tight_bounds) -> None:
    _, md5 = small_dataset
    root = tmp_path / "raw"
    with _raw_server(_trickle) as trickle, _raw_server(_endless) as endless, _raw_server(_huge) as huge:
        with pytest.raises(UserError) as error:
            ensure_raw_files(Source("custom", md5, (trickle, endless, huge)), root)
    message = str(error.value)
    assert f"{trickle}train-images-idx3-ubyte.gz: abandoned after 0.5 s" in message
    assert f"{endless}train-images-idx3-ubyte.gz: abandoned after 2000000 bytes" in message
    assert f"{huge}train-images-idx3-ubyte.gz: it announces 10000000000 bytes, more than the 2000000" in message
    assert not any((root / "custom" / "raw").iterdir())  # nothing partial left behind


# --- A custom dataset: the user's own files, in their own folder, with no mirror of their own. ---


def test_custom_files_live_in_their_own_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    source = get_source("custom", {name: "0" * 32 for name in IDX_FILES})
    assert source.raw_folder(Path("data/raw")) == Path("data/custom") and source.mirrors == ()


def test_a_missing_custom_file_is_not_a_download_problem(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    (folder / IDX_FILES[2]).unlink()
    with pytest.raises(UserError) as error:
        ensure_raw_files(Source("custom", md5, (), user_folder=folder), tmp_path / "raw")
    message = str(error.value)
    assert message.startswith(f"{folder / IDX_FILES[2]} not found: data.dataset is 'custom', so put your four files")
    assert "download" not in message and "network" not in message


def test_a_wrong_custom_file_points_at_data_md5(small_dataset, tmp_path: Path) -> None:
    folder, md5 = small_dataset
    wrong = folder / IDX_FILES[1]
    wrong.write_bytes((folder / IDX_FILES[3]).read_bytes())
    with pytest.raises(UserError) as error:
        ensure_raw_files(Source("custom", md5, (), user_folder=folder), tmp_path / "raw")
    message = str(error.value)
    assert f"{wrong} has MD5 {md5_of(wrong)}, but data.md5 in params.yaml gives {md5[IDX_FILES[1]]}" in message
    assert "download" not in message and "Delete it" not in message
