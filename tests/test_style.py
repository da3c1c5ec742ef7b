"""The numpy export of the drum-style random forest predicts exactly as scikit-learn,
round-trips through its .npz and refuses a stale file with a clear message."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from dnb import style as drum_style
from producer import generate as generation

CLASSES = ["funk", "jazz", "other", "rock", "soul", "pop"]


def random_grids(n: int, seed: int) -> np.ndarray:
    """Grids at several densities, so the trees see sparse and busy patterns."""
    rng = np.random.default_rng(seed)
    density = rng.choice([0.02, 0.06, 0.15, 0.35], size=(n, 1, 1))
    return (rng.random((n, 32, 14)) < density).astype(np.uint8)


def styles_of(grids: np.ndarray, seed: int) -> np.ndarray:
    """Labels that depend on the drums (kick count, backbeat, density) plus 15% noise;
    only indices 0, 1, 3, 5 occur, so ``classes_`` is not ``range(n)``."""
    rng = np.random.default_rng(seed)
    x = drum_style.drum_features(grids)
    kicks, backbeat, density = x[:, 448], grids[:, [4, 12, 20, 28], 1].sum(1), x[:, 462]
    y = np.where(kicks > 4, 0, np.where(backbeat >= 2, 3, np.where(density > 1.0, 5, 1)))
    noisy = rng.random(len(y)) < 0.15
    y[noisy] = rng.choice([0, 1, 3, 5], size=int(noisy.sum()))
    return y


@pytest.fixture(scope="module", params=["full_depth", "depth_4_balanced"])
def forest(request):
    grids = random_grids(1500, seed=1)
    extra = {"max_depth": None} if request.param == "full_depth" else {"max_depth": 4,
                                                                       "class_weight": "balanced_subsample"}
    model = RandomForestClassifier(n_estimators=9, random_state=0, n_jobs=1, **extra)
    model.fit(drum_style.drum_features(grids), styles_of(grids, seed=2))
    return model, drum_style.export_forest(model, CLASSES)


def test_numpy_forest_equals_sklearn_on_random_grids(forest):
    model, bundle = forest
    x = drum_style.drum_features(random_grids(4000, seed=3))
    pred = drum_style.forest_predict(bundle, x)
    np.testing.assert_array_equal(pred, model.predict(x))
    np.testing.assert_array_equal(drum_style.forest_proba(bundle, x), model.predict_proba(x))  # bit for bit
    assert set(np.unique(pred)) <= {0, 1, 3, 5} and len(np.unique(pred)) >= 3
    assert bundle["max_depth"] == max(e.tree_.max_depth for e in model.estimators_)


def test_float32_threshold_edge(forest):
    """Feature values at, just above and just below split thresholds (every root's and
    random nodes'), given as float64: sklearn casts them to float32 first, so must the export."""
    model, bundle = forest
    rng = np.random.default_rng(4)
    n, per_row = 3000, 30
    internal = np.flatnonzero(bundle["leaf_row"] < 0)
    nodes = np.concatenate([np.repeat(bundle["roots"][None], n, 0), rng.choice(internal, (n, per_row))], axis=1)
    thr, feature = bundle["threshold"][nodes], bundle["feature"][nodes]
    values = np.stack([thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf)])[rng.integers(0, 3, thr.shape),
                                                                                     *np.indices(thr.shape)]
    x = drum_style.drum_features(random_grids(n, seed=5)).astype(np.float64)
    rows = np.arange(n)[:, None]
    x[rows, feature] = values
    # the edge is real: some values lie above their threshold in float64 but not in float32
    kept = x[rows, feature] == values  # (a feature set twice in a row keeps its last value)
    assert (kept & (values > thr) & (values.astype(np.float32) <= thr)).sum() > 1000
    np.testing.assert_array_equal(drum_style.forest_predict(bundle, x), model.predict(x))
    np.testing.assert_array_equal(drum_style.forest_proba(bundle, x), model.predict_proba(x))


def test_chunks_and_duplicates_predict_like_sklearn(forest, monkeypatch):
    model, bundle = forest
    grids = random_grids(700, seed=6)
    grids = np.concatenate([grids, grids[::3]])  # repeated loops are predicted once
    monkeypatch.setattr(drum_style, "_CHUNK", 64)
    expected = model.predict(drum_style.drum_features(grids))
    np.testing.assert_array_equal(drum_style.predict_style_index(bundle, grids), expected)
    assert drum_style.predict_style(bundle, grids[:3]) == [CLASSES[i] for i in expected[:3]]
    assert drum_style.predict_style_index(bundle, grids[:0]).shape == (0,)


def test_npz_round_trip_and_stale_file(forest, tmp_path):
    model, bundle = forest
    path = tmp_path / "clf.npz"
    drum_style.save_classifier(bundle, path)
    loaded = drum_style.load_classifier(path)
    assert loaded["classes"] == CLASSES and loaded["feature_version"] == drum_style.FEATURE_VERSION
    for key in drum_style.FOREST_KEYS:
        np.testing.assert_array_equal(loaded[key], bundle[key])
    grids = random_grids(300, seed=7)
    assert drum_style.predict_style(loaded, grids) == drum_style.predict_style(bundle, grids)
    drum_style.save_classifier(loaded, tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()  # a DVC output: same forest, same bytes

    stale = tmp_path / "stale.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(stale, **(arrays | {"feature_version": np.array(drum_style.FEATURE_VERSION + 1)}))
    with pytest.raises(ValueError, match=r"feature_version 2, this code computes 1: rerun `dvc repro annotate`"):
        drum_style.load_classifier(stale)
    np.savez(stale, **{k: v for k, v in arrays.items() if k != "leaf_proba"})
    with pytest.raises(ValueError, match="lacks leaf_proba"):
        drum_style.load_classifier(stale)


def test_cli_style_indices_use_the_npz(forest, tmp_path):
    model, bundle = forest
    path = tmp_path / "clf.npz"
    drum_style.save_classifier(bundle, path)
    grids = random_grids(50, seed=8)
    names = ["Rock", "funk", "jazz"]  # the checkpoint's styles: matched case-insensitively, others -> 0
    styles = drum_style.predict_style(bundle, grids)
    assert {"rock", "funk", "jazz"} & set(styles) and set(styles) - {"rock", "funk", "jazz"}
    expected = [["rock", "funk", "jazz"].index(s) if s in ("rock", "funk", "jazz") else 0 for s in styles]
    assert generation.style_indices(grids, None, names, path).tolist() == expected
    assert generation.style_indices(grids, "JAZZ", names, path).tolist() == [2] * 50
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(generation.CliError, match="unusable.*pass --style"):
        generation.style_indices(grids, None, names, tmp_path / "bad.npz")
