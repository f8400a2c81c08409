"""The restricted unpickler: plain data and numpy arrays load; anything else is refused, all names listed, nothing run."""
from __future__ import annotations

import collections
import datetime
import os
import pickle

import numpy as np
import pytest
from pickle_fixtures import write_pickle

from ebmc.extract.importers.unpickle import restricted_load
from ebmc.store import StoreError


class Payload:
    """Unpickling this would create a file: proves refused objects never run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_containers_numbers_strings_and_arrays_load(tmp_path, protocol):
    obj = {"a": [1, 2.5, "x", None, True, (3, b"b")], "s": {1, 2}, "f": frozenset({3}),
           "o": collections.OrderedDict(k=1), "c": 1 + 2j,
           "arr": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array(["a$_$1", "b$_$2"], dtype=object),
           "u": np.array(["x", "yy"]), "scalar": np.float64(2.5), "i": np.int64(7),
           "rec": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")])}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = restricted_load(path)
    assert back.keys() == obj.keys()
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(back[k], v)
            assert back[k].dtype == v.dtype
        else:
            assert back[k] == v


def test_code_and_unknown_classes_are_refused_all_at_once(tmp_path):
    marker = tmp_path / "pwned"
    obj = {"x": Payload(marker), "y": [Payload(marker), datetime.date(2020, 1, 1)], "ok": np.ones(2)}
    path = write_pickle(tmp_path / "evil.pkl", obj)
    with pytest.raises(StoreError) as err:
        restricted_load(path)
    assert not marker.exists()
    text = str(err.value)
    assert "posix.system: not a container" in text or "os.system: not a container" in text
    assert "datetime.date: not a container" in text
    assert len(err.value.problems) == 2
    assert "re-save it" in text and str(path) in text


def test_truncated_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(100)}, protocol=4)[:50])
    with pytest.raises(StoreError, match="cut.pkl: not a readable pickle"):
        restricted_load(path)
    with pytest.raises(StoreError, match="no such file"):
        restricted_load(tmp_path / "absent.pkl")
