"""Splitting work across machines: ``--shard i/N`` parsing and the contiguous block of shard i."""
from __future__ import annotations

import argparse


def parse_shard(text: str, flag: str = "--shard") -> tuple[int, int]:
    """``"i/N"`` -> (i, N), 0 <= i < N; an argparse type (errors name ``flag``)."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: write i/N, e.g. 0/4 (shards count from 0)") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: need 0 <= i < N (shards count from 0, e.g. 0/4 .. 3/4)")
    return i, n


def shard_rows(n: int, shard: tuple[int, int] | None) -> range:
    """Rows of shard ``(i, count)`` of ``n``, 0 <= i < count: a contiguous block (manifest rows of
    one long video mostly stay in one shard, so its bytes are hashed once)."""
    if shard is None:
        return range(n)
    i, count = shard
    return range(i * n // count, (i + 1) * n // count)
