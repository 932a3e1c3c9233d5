"""One writer per output folder: a stage holds a lock on the folder it writes for as long as it writes.

The lock is the operating system's on a file beside the folder, `.<folder>.lock`, which also names
its holder (PID, host, command, start) for the message a second process gets. It is a POSIX record
lock (lockf), which belongs to the process: the workers a stage forks do not inherit it (they would
an flock, and hold it past a kill of their parent), and the kernel releases it with its holder, so a
holder killed with -9 or a machine that rebooted blocks no one: the next process takes the lock over,
and says so (the file still names the holder that died). A holder that finishes removes the file.
Written here rather than with filelock: the holder's name must live in the lock file itself, which
filelock truncates when it opens it.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import PainterError

WAIT_ENV = "PAINTER_WAIT"  # the environment's --wait
POLL_S = 0.5
_wait_by_default = False  # what `holding` does without `wait`: --wait sets it for one command


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.lock")


def _try_lock(path: Path) -> int | None:
    """An open descriptor of `path` holding its lock, or None while another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)  # its holder removed the file between our open and our lock: lock the new one


def _read_holder(fd: int) -> dict | None:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"null")
    except ValueError:  # half-written by a holder killed while writing it
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict | None) -> str:
    if holder is None:
        return "another process"
    where = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return f"PID {holder.get('pid')}{where} (`{holder.get('command')}`, since {holder.get('started')})"


@contextmanager
def waiting(wait: bool) -> Iterator[None]:
    """Within the block, a stage whose folder another process writes waits for it (True) or stops."""
    global _wait_by_default
    before, _wait_by_default = _wait_by_default, wait
    try:
        yield
    finally:
        _wait_by_default = before


def _holder_of(path: Path) -> dict | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


@contextmanager
def holding(folder: Path, what: str, *, wait: bool | None = None,
            log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold `folder`'s lock while the block writes it. Held by another process: stop at once with a
    message naming the holder, or with `wait` (default: see `waiting`) wait for it."""
    folder = Path(folder)
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = _wait_by_default if wait is None else wait
    fd = _try_lock(path)
    if fd is None:
        holder = describe(_holder_of(path))
        if not wait:
            raise PainterError(f"{what}: {folder} is being written by {holder}; wait for it to finish (or run "
                               "again with --wait), or stop that process")
        log(f"{what}: waiting for {holder}, which is writing {folder}")
        while (fd := _try_lock(path)) is None:
            time.sleep(POLL_S)
    try:
        gone = _read_holder(fd)
        if gone is not None:
            log(f"{what}: took over the lock on {folder} from {describe(gone)}, which stopped without releasing it")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["painter", *sys.argv[1:]]),
              "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: a waiting process then locks a new file
        os.close(fd)
