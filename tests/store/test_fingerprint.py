"""Fingerprints hash every semantic setting and no run-only one."""
import dataclasses

import pytest

from ebmc.store.fingerprint import canonical_json, fingerprint, semantic_dict, setting


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "minilm"
    size: int = 3
    names: tuple = ("a", "b")
    inner: Inner = Inner()
    workers: int = setting(1, "worker processes", run_only=True)
    device: str = setting("cpu", "device", run_only=True)


CHANGES = {"model": "bert", "size": 4, "names": ("a",), "inner": Inner(0.25)}


def test_every_semantic_field_changes_the_fingerprint():
    base = fingerprint(Config())
    for f in dataclasses.fields(Config):
        if f.metadata.get("run_only"):
            changed = dataclasses.replace(Config(), **{f.name: f.default * 2})
            assert fingerprint(changed) == base, f.name
        else:
            assert fingerprint(dataclasses.replace(Config(), **{f.name: CHANGES[f.name]})) != base, f.name


def test_semantic_dict_drops_run_only_fields_and_nests():
    assert semantic_dict(Config()) == {"model": "minilm", "size": 3, "names": ("a", "b"), "inner": {"rate": 0.5}}


def test_canonical_json_is_order_independent_and_strict():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": (1, 2), "b": 1})
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint({"x": object()})
