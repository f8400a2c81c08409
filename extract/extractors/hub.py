"""Hugging Face hub model ids (``bert-base-uncased``, ``org/name@revision``) resolved in the local hub cache only.

An id resolves to a snapshot folder and its commit.
"""
from __future__ import annotations

import re
from pathlib import Path

from ebmc.store.errors import raise_if

# huggingface_hub's repo id rule: [org/]name of letters, digits, '-', '_', '.'; no '--' or '..'.
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
# A cached snapshot: <cache>/models--<org>--<name>/snapshots/<commit sha>
_SNAPSHOT = re.compile(r"^models--(?P<repo>.+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_hub_id(model: str) -> bool:
    """Whether ``model`` reads as a hub model id with an optional ``@revision``."""
    repo, _, _ = model.partition("@")
    return bool(_REPO_ID.match(repo)) and "--" not in repo and ".." not in repo


def resolve_hub_model(model: str) -> Path:
    """The snapshot folder of hub model ``model`` ('name', 'org/name', either with '@revision') in the cache.

    Only the local cache (HF_HUB_CACHE, default ~/.cache/huggingface/hub) is read, never the
    network: a model that is not there raises StoreError saying how to download it.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    repo, _, revision = model.partition("@")
    try:
        folder = Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
    except LocalEntryNotFoundError:
        folder = None
    if folder is None or not (folder / "config.json").is_file():
        raise_if([f"--text.model={model!r}: no such local folder, and hub model {repo!r} at revision "
                  f"{revision or 'main'!r} is not in the local Hugging Face cache (nothing is downloaded at run "
                  f"time). Download it once on a machine with network: `hf download {repo}"
                  f"{f' --revision {revision}' if revision else ''}` (set HF_HUB_CACHE to share the cache), "
                  f"or save the model with save_pretrained and pass its folder"], "text model not found")
    return folder


def snapshot_revision(folder: Path) -> str | None:
    """'org/name@<commit>' when ``folder`` is a hub cache snapshot (the commit fixes every file), else None."""
    folder = Path(folder)
    match = _SNAPSHOT.match(folder.parent.parent.name)
    if folder.parent.name != "snapshots" or not match or not _COMMIT.match(folder.name):
        return None
    return f"{match['repo'].replace('--', '/')}@{folder.name}"
