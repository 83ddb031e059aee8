"""Opening the state file: each failure says what it is, and only real damage says to move it aside.

Moving the file aside throws away cooldowns, budgets and the circuit breaker, so that advice is for
a corrupt file only. A full volume or a read-only one leaves a healthy file that must be kept. The
errors SQLite gives there are simulated with the messages and codes it gives on a 1 MiB tmpfs and on
a read-only bind mount (checked by hand on both).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiops.cli import main
from aiops.state import StateError, StateFullError, Store
from aiops.state.audit import AuditLog

REAL_CONNECT = sqlite3.connect
MIB = 2**20


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def _connect_failing(exc: sqlite3.Error) -> Callable[..., sqlite3.Connection]:
    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        raise exc

    return connect


class _Usage:
    def __init__(self, free: int) -> None:
        self.total, self.used, self.free = 64 * MIB, 64 * MIB - free, free


def _statvfs(read_only: bool) -> Callable[[Any], Any]:
    real = os.statvfs

    def statvfs(path: Any) -> Any:
        result = real(path)

        class Flags:
            f_flag = result.f_flag | os.ST_RDONLY if read_only else result.f_flag & ~os.ST_RDONLY

        return Flags()

    return statvfs


def _healthy(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    store = Store(path)
    AuditLog(store)  # a daemon's state file has its tables
    store.put("cooldown:node/gpu-1", {"until": 123})
    store.close()
    return path


@pytest.mark.parametrize(
    ("message", "code", "free"),
    [("database or disk is full", sqlite3.SQLITE_FULL, 10 * MIB),
     # Growing the -shm on a full tmpfs fails as an I/O error, not as SQLITE_FULL.
     ("disk I/O error", 4874, 0)],  # SQLITE_IOERR_SHMSIZE
)
def test_a_full_volume_is_a_temporary_error_that_says_to_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, code: int, free: int
) -> None:
    path = _healthy(tmp_path)
    monkeypatch.setattr("aiops.state.sqlite3.connect", _connect_failing(_sqlite_error(message, code)))
    monkeypatch.setattr("aiops.state.shutil.disk_usage", lambda _: _Usage(free))
    with pytest.raises(StateFullError) as caught:
        Store(path)
    text = str(caught.value)
    assert caught.value.temporary and "full" in text and "free space" in text.lower() and str(path) in text
    assert "move it aside" not in text and "intact" in text


def test_an_io_error_with_space_left_is_not_called_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _healthy(tmp_path)
    monkeypatch.setattr("aiops.state.sqlite3.connect", _connect_failing(_sqlite_error("disk I/O error", 10)))
    monkeypatch.setattr("aiops.state.shutil.disk_usage", lambda _: _Usage(10 * MIB))
    with pytest.raises(StateError) as caught:
        Store(path)
    text = str(caught.value)
    assert not isinstance(caught.value, StateFullError)
    assert "I/O error" in text and "volume" in text and "move it aside" not in text


@pytest.mark.parametrize(
    ("message", "code"),
    [("unable to open database file", sqlite3.SQLITE_CANTOPEN),
     ("attempt to write a readonly database", sqlite3.SQLITE_READONLY)],
)
@pytest.mark.parametrize("read_only", [True, False])
def test_a_read_only_volume_or_permissions_are_named_and_the_file_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, code: int, read_only: bool
) -> None:
    path = _healthy(tmp_path)
    monkeypatch.setattr("aiops.state.sqlite3.connect", _connect_failing(_sqlite_error(message, code)))
    monkeypatch.setattr("aiops.state.os.statvfs", _statvfs(read_only))
    with pytest.raises(StateError) as caught:
        Store(path)
    text = str(caught.value)
    assert not caught.value.temporary and "move it aside" not in text and "intact" in text
    assert ("read-only volume" in text) is read_only
    assert ("permissions" in text) is not read_only


@pytest.mark.parametrize(
    "content", [b"SQLite format 3\x00" + b"\x13\x37" * 4000, b"not a database at all" * 400], ids=["damaged", "notadb"]
)
def test_only_a_corrupt_file_is_to_be_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(content)
    with pytest.raises(StateError) as caught:
        Store(path)
    assert "move it aside" in str(caught.value).lower() and "intact" not in str(caught.value)
    assert path.read_bytes() == content


def test_history_reads_a_state_file_on_a_read_only_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _healthy(tmp_path)
    # On a read-only mount SQLite cannot create the -shm of a WAL file: only immutable opens work.
    # Opening is lazy there: the connection is made, its first statement fails with SQLITE_CANTOPEN.
    unopenable = f"file:{tmp_path}/no-such-folder/state.sqlite?mode=ro"

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        return REAL_CONNECT(database if "immutable=1" in str(database) else unopenable, *args, **kwargs)

    monkeypatch.setattr("aiops.state.sqlite3.connect", connect)
    assert main(["history", "--state", str(path)]) == 0, capsys.readouterr().err
    assert "No matching events." in capsys.readouterr().out
    assert Store(path, read_only=True).get("cooldown:node/gpu-1") == {"until": 123}


def test_a_folder_that_cannot_be_created_is_a_state_error_naming_the_path_and_the_cause(tmp_path: Path) -> None:
    in_the_way = tmp_path / "state"
    in_the_way.write_text("")  # a file where the folder should be
    path = in_the_way / "sub" / "state.sqlite"
    with pytest.raises(StateError) as caught:
        Store(path)
    assert str(path) in str(caught.value) and "Not a directory" in str(caught.value)


def test_a_folder_on_a_read_only_volume_names_the_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr("aiops.state.os.statvfs", _statvfs(True))
    path = tmp_path / "sub" / "state.sqlite"
    with pytest.raises(StateError) as caught:
        Store(path)
    text = str(caught.value)
    assert str(path) in text and "Read-only file system" in text and "read-only volume" in text
