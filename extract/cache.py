"""Per-utterance extraction cache: content-addressed entries that survive ``kill -9`` and are shared by shards.

Layout under the dataset's store folder::

    .cache/<modality>/<producer fingerprint>/<input key>.npz          an extracted Result (ok or absent)
    .cache/<modality>/<producer fingerprint>/<input key>.failed.json  why extraction failed
    .cache/media-sha256-<tag>.json                                    memo: file stats -> content hash

The producer fingerprint hashes what the extractor computes (name, version, semantic config, tool
versions); the input key hashes what it reads (the bytes of its input files, the span, the
transcript). A failure caused by the input (ExtractionError) is as final as a result: it
comes back only when the input or the extractor changes. A failure of the run itself (a crashed
worker, an unexpected exception) is recorded with ``retry`` and extracted again by the next run.
Paths and mtimes enter neither; they only index the hash memo, which saves reading
unchanged files again. Every entry is written atomically, so an entry exists complete or not at all.
"""
from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from ebmc.store import atomic
from ebmc.store.fingerprint import file_sha256, fingerprint

from .types import ExtractionError, Result, Segment

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
_EXTRA = "extra."  # prefix of Result.extras inside an entry's npz


def cache_folder(store_root: Path, modality: str, producer: dict) -> Path:
    """``<store_root>/.cache/<modality>/<fingerprint(producer)>``."""
    return Path(store_root) / CACHE_DIR / modality / fingerprint(producer)


class MediaHasher:
    """SHA-256 of media files, remembered by (path, size, mtime) across runs like git's index.

    A rerun thus reads an unchanged file's stats, not its bytes. Each process saves its own memo
    file (``tag``), so shards on a shared file system never write the same file.
    """

    def __init__(self, store_root: Path, tag: str = "main"):
        self.folder = Path(store_root) / CACHE_DIR
        self.path = self.folder / f"media-sha256-{tag}.json"
        self.memo: dict[str, str] = {}
        for f in sorted(self.folder.glob("media-sha256-*.json")):
            try:
                self.memo.update(json.loads(f.read_text()))
            except (OSError, ValueError):
                log.warning("%s: unreadable hash memo, ignored (files are hashed again)", f)
        self.dirty = False

    def sha256(self, path: Path) -> str:
        """Content hash of ``path``; raises OSError (FileNotFoundError, ...) when it cannot be read."""
        st = os.stat(path)
        stamp = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
        digest = self.memo.get(stamp)
        if digest is None:
            digest = file_sha256(path)
            self.memo[stamp] = digest
            self.dirty = True
        return digest

    def save(self) -> None:
        if self.dirty:
            atomic.write_json(self.path, self.memo)
            self.dirty = False


def input_key(segment: Segment, files: list[Path], hasher: MediaHasher) -> str:
    """Hash of what determines one utterance's output besides the extractor: input bytes, span, transcript.

    Raises ExtractionError when an input file is missing or unreadable.
    """
    digests = []
    for f in files:
        try:
            digests.append(hasher.sha256(f))
        except FileNotFoundError:
            raise ExtractionError(f"{segment.where()}: file {f} not found; check the manifest path and the videos root") from None
        except OSError as e:
            raise ExtractionError(f"{segment.where()}: cannot read {f} ({e.strerror}); check its permissions") from None
    return fingerprint({"files": digests, "start": segment.start, "end": segment.end,
                        "transcript": segment.transcript})


def write_result(folder: Path, key: str, result: Result) -> None:
    """Store ``result`` as ``<key>.npz`` atomically and drop a failure record of an earlier run."""
    arrays = {"values": result.values, "timestamps": result.timestamps, "status": np.array(result.status)}
    if result.frame_mask is not None:
        arrays["frame_mask"] = result.frame_mask
    arrays.update({_EXTRA + name: np.asarray(a) for name, a in result.extras.items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(folder / f"{key}.npz", buf.getvalue())
    (folder / f"{key}.failed.json").unlink(missing_ok=True)


def write_failure(folder: Path, key: str, reason: str, retry: bool = False) -> None:
    """Record that ``key`` failed (``<key>.failed.json``), so a later commit can report why;
    ``retry`` asks the next run to extract it again (the cause was the run, not the input)."""
    atomic.write_json(folder / f"{key}.failed.json", {"reason": reason, "retry": retry})


def _set_aside(path: Path, error: Exception) -> None:
    """Move an unreadable entry out of the way (``<name>.damaged``), so its key counts as missing and is
    extracted again; the file is kept for inspection and the warning is logged once, here."""
    log.warning("%s: unreadable cache entry (%s: %s); moved aside to %s.damaged and extracted again",
                path, type(error).__name__, error, path.name)
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except FileNotFoundError:  # another shard set it aside first
        pass


def _read_result(path: Path) -> Result:
    with np.load(path, allow_pickle=False) as z:
        extras = {name[len(_EXTRA):]: z[name] for name in z.files if name.startswith(_EXTRA)}
        return Result(values=z["values"], timestamps=z["timestamps"],
                      frame_mask=z["frame_mask"] if "frame_mask" in z.files else None,
                      extras=extras, status=str(z["status"]))


def _read_failure(path: Path) -> dict:
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
        raise ValueError("not a failure record")
    return record


def read_entry(folder: Path, key: str, *, retry_run_failures: bool = False) -> Result | ExtractionError | None:
    """The cached Result, the recorded ExtractionError, or None when ``key`` is to be extracted.

    None means never extracted, unreadable (set aside, see ``_set_aside``) or, with
    ``retry_run_failures``, a failure of the run itself (``retry``), which extraction repeats.
    """
    path = folder / f"{key}.npz"
    if path.exists():
        try:
            return _read_result(path)
        except Exception as e:  # noqa: BLE001 - any unreadable entry (BadZipFile, truncated array, ...) is missing
            _set_aside(path, e)
    failed = folder / f"{key}.failed.json"
    if failed.exists():
        try:
            record = _read_failure(failed)
        except (OSError, ValueError) as e:
            _set_aside(failed, e)
            return None
        if retry_run_failures and record.get("retry", True):
            return None
        return ExtractionError(record["reason"])
    return None


def remove_stale_temps(store_root: Path, modality: str) -> None:
    """Delete ``.tmp-*`` leftovers of killed writers in every cache folder of ``modality``."""
    for folder in (Path(store_root) / CACHE_DIR / modality).glob("*"):
        atomic.remove_stale_temps(folder)
