"""Reading and validating what to extract: our CSV/Parquet manifest, MMSA ``label.csv`` or a bare video folder.

Every format becomes one ``Manifest``: the store's utterance table (ids, split, labels, kept
columns, in manifest order) plus one ``Item`` per utterance that says where its media and
transcript are. The whole manifest is checked before any extraction and every problem is reported
at once (StoreError); problems of the media itself (missing, corrupt, too short) are left to
extraction, where they fail one utterance and not the run. ``manifests/README.md`` documents
the formats.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ebmc.store import StoreError
from ebmc.store.errors import raise_if
from ebmc.store.schema import ID_COLUMN, dataset_name_problems, validate_utterances

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
MMSA_COLUMNS = ("video_id", "clip_id", "label", "mode")
# Columns with a meaning (manifests/README.md); any other column is kept as is in the utterance table.
KNOWN_COLUMNS = (ID_COLUMN, "video", "start", "end", "transcript", "transcript_file", "split", "label")


@dataclasses.dataclass(frozen=True)
class Item:
    """One utterance's inputs: media file and span (seconds), transcript text or file."""

    utterance_id: str
    video: str  # as written in the manifest, relative to the videos root
    path: Path  # videos root / video
    start: float | None = None
    end: float | None = None
    transcript: str | None = None
    transcript_file: Path | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Manifest:
    """A validated manifest: utterance table for the store and the inputs of each row, same order."""

    dataset: str
    root: Path
    source: dict  # format and file, recorded in store.json
    task: str | None
    label_columns: tuple[str, ...]
    classes: tuple[str, ...] | None
    table: pd.DataFrame  # utterance_id, split, labels, kept columns; one row per item
    items: tuple[Item, ...]

    @property
    def has_transcripts(self) -> bool:
        return any(it.transcript is not None or it.transcript_file is not None for it in self.items)


def load_manifest(root: str | Path, manifest: str | Path | None = None, dataset: str | None = None) -> Manifest:
    """Read and validate the manifest of videos folder ``root``.

    ``manifest`` is a CSV/Parquet file in our format or an MMSA ``label.csv``; without it,
    ``root/label.csv`` is read as MMSA when present, else every video under ``root`` becomes an
    unlabelled utterance. Raises StoreError listing every problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: videos folder not found; give the folder that holds the videos (and Raw/ for MMSA)")
    dataset = dataset or root.resolve().name
    raise_if(dataset_name_problems(dataset, "--dataset"), "unusable dataset name")
    if manifest is None:
        if (root / "label.csv").is_file():
            log.info("%s: found label.csv, reading it as an MMSA label file", root)
            return _from_mmsa(root, root / "label.csv", dataset)
        return _from_folder(root, dataset)
    manifest = Path(manifest)
    if not manifest.is_file():
        raise StoreError(f"{manifest}: manifest file not found; give an existing .csv or .parquet file (see manifests/README.md)")
    if manifest.suffix.lower() == ".parquet":
        return _from_table(root, manifest, pd.read_parquet(manifest), dataset)
    if manifest.suffix.lower() != ".csv":
        raise StoreError(f"{manifest}: unknown manifest type {manifest.suffix!r}; use .csv or .parquet (see manifests/README.md)")
    table = _read_csv(manifest)
    if "utterance_id" not in table.columns and {"video_id", "clip_id"} <= set(table.columns):
        return _from_mmsa(root, manifest, dataset, table)
    return _from_table(root, manifest, table, dataset)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # every column as text first, so ids like "007" keep their zeros; labels are parsed later
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise StoreError(f"{path}: not a readable CSV file ({e}); save it as UTF-8 CSV with a header row") from e


def _blank(value) -> bool:
    """Empty cell: None, NaN/NA (Parquet) or only whitespace (CSV)."""
    return not value.strip() if isinstance(value, str) else value is None or bool(pd.isna(value))


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` when it stays inside ``root`` (lexically, symlinks allowed), else None."""
    if os.path.isabs(rel):
        return None
    joined = os.path.normpath(os.path.join(os.path.abspath(root), rel))
    base = os.path.abspath(root)
    return Path(joined) if joined == base or joined.startswith(base + os.sep) else None


def _look_alike_columns(columns, where: str) -> list[str]:
    """Unknown columns that look like a missing known one (``strat``, ``Start``): kept silently,
    they would change what is extracted (the whole file instead of the span), so each is an error."""
    problems = []
    for col in map(str, columns):
        if col in KNOWN_COLUMNS or col.startswith("label_"):
            continue
        absent = [k for k in KNOWN_COLUMNS if k not in columns]
        close = difflib.get_close_matches(col.strip().lower(), absent, n=1, cutoff=0.75)
        if close:
            problems.append(f"{where}: column {col!r} is not a manifest column but looks like {close[0]!r}; "
                            f"rename it to {close[0]!r} (or to something unlike it to keep it as an extra column)")
    return problems


def _span(row: pd.Series, i: int, uid: str, where: str, problems: list[str]) -> tuple[float | None, float | None]:
    out = []
    for col in ("start", "end"):
        raw = row.get(col)
        if _blank(raw):
            out.append(None)
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            problems.append(f"{where}: row {i} ({uid!r}): {col} {raw!r} is not a number of seconds")
            out.append(None)
            continue
        if not np.isfinite(value) or value < 0:
            problems.append(f"{where}: row {i} ({uid!r}): {col} {raw!r} must be a finite number of seconds >= 0")
        out.append(value)
    start, end = out
    if end is not None and end <= (start or 0.0):
        problems.append(f"{where}: row {i} ({uid!r}): end {end} <= start {start or 0.0}; give end > start, "
                        "or leave both empty for the whole file")
    return start, end


def _labels(table: pd.DataFrame) -> tuple[str | None, tuple[str, ...], tuple[str, ...] | None]:
    """Task, label columns and classes, inferred as manifests/README.md describes.

    ``label`` of numbers -> regression; ``label`` of names -> classification (classes sorted,
    the column becomes class indices); ``label_<name>`` columns alone -> multilabel; none -> unlabelled.
    Blank or mistyped labels stay NaN here and are reported by row in validation.
    """
    if "label" in table.columns:
        text = table["label"].astype(str).str.strip()
        given = text[text != ""]
        numeric = pd.to_numeric(given, errors="coerce")
        if len(given) == 0 or numeric.notna().mean() > 0.5:
            table["label"] = pd.to_numeric(text, errors="coerce")
            return "regression", ("label",), None
        classes = tuple(sorted(set(given)))
        table["label"] = text.map({c: k for k, c in enumerate(classes)})
        return "classification", ("label",), classes
    multi = tuple(c for c in table.columns if c.startswith("label_"))
    if multi:
        for c in multi:
            table[c] = pd.to_numeric(table[c], errors="coerce")
        return "multilabel", multi, None
    return None, (), None


def _numeric_columns(table: pd.DataFrame) -> None:
    """Spans and further label columns (e.g. MMSA label_T/A/V) become numbers; other columns stay text."""
    for col in table.columns:
        if col in ("start", "end") or col.startswith("label_"):
            text = table[col].astype(str).str.strip()
            table[col] = pd.to_numeric(text.where(text != "", np.nan), errors="coerce")


def _from_table(root: Path, path: Path, table: pd.DataFrame, dataset: str) -> Manifest:
    where = str(path)
    problems: list[str] = []
    table = table.reset_index(drop=True).copy()
    for col in (ID_COLUMN, "video"):
        if col not in table.columns:
            problems.append(f"{where}: missing column {col!r}; a manifest needs utterance_id and video (see manifests/README.md)")
    problems += _look_alike_columns(table.columns, where)
    raise_if(problems, f"invalid manifest {where}")
    if "transcript" in table.columns and "transcript_file" in table.columns:
        both = [i for i in range(len(table)) if not _blank(table.at[i, "transcript"]) and not _blank(table.at[i, "transcript_file"])]
        if both:
            problems.append(f"{where}: rows {both[:10]} give both transcript and transcript_file; give one per row")
    task, label_columns, classes = _labels(table)
    if "split" not in table.columns and task is None:
        table["split"] = "none"
    table[ID_COLUMN] = table[ID_COLUMN].astype(str).str.strip()
    items = []
    for i, row in table.iterrows():
        uid = row[ID_COLUMN]
        video = "" if _blank(row["video"]) else str(row["video"]).strip()
        media = _inside(root, video) if video else None
        if not video:
            problems.append(f"{where}: row {i} ({uid!r}): empty video path")
        elif media is None:
            problems.append(f"{where}: row {i} ({uid!r}): video {video!r} escapes the videos root {root}; give a path relative to it")
        start, end = _span(row, i, uid, where, problems)
        transcript = None if _blank(row.get("transcript")) else str(row["transcript"])
        tfile = None
        if not _blank(row.get("transcript_file")):
            tfile = _inside(root, str(row["transcript_file"]).strip())
            if tfile is None:
                problems.append(f"{where}: row {i} ({uid!r}): transcript_file {row['transcript_file']!r} escapes the videos root {root}")
        items.append(Item(uid, video, media or root / video, start, end, transcript, tfile))
    problems.extend(validate_utterances(table, task, list(label_columns), list(classes) if classes else None, where))
    raise_if(problems, f"invalid manifest {where}")
    _numeric_columns(table)
    return Manifest(dataset, root, {"format": "manifest", "file": path.name}, task, label_columns, classes,
                    table, tuple(items))


def _from_mmsa(root: Path, path: Path, dataset: str, table: pd.DataFrame | None = None) -> Manifest:
    where = str(path)
    table = _read_csv(path) if table is None else table
    missing = [c for c in MMSA_COLUMNS if c not in table.columns]
    raise_if([f"{where}: missing MMSA column {c!r} (label.csv has video_id, clip_id, text, label, label_T/A/V, annotation, mode)"
              for c in missing], f"invalid MMSA label file {where}")
    table = table.reset_index(drop=True).copy()
    table["video_id"] = table["video_id"].astype(str).str.strip()
    table["clip_id"] = table["clip_id"].astype(str).str.strip()
    # MMSA's own sample ids, so stores extracted here line up with imported MMSA features
    ours = pd.DataFrame({ID_COLUMN: table["video_id"] + "$_$" + table["clip_id"],
                         "video": "Raw/" + table["video_id"] + "/" + table["clip_id"] + ".mp4",
                         "split": table["mode"].astype(str).str.strip()})
    if "text" in table.columns:
        ours["transcript"] = table["text"]
    rest = table.drop(columns=["mode", "text"], errors="ignore")
    out = pd.concat([ours, rest], axis=1)
    manifest = _from_table(root, path, out, dataset)
    return dataclasses.replace(manifest, source={"format": "mmsa", "file": path.name})


def _from_folder(root: Path, dataset: str) -> Manifest:
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not videos:
        raise StoreError(f"{root}: no videos found ({', '.join(VIDEO_SUFFIXES)}) and no label.csv; "
                         "give the folder with the videos, or --manifest FILE (see manifests/README.md)")
    rel = [p.relative_to(root).as_posix() for p in videos]
    ids = [r.rsplit(".", 1)[0] for r in rel]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    raise_if([f"{root}: videos {[r for r, i in zip(rel, ids) if i == d]} share the id {d!r}; rename one" for d in dup],
             f"cannot use the folder {root} as a manifest")
    items = tuple(Item(i, r, p, transcript_file=p.with_suffix(".txt") if p.with_suffix(".txt").exists() else None)
                  for i, r, p in zip(ids, rel, videos))
    table = pd.DataFrame({ID_COLUMN: ids, "split": "none", "video": rel})
    log.info("%s: no manifest, %d videos found (%d with a .txt transcript); the store will be unlabelled",
             root, len(items), sum(it.transcript_file is not None for it in items))
    return Manifest(dataset, root, {"format": "folder"}, None, (), None, table, items)

