"""Checks of a committed feature set's files on open: readable, sizes and structure always, checksums of content.

Every array file's SHA-256 is in the feature set's manifest (``arrays.<name>.sha256``). Opening
a store always checks each file's header, size, shape and dtype, the structure that indexes the
values (offsets, lengths, status codes) and the checksums of those small index files (and of the
utterance table, named by its hash, in ``reader.Store``); the full
hash of the large files (values, timestamps, ...) is checked with ``verify`` (``--verify``,
``ebmc-export``). Stores written before checksums existed open with a note (size and structure
checked only). Every problem names the file and says how to rebuild.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .errors import StoreError
from .fingerprint import file_sha256
from .schema import STATUSES

log = logging.getLogger(__name__)

REBUILD = ("rebuild the store: rerun the ebmc-import or ebmc-extract command that made it "
           "(extraction reuses its cache, so only the damaged part is redone)")
INDEX_ARRAYS = ("offsets", "lengths", "status")  # small, and they decide which rows are read: always hashed


def read_json(path: Path) -> dict:
    """A store's JSON file (store.json, manifest.json), or StoreError naming it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"{path}: unreadable ({type(e).__name__}: {e}); {REBUILD}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: not a JSON object; {REBUILD}")
    return data


def _load(f: Path, spec: dict, problems: list[str]) -> np.ndarray | None:
    if not f.exists():
        problems.append(f"{f}: listed in the manifest but missing; {REBUILD}")
        return None
    try:
        arr = np.load(f, mmap_mode="r", allow_pickle=False)  # reads the header; mmap fails on a short file
    except (OSError, ValueError, EOFError) as e:
        problems.append(f"{f}: not a complete .npy file ({e}); {REBUILD}")
        return None
    if list(arr.shape) != spec["shape"] or str(arr.dtype) != spec["dtype"]:
        problems.append(f"{f}: shape {arr.shape} {arr.dtype}, manifest says {tuple(spec['shape'])} {spec['dtype']}; "
                        f"the file was changed after commit; {REBUILD}")
        return None
    return arr


def _structure(folder: Path, manifest: dict, arrays: dict[str, np.ndarray], problems: list[str]) -> None:
    n, values = manifest["n"], arrays.get("values")
    if values is None:
        return
    status = arrays.get("status")
    if status is not None:
        bad = np.flatnonzero(np.asarray(status) >= len(STATUSES))
        if status.shape != (n,) or len(bad):
            problems.append(f"{folder / 'status.npy'}: unknown status codes in rows {bad[:10].tolist()} "
                            f"(or not {n} rows); {REBUILD}")
    if manifest["layout"] == "ragged":
        off = arrays.get("offsets")
        if off is not None:
            off = np.asarray(off)
            if off.shape != (n + 1,) or off[0] != 0 or (np.diff(off) < 0).any() or off[-1] != values.shape[0]:
                problems.append(f"{folder / 'offsets.npy'}: offsets must rise from 0 to the {values.shape[0]} stored "
                                f"rows, one per utterance plus one; {REBUILD}")
        for name, arr in arrays.items():
            if name not in ("values", *INDEX_ARRAYS) and arr.shape[0] != values.shape[0] and arr.size:
                problems.append(f"{folder / (name + '.npy')}: {arr.shape[0]} rows for {values.shape[0]} feature rows; {REBUILD}")
    else:
        lengths = arrays.get("lengths")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (n,) or (lengths < 0).any() or (lengths > values.shape[1]).any():
                problems.append(f"{folder / 'lengths.npy'}: lengths must lie in 0..{values.shape[1]}, one per utterance; {REBUILD}")
    if values.shape[-1] != manifest["dim"] and values.size:
        problems.append(f"{folder / 'values.npy'}: feature dimension {values.shape[-1]}, manifest says {manifest['dim']}; {REBUILD}")


def check_feature_set(folder: Path, manifest: dict, verify: bool = False) -> list[str]:
    """Every problem of a feature set's array files (see the module docstring); [] when sound."""
    problems: list[str] = []
    arrays = {}
    unhashed = []
    for name, spec in manifest["arrays"].items():
        f = folder / spec["file"]
        arr = _load(f, spec, problems)
        if arr is None:
            continue
        arrays[name] = arr
        if "sha256" not in spec:
            unhashed.append(name)
        elif (verify or name in INDEX_ARRAYS) and file_sha256(f) != spec["sha256"]:
            problems.append(f"{f}: content differs from its checksum in {folder / 'manifest.json'} (damaged or "
                            f"edited after commit); {REBUILD}")
    if unhashed:
        log.info("%s: written without checksums (an earlier ebmc); only sizes and structure are checked. "
                 "Re-import or re-extract to add them", folder)
        if verify:
            log.warning("%s: --verify cannot check the content of %s: no checksums recorded", folder, ", ".join(unhashed))
    _structure(folder, manifest, arrays, problems)
    return problems
