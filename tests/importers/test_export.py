"""ebmc-export: store -> MMSA pickle round trip, store -> .csd -> store round trip through mmsdk."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from pickle_fixtures import mmsa_data, write_pickle

from ebmc.extract.exporters.cli import main as export_main
from ebmc.extract.importers.cli import main as import_main



def _assert_mmsa_equal(back: dict, original: dict) -> None:
    assert list(back) == list(original)
    for split, part in original.items():
        assert set(back[split]) == set(part), split
        for key, value in part.items():
            got = back[split][key]
            if isinstance(value, list):
                assert got == value and [type(v) for v in got] == [type(v) for v in value], (split, key)
                continue
            expected = np.where(np.isfinite(value), value, 0) if value.dtype.kind == "f" else value
            assert got.dtype == value.dtype, (split, key)
            np.testing.assert_array_equal(got, expected, err_msg=f"{split}/{key}")


@pytest.mark.parametrize("aligned,sims", [(False, False), (True, False), (False, True)])
def test_mmsa_round_trip_is_equal_up_to_replaced_nonfinite(tmp_path, aligned, sims):
    original = mmsa_data(seed=3, aligned=aligned, sims=sims)
    pkl = write_pickle(tmp_path / "in.pkl", original)
    assert import_main(["mmsa", str(pkl), "--out", str(tmp_path / "store")]) == 0
    assert export_main(["mmsa", str(tmp_path / "store"), "--out", str(tmp_path / "out.pkl")]) == 0
    with open(tmp_path / "out.pkl", "rb") as f:
        back = pickle.load(f)
    assert any(not np.isfinite(p["audio"]).all() for p in original.values())  # the fixture has -inf
    _assert_mmsa_equal(back, original)
