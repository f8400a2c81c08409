"""One writer per store: an exclusive lock on ``<store>/.lock`` held for a whole write, naming its holder.

The lock is ``flock`` on an open file, so the kernel drops it when the holder exits or is killed:
a lock file left behind by a dead writer is stale by construction and simply taken over (its
last holder is logged). The file records who holds the lock (pid, host, time) for the message a
second writer gets. The lock is re-entrant within a process: a whole-store write
(``write_store``, an extraction run) holds it across the feature-set writes and the commit that
take it again. Shared file systems need working ``flock`` (local disks, NFSv4, Lustre with
``flock``); the extraction cache is not covered, shards fill it without the lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import functools
import json
import logging
import os
import socket
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .errors import StoreError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
F = TypeVar("F", bound=Callable)
_held: dict[Path, int] = {}  # resolved store folder -> nesting depth, in this process


def _holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0).decode()
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    """``pid N on host H since T`` from a lock record."""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('since', '?')}"


@contextlib.contextmanager
def store_lock(root: str | Path) -> Iterator[None]:
    """Hold the store's write lock for the block; raise StoreError at once when another process holds it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    key = root.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{root} is locked by {describe(_holder(fd))}: another ebmc-import or ebmc-extract "
                             "is writing this store; wait for it to finish (or stop it) and run again, "
                             "or write to another --out") from None
        stale = _holder(fd)
        if stale:  # a clean release empties the file: this holder died while writing
            log.warning("%s: taking over the stale lock of %s (that writer ended without releasing it; "
                        "its unfinished files are cleaned up)", root, describe(stale))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def locked(write: F) -> F:
    """Run ``write(root, ...)`` holding ``root``'s store lock."""
    @functools.wraps(write)
    def wrapper(root, *args, **kwargs):
        with store_lock(root):
            return write(root, *args, **kwargs)
    return wrapper  # type: ignore[return-value]
