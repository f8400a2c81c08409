"""Content fingerprints: a stable hash of exactly what determines a feature set's content."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable

import numpy as np

FINGERPRINT_CHARS = 16


def setting(default: Any, help: str, *, run_only: bool = False) -> Any:
    """A config dataclass field: ``help`` is the text of its ``--section.field`` flag (store/flags.py).

    A ``run_only`` field changes how a run goes (workers, device, paths), not what it computes:
    ``semantic_dict`` drops it, so it stays out of fingerprints.
    """
    return dataclasses.field(default=default, metadata={"help": help, "run_only": run_only})


def semantic_dict(config: Any) -> dict:
    """The fields of a (possibly nested) config dataclass that determine content, as plain data."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"semantic_dict needs a dataclass instance, got {type(config).__name__}")
    out = {}
    for f in dataclasses.fields(config):
        if f.metadata.get("run_only"):
            continue
        value = getattr(config, f.name)
        out[f.name] = semantic_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(semantic_dict(obj))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot fingerprint a value of type {type(obj).__name__}: {obj!r}")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content always gives equal text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


def fingerprint(obj: Any) -> str:
    """Hex digest (16 chars) of ``canonical_json(obj)``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:FINGERPRINT_CHARS]


def ids_digest(ids: Iterable[Any]) -> str:
    """SHA-256 of the ordered utterance ids: a feature set's rows belong to exactly this list."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\n")
    return h.hexdigest()


def update_from_file(h: hashlib._Hash, path: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Feed the bytes of the file at ``path`` into hash ``h``, read in chunks (files may be GBs)."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    update_from_file(h, path)
    return h.hexdigest()
