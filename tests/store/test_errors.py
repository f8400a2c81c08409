"""The error family: every problem carried at once, in the family member that fits."""
from __future__ import annotations

import pytest

from ebmc.store.errors import ConfigError, EbmcError, StoreError, raise_if


def test_raise_if_lists_every_problem_in_the_chosen_family_member():
    raise_if([], "nothing wrong")  # no problems: no error
    with pytest.raises(ConfigError) as err:
        raise_if(["--a = 1: must be > 1", "--b: unknown"], "invalid Config", ConfigError)
    assert isinstance(err.value, ValueError) and isinstance(err.value, EbmcError)
    assert err.value.problems == ["--a = 1: must be > 1", "--b: unknown"]
    assert str(err.value) == "invalid Config (2 problems):\n  - --a = 1: must be > 1\n  - --b: unknown"
    with pytest.raises(StoreError):
        raise_if(["x"], "bad store")
