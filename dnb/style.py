"""Drum-style features and prediction, shared by the annotate stage and
``dnb generate``. The classifier sees drums only (no tempo), so it labels any drum
file. ``pipeline/annotate.py`` fits a scikit-learn random forest on the Groove MIDI
Dataset, exports it with ``export_forest`` to plain arrays and saves them in
``data/style_classifier.npz``; ``forest_predict`` reproduces sklearn's ``predict``
bit for bit with numpy alone. Why: importing sklearn and unpickling the forest took
3.5 s of every ``dnb generate`` call, and a pickle is unsafe to load on a user's
machine, whereas ``np.load(allow_pickle=False)`` of arrays is not.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dnb import representation as rep

FEATURE_VERSION = 1
SUMMARY_NAMES = [f"onsets_{name}" for name in rep.DRUM_CLASS_NAMES] + [
    "density",  # onsets per 16th step
    "busy_steps",  # fraction of 16th steps with any onset
    "offbeat_16ths",  # fraction of onsets on odd 16ths (between the 8ths)
    "offbeat_8ths",  # fraction of onsets on the "and" of a beat
]
N_FEATURES = rep.DRUM_STEPS * rep.DRUM_CLASSES + len(SUMMARY_NAMES)
_CHUNK = 32768  # grids per prediction chunk: bounds memory on ~500k pairs
# the arrays of a classifier bundle (``export_forest``): the forest, then what it means
FOREST_KEYS = ("children_left", "children_right", "feature", "threshold", "leaf_row", "leaf_proba", "roots", "labels")
BUNDLE_KEYS = FOREST_KEYS + ("max_depth", "n_features", "classes", "feature_version")


def drum_features(grids: np.ndarray) -> np.ndarray:
    """Features ``[N, N_FEATURES]`` float32 of drum grids ``[N, 32, 14]``: the
    flattened grid, then the summary features named in ``SUMMARY_NAMES``."""
    grids = np.asarray(grids)
    if grids.ndim != 3 or grids.shape[1:] != (rep.DRUM_STEPS, rep.DRUM_CLASSES):
        raise ValueError(f"drum grids must be [N, {rep.DRUM_STEPS}, {rep.DRUM_CLASSES}], got {list(grids.shape)}")
    g = (grids > 0).astype(np.float32)
    n = len(g)
    per_step = g.sum(axis=2)  # [N, 32]
    total = per_step.sum(axis=1)
    safe = np.maximum(total, 1.0)
    steps = np.arange(rep.DRUM_STEPS)
    summary = np.column_stack(
        [
            g.sum(axis=1),
            total / rep.DRUM_STEPS,
            (per_step > 0).mean(axis=1),
            per_step[:, steps % 2 == 1].sum(axis=1) / safe,
            per_step[:, steps % 4 == 2].sum(axis=1) / safe,
        ]
    )
    return np.concatenate([g.reshape(n, -1), summary.astype(np.float32)], axis=1)


def export_forest(model, classes: list[str]) -> dict:
    """Bundle of plain arrays of a fitted single-output ``RandomForestClassifier``
    (sklearn not imported here): the trees' nodes concatenated in tree order, node ids
    global (tree ``t`` starts at ``roots[t]``); a leaf points to itself on both sides,
    so every row can take ``max_depth`` steps. ``leaf_proba[leaf_row[node]]`` is the
    leaf's ``tree_.value``, which is what sklearn's tree ``predict_proba`` returns
    (class fractions since sklearn 1.4); ``labels`` is ``model.classes_`` (indices
    into ``classes``). NaN features are not supported (``drum_features`` has none)."""
    if getattr(model, "n_outputs_", 1) != 1:
        raise ValueError("only single-output forests can be exported")
    n_classes = int(model.n_classes_)
    parts = {k: [] for k in ("children_left", "children_right", "feature", "threshold", "leaf_row", "leaf_proba")}
    roots, offset, n_leaves = [], 0, 0
    for est in model.estimators_:
        tree = est.tree_
        n = int(tree.node_count)
        left, right = tree.children_left[:n].astype(np.int64), tree.children_right[:n].astype(np.int64)
        leaf = left < 0
        own = np.arange(n, dtype=np.int64) + offset
        parts["children_left"].append(np.where(leaf, own, left + offset))
        parts["children_right"].append(np.where(leaf, own, right + offset))
        parts["feature"].append(np.where(leaf, 0, tree.feature[:n]))
        parts["threshold"].append(np.where(leaf, 0.0, tree.threshold[:n]))
        row = np.full(n, -1, dtype=np.int64)
        row[leaf] = n_leaves + np.arange(int(leaf.sum()))
        parts["leaf_row"].append(row)
        parts["leaf_proba"].append(np.asarray(tree.value[:n, 0, :n_classes], dtype=np.float64)[leaf])
        roots.append(offset)
        offset += n
        n_leaves += int(leaf.sum())
    bundle = {
        "children_left": np.concatenate(parts["children_left"]).astype(np.int32),
        "children_right": np.concatenate(parts["children_right"]).astype(np.int32),
        "feature": np.concatenate(parts["feature"]).astype(np.int32),
        "threshold": np.concatenate(parts["threshold"]).astype(np.float64),
        "leaf_row": np.concatenate(parts["leaf_row"]).astype(np.int32),
        "leaf_proba": np.concatenate(parts["leaf_proba"]),
        "roots": np.asarray(roots, dtype=np.int32),
        "labels": np.asarray(model.classes_).astype(np.int64),
        "max_depth": max(int(est.tree_.max_depth) for est in model.estimators_),
        "n_features": int(model.n_features_in_),
        "classes": [str(c) for c in classes],
        "feature_version": FEATURE_VERSION,
    }
    check_bundle(bundle)
    return bundle


def check_bundle(bundle: dict) -> None:
    """Raise a clear ValueError for a bundle of another feature version or shape."""
    if bundle.get("feature_version") != FEATURE_VERSION:
        raise ValueError(
            f"style classifier has feature_version {bundle.get('feature_version')}, this code computes "
            f"{FEATURE_VERSION}: rerun `dvc repro annotate`"
        )
    missing = [k for k in BUNDLE_KEYS if k not in bundle]
    if missing:
        raise ValueError(f"style classifier lacks {', '.join(missing)}: rerun `dvc repro annotate`")
    n_nodes = len(bundle["threshold"])
    same = all(len(bundle[k]) == n_nodes for k in ("children_left", "children_right", "feature", "leaf_row"))
    labels = np.asarray(bundle["labels"])
    bad_labels = len(labels) == 0 or labels.min() < 0 or labels.max() >= len(bundle["classes"])
    if bundle["n_features"] != N_FEATURES or not same or bundle["leaf_proba"].shape[1] != len(labels) or bad_labels:
        raise ValueError("style classifier arrays are inconsistent: rerun `dvc repro annotate`")


def save_classifier(bundle: dict, path: str | Path) -> None:
    """Write a bundle as a compressed ``.npz`` of arrays (no pickle)."""
    check_bundle(bundle)
    arrays = {k: np.asarray(bundle[k]) for k in BUNDLE_KEYS}
    arrays["classes"] = np.asarray(bundle["classes"], dtype=str)
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to any other suffix
        np.savez_compressed(f, **arrays)


def load_classifier(path: str | Path) -> dict:
    """The bundle saved by ``save_classifier``; ValueError for a stale or foreign file."""
    with np.load(path, allow_pickle=False) as data:
        bundle = {k: data[k] for k in data.files}
    for key in ("max_depth", "n_features", "feature_version"):
        if key in bundle:
            bundle[key] = int(bundle[key])
    if "classes" in bundle:
        bundle["classes"] = [str(c) for c in bundle["classes"]]
    check_bundle(bundle)
    return bundle


def forest_proba(bundle: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities ``[N, len(labels)]`` float64 exactly as sklearn's forest
    ``predict_proba`` (serial): features cast to float32 and compared ``<=`` the float64
    threshold, all trees and rows walked together one depth level at a time, leaf
    fractions summed in tree order from zero, then divided by the number of trees."""
    x = np.asarray(x, dtype=np.float32)
    n, n_features = x.shape
    if n_features != bundle["n_features"]:
        raise ValueError(f"style classifier expects {bundle['n_features']} features, got {n_features}")
    roots = bundle["roots"].astype(np.int64)
    # children[2 * node + went_left]: right then left child, one gather per level
    children = np.stack([bundle["children_right"], bundle["children_left"]], axis=1).reshape(-1).astype(np.int64)
    feature, threshold = bundle["feature"].astype(np.int64), bundle["threshold"]
    flat = x.reshape(-1)
    row_start = np.arange(n, dtype=np.int64) * n_features
    node = np.repeat(roots[:, None], n, axis=1)  # [trees, N]
    for _ in range(bundle["max_depth"]):
        went_left = flat[row_start + feature[node]] <= threshold[node]
        node = children[2 * node + went_left]
    leaf = bundle["leaf_row"][node]
    proba = np.zeros((n, bundle["leaf_proba"].shape[1]), dtype=np.float64)
    for tree_leaf in leaf:
        proba += bundle["leaf_proba"][tree_leaf]
    proba /= len(roots)
    return proba


def forest_predict(bundle: dict, x: np.ndarray) -> np.ndarray:
    """sklearn's forest ``predict``: the label of the first most probable class."""
    return bundle["labels"][np.argmax(forest_proba(bundle, x), axis=1)]


def unique_grids(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct grids, inverse index): loops repeat, so a corpus has about a third
    as many distinct 2-bar drum grids as pairs, and each needs predicting once."""
    grids = np.asarray(grids)
    packed = np.ascontiguousarray(np.packbits(grids.reshape(len(grids), -1) > 0, axis=1))
    _, first, inverse = np.unique(
        packed.view(np.dtype((np.void, packed.shape[1]))), return_index=True, return_inverse=True
    )
    return grids[first], inverse.reshape(-1)


def predict_style_index(bundle: dict, grids: np.ndarray) -> np.ndarray:
    """Index into ``bundle["classes"]`` ``[N]`` int64 of each drum grid (the forest is
    fitted on these indices), predicted once per distinct grid, in chunks."""
    check_bundle(bundle)
    grids = np.asarray(grids)
    if len(grids) == 0:
        return np.zeros(0, dtype=np.int64)
    distinct, inverse = unique_grids(grids)
    chunks = [distinct[start : start + _CHUNK] for start in range(0, len(distinct), _CHUNK)]
    if len(chunks) == 1:
        return forest_predict(bundle, drum_features(chunks[0])).astype(np.int64)[inverse]
    # numpy releases the GIL in most of the tree walk: two threads give ~1.5-1.8x on 2 cores
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        parts = pool.map(lambda chunk: forest_predict(bundle, drum_features(chunk)), chunks)
        out = np.concatenate(list(tqdm(parts, total=len(chunks), desc="style", leave=False)))
    return out.astype(np.int64)[inverse]


def predict_style(bundle: dict, grids: np.ndarray) -> list[str]:
    """Style name of each drum grid ``[N, 32, 14]``."""
    classes = list(bundle["classes"])
    return [classes[i] for i in predict_style_index(bundle, grids)]
