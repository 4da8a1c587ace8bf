import numpy as np

from genssl.data.splits import make_splits


def _labels(counts):
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def test_seeded_splits_are_disjoint_cover_everything_and_are_stratified():
    labels = _labels([100, 50, 10])
    splits, policy = make_splits(labels, None, val_fraction=0.1, test_fraction=0.2, seed=0, dataset="d")
    assert policy == {"train": "seeded", "val": "seeded", "test": "seeded"}
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(labels.size))
    # test: floor(0.2 n_c + 0.5) per class; val: floor(0.1 m_c + 0.5) of what is left.
    assert [int((labels[test] == c).sum()) for c in range(3)] == [20, 10, 2]
    assert [int((labels[val] == c).sum()) for c in range(3)] == [8, 4, 1]
    for s in (train, val, test):
        assert np.all(np.diff(s) > 0)


def test_splits_depend_only_on_seed_and_dataset_name():
    labels = _labels([30, 30])
    a, _ = make_splits(labels, None, 0.1, 0.2, seed=0, dataset="d")
    b, _ = make_splits(labels, None, 0.1, 0.2, seed=0, dataset="d")
    c, _ = make_splits(labels, None, 0.1, 0.2, seed=1, dataset="d")
    d, _ = make_splits(labels, None, 0.1, 0.2, seed=0, dataset="e")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"]) and not np.array_equal(a["test"], d["test"])


def test_official_splits_are_kept_and_val_is_carved_from_train():
    labels = _labels([40, 40])
    official = {"train": np.arange(0, 60), "test": np.arange(60, 80)}
    splits, policy = make_splits(labels, official, val_fraction=0.25, test_fraction=0.2, seed=0, dataset="d")
    assert policy == {"train": "official", "val": "seeded", "test": "official"}
    assert np.array_equal(splits["test"], np.arange(60, 80))
    assert np.isin(splits["val"], np.arange(60)).all()
    assert np.array_equal(np.sort(np.concatenate([splits["train"], splits["val"]])), np.arange(60))


def test_a_class_keeps_a_training_image():
    splits, _ = make_splits(_labels([1, 2]), None, val_fraction=0.5, test_fraction=0.5, seed=0, dataset="d")
    assert set(_labels([1, 2])[splits["train"]]) == {0, 1}
