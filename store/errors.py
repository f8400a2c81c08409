"""The error family of ebmc: one base that carries every problem found, a subclass per kind, one helper that raises.

CLIs catch ``EbmcError`` alone (bad input: a message, exit 2); any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


def format_problems(what: str, problems: list[str]) -> str:
    """``what`` and one ``  - problem`` line per problem: the one layout of every problem list."""
    return "\n".join([what] + [f"  - {p}" for p in problems])


class EbmcError(Exception):
    """Bad input (a store, a setting, a file, a missing tool); ``problems`` lists everything that is wrong.

    Each problem names where (file, split, key, row or sample) and how to fix it, so a user sees
    all of them at once instead of fixing one per run.
    """

    def __init__(self, what: str, problems: list[str] | None = None):
        self.what = what
        self.problems = list(problems or [])
        super().__init__(format_problems(what, self.problems))


class StoreError(EbmcError):
    """A store (or the input to one, or result files read back) is unusable."""


class ConfigError(EbmcError, ValueError):
    """A setting, or a combination of settings, is invalid (a ValueError, as for any bad argument)."""


def raise_if(problems: list[str], what: str, error: type[EbmcError] = StoreError) -> None:
    """Raise one ``error`` listing ``problems`` when there are any."""
    if problems:
        raise error(f"{what} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", problems)
