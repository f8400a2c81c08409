"""Atomic writes: a file or a directory appears complete under its final name, or not at all."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories; rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A unique sibling of ``path`` that readers ignore (leading '.tmp-')."""
    return path.with_name(f".tmp-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp sibling of ``path`` for a writer that needs a file name (e.g. a library's ``save(name)``).

    When the block exits normally the temp file is fsynced and renamed over ``path``; on an
    exception it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)  # fsync is per file, so any descriptor flushes the writer's data
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing so that it appears complete or not at all (see ``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with open_atomic(path) as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class _Hashing:
    """A write-only file that hashes what passes through it (numpy writes a non-file in chunks)."""

    def __init__(self, f: BinaryIO):
        self.f, self.sha256 = f, hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.f.write(data)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> str:
    """Write one array as ``.npy`` atomically (memory-mappable when read back); return the
    file's SHA-256, computed while writing."""
    with open_atomic(path) as f:
        out = _Hashing(f)
        np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.sha256.hexdigest()


def publish_dir(staging: Path, final: Path) -> bool:
    """Move a fully written ``staging`` folder to ``final`` in one rename.

    A ``final`` that already holds a committed folder (its ``manifest.json`` exists) wins: the
    name is a content fingerprint, so both hold the same data; the staging copy is discarded and
    False returned. A ``final`` without a manifest is debris of a killed run and is replaced.
    """
    if (final / "manifest.json").exists():
        shutil.rmtree(staging, ignore_errors=True)
        return False
    if final.exists():
        shutil.rmtree(final)
    os.rename(staging, final)
    _fsync_dir(final.parent)
    return True


_TEMP_PID = re.compile(r"-(\d+)-[0-9a-f]{8}$")  # temp_name's "-<pid>-<uuid>" suffix


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named ``temp`` (see ``temp_name``) still runs on this host."""
    m = _TEMP_PID.search(temp.name)
    if m is None:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temps(folder: Path) -> None:
    """Delete ``.tmp-*`` leftovers of dead writers in ``folder`` (not recursive).

    A temp whose writer still runs (this process included) is another transaction's file in
    progress and is left alone.
    """
    if not folder.is_dir():
        return
    for p in folder.glob(".tmp-*"):
        if _writer_alive(p):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
