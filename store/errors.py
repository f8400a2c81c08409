"""Errors of the feature store: one exception that carries every problem found, not just the first."""
from __future__ import annotations


class StoreError(Exception):
    """A store (or the input to one) is unusable; ``problems`` lists everything that is wrong.

    Each problem names where (file, split, key, row or sample) and how to fix it, so a user sees
    all of them at once instead of fixing one per run.
    """

    def __init__(self, what: str, problems: list[str] | None = None):
        self.what = what
        self.problems = list(problems or [])
        lines = [what] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def raise_if(problems: list[str], what: str) -> None:
    """Raise one StoreError listing ``problems`` when there are any."""
    if problems:
        raise StoreError(f"{what} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", problems)
