"""The synthetic importer: deterministic, benchmark-shaped, and fusion-worthy by construction."""
import numpy as np
import pytest

from ebmc.extract.importers.synthetic import SHAPES, make_synthetic
from ebmc.store import open_store


def mean_features(store, m):
    x, mask = store.features(m).padded()
    return (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)


def ridge_r2(X, y, tr, te, lam=30.0):
    X = np.c_[X, np.ones(len(X))]
    A = X[tr].T @ X[tr] + lam * np.eye(X.shape[1])
    w = np.linalg.solve(A, X[tr].T @ y[tr])
    pred = X[te] @ w
    return 1 - ((pred - y[te]) ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum()


def test_same_seed_same_store_other_seed_other_store(tmp_path):
    a = open_store(make_synthetic(tmp_path / "a", "mosi", seed=3, n_train=40))
    b = open_store(make_synthetic(tmp_path / "b", "mosi", seed=3, n_train=40))
    c = open_store(make_synthetic(tmp_path / "c", "mosi", seed=4, n_train=40))
    assert a.fingerprints() == b.fingerprints() != c.fingerprints()
    np.testing.assert_array_equal(a.labels(), b.labels())
    np.testing.assert_array_equal(a.features("audio").sequence(5), b.features("audio").sequence(5))
    assert not np.array_equal(a.labels(), c.labels())


@pytest.mark.parametrize("like", sorted(SHAPES))
def test_shapes_and_splits_follow_the_benchmark(tmp_path, like):
    s = open_store(make_synthetic(tmp_path, like, n_train=24))
    shape = SHAPES[like]
    assert s.task == shape.task
    assert {m: s.features(m).dim for m in s.modalities} == shape.dims
    for m in s.modalities:
        assert shape.min_len[m] <= s.features(m).lengths.min() <= s.features(m).max_length <= shape.max_len[m]
    sizes = [len(s.split_indices(x)) for x in ("train", "valid", "test")]
    assert sizes[0] == 24 and all(n >= 8 for n in sizes)
    if like == "iemocap":
        assert s.labels().shape[1] == 4 and (s.labels().sum(1) == 1).all()
    else:
        assert -3 <= s.labels().min() < 0 < s.labels().max() <= 3


def test_fusion_beats_every_single_modality(tmp_path):
    s = open_store(make_synthetic(tmp_path, "mosi", seed=0, n_train=1000))
    y = s.labels()
    tr, te = s.split_indices("train"), s.split_indices("test")
    feats = {m: mean_features(s, m) for m in s.modalities}
    single = {m: ridge_r2(f, y, tr, te) for m, f in feats.items()}
    fused = ridge_r2(np.concatenate(list(feats.values()), 1), y, tr, te)
    assert all(0.05 < r < fused - 0.1 for r in single.values()), (single, fused)
    assert fused > 0.5


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'sims'"):
        make_synthetic(tmp_path, "sims")
    with pytest.raises(ValueError, match="at least 8"):
        make_synthetic(tmp_path, "mosi", n_train=2)
