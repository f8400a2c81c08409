"""Speaker-independent train/valid/test split: whole speakers go to valid and test, never one speaker in two splits."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ebmc.store import StoreError


@dataclasses.dataclass(frozen=True)
class SpeakerSplitConfig:
    """How many speakers go to valid and test, and the seed that picks them."""

    valid: int = 1  # number of speakers held out for validation
    test: int = 1  # number of speakers held out for testing
    seed: int = 0  # seed of the speaker draw; same seed and speakers -> same split


def speaker_split(speakers: Sequence[str], config: SpeakerSplitConfig, where: str = "manifest",
                  rows: Sequence[int] | None = None) -> np.ndarray:
    """Split names ``(N,)`` ("train"/"valid"/"test") such that every speaker lands in exactly one split.

    The distinct speakers are sorted, shuffled with ``config.seed``, then the first
    ``config.test`` go to test, the next ``config.valid`` to valid and the rest to train; the
    result depends only on the set of speakers and the config, not on row order.
    ``rows`` gives the row number each speaker came from (for messages; default 0..N-1) and
    ``where`` names the input. Raises StoreError listing every problem at once.
    """
    names = [("" if s is None else str(s)).strip() for s in speakers]
    rows = list(rows) if rows is not None else list(range(len(names)))
    problems: list[str] = []
    if config.valid < 1 or config.test < 1:
        problems.append(f"{where}: --valid {config.valid} and --test {config.test} speakers: "
                        "each must be at least 1")
    empty = [r for r, s in zip(rows, names) if not s]
    if empty:
        problems.append(f"{where}: {len(empty)} rows have no speaker, e.g. rows {empty[:10]}; "
                        "fill the 'speaker' column for every row to split by speaker")
    distinct = sorted({s for s in names if s})
    needed = config.valid + config.test + 1
    if len(distinct) < needed:
        problems.append(f"{where}: {len(distinct)} distinct speakers, but --valid {config.valid} and "
                        f"--test {config.test} need at least {needed} (one left for train); "
                        "hold out fewer speakers")
    if problems:
        raise StoreError("cannot build a speaker-independent split:", problems)
    order = np.random.default_rng(config.seed).permutation(len(distinct))
    shuffled = [distinct[i] for i in order]
    assignment = {s: "test" for s in shuffled[:config.test]}
    assignment.update({s: "valid" for s in shuffled[config.test:config.test + config.valid]})
    return np.array([assignment.get(s, "train") for s in names], dtype=object)
