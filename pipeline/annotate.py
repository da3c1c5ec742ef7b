"""Stage annotate: a key per song and a predicted drum style per pair.

* Key: Krumhansl-Schmuckler on the song's pitch-class histogram (``dnb.keys``),
  copied to every pair of the song.
* Style: a drums-only classifier trained on the Groove MIDI Dataset (4/4 files,
  2-bar windows, primary style = text before '/', rare styles merged into "other"),
  model picked on the official validation split and reported on its test split
  beside the majority-class baseline; it is then exported to numpy arrays
  (``dnb.style.export_forest``) and that export labels every pair's drum grid, the
  same prediction code as ``dnb generate``.

Outputs: ``data/interim/annotations.parquet`` (row-aligned with pairs.parquet),
``data/style_classifier.npz`` (see ``dnb.style``) and ``data/annotate_report.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from tqdm import tqdm

from dnb import representation as rep
from dnb import style as drum_style
from dnb.keys import estimate_keys
from dnb.params import load_params
from dnb.schema import N_KEYS

INTERIM = Path("data/interim")
OTHER = "other"
SPLITS = ("train", "validation", "test")


def primary_style(style: str) -> str:
    """'funk/groove1' -> 'funk'."""
    return str(style).split("/")[0].strip().lower()


def groove_windows(groove_path: Path, min_drum_onsets: int) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Drum grids ``[W, 32, 14]`` of every 2-bar window of the 4/4 Groove files, a
    frame (style, split, file) per window, and counts of what was skipped and why."""
    info = pd.read_csv(groove_path / "info.csv")
    counts = {"files": len(info), "files_not_4_4": int((info["time_signature"] != "4-4").sum())}
    counts.update(files_unreadable=0, files_shorter_than_a_window=0, windows_too_sparse=0)
    grids, rows = [], []
    four_four = info[info["time_signature"] == "4-4"]
    for row in tqdm(four_four.itertuples(), desc="groove", total=len(four_four), leave=False):
        try:
            windows = rep.score_windows(rep.load_score((groove_path / row.midi_filename).read_bytes()), with_bass=False)
        except rep.NotFourFour:
            counts["files_shorter_than_a_window"] += 1
            continue
        except Exception:  # missing or corrupt file: counted, never fatal
            counts["files_unreadable"] += 1
            continue
        keep = windows.drums.reshape(len(windows.drums), -1).sum(axis=1) >= min_drum_onsets
        counts["windows_too_sparse"] += int((~keep).sum())
        grids.append(windows.drums[keep])
        rows += [(primary_style(row.style), row.split, row.midi_filename)] * int(keep.sum())
    drums = np.concatenate(grids) if grids else np.zeros((0, rep.DRUM_STEPS, rep.DRUM_CLASSES), np.uint8)
    return drums, pd.DataFrame(rows, columns=["style", "split", "file"]), counts


def merge_rare_styles(styles: pd.Series, is_train: np.ndarray, min_windows: int) -> pd.Series:
    """Styles with fewer than ``min_windows`` training windows (or none) become "other"."""
    train_counts = styles[is_train].value_counts()
    keep = set(train_counts[train_counts >= min_windows].index) - {OTHER}
    return styles.where(styles.isin(keep), OTHER)


def candidates(seed: int) -> dict:
    """The classifiers compared on the validation split: random forests of 50 trees at
    two depths, with and without class balancing. Measured on Groove while designing
    this stage (not re-run here): logistic regression (C=0.01) fitted 3-10x slower and
    scored lower on validation; 100 trees or unlimited depth predict 2x slower for no
    gain on validation, and gradient boosting fitted 30x slower. Prediction speed
    matters: the large corpus has ~170k distinct drum grids to label."""
    forest = {"n_estimators": 50, "random_state": seed, "n_jobs": 1}
    balanced = {"class_weight": "balanced_subsample"}
    return {
        "random_forest_d12": RandomForestClassifier(max_depth=12, **forest),
        "random_forest_d12_balanced": RandomForestClassifier(max_depth=12, **balanced, **forest),
        "random_forest_d8_balanced": RandomForestClassifier(max_depth=8, **balanced, **forest),
    }


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy and macro-F1 over the classes present in ``y_true``."""
    labels = np.unique(y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def train_classifier(grids: np.ndarray, styles: pd.Series, splits: pd.Series, min_windows: int, seed: int):
    """(bundle for ``dnb.style``, report): candidates fitted on train, the best
    validation macro-F1 kept (ties: accuracy, then listing order), scored on test,
    exported to arrays and checked to predict exactly as sklearn on every window."""
    is_train = (splits == "train").to_numpy()
    labels = merge_rare_styles(styles, is_train, min_windows)
    classes = sorted(labels.unique())
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    x = drum_style.drum_features(grids)
    part = {s: (splits == s).to_numpy() for s in SPLITS}
    if not part["train"].any() or not part["validation"].any() or not part["test"].any():
        raise ValueError(f"the Groove data needs windows in every split, got {labels.groupby(splits).size().to_dict()}")
    results, models = {}, {}
    for name, model in candidates(seed).items():
        model.set_params(n_jobs=2).fit(x[part["train"]], y[part["train"]])  # same trees, both cores
        model.set_params(n_jobs=1)  # serial prediction: a fixed summation order, byte-identical outputs
        val = scores(y[part["validation"]], model.predict(x[part["validation"]]))
        results[name] = {"val_" + k: v for k, v in val.items()}
        models[name] = model
    order = list(results)
    chosen = max(order, key=lambda n: (results[n]["val_macro_f1"], results[n]["val_accuracy"], -order.index(n)))
    model = models[chosen]
    y_test, pred = y[part["test"]], model.predict(x[part["test"]])
    majority = int(np.bincount(y[part["train"]], minlength=len(classes)).argmax())
    baseline = scores(y_test, np.full(len(y_test), majority))
    test = scores(y_test, pred)
    present = np.unique(y_test)
    per_class = f1_score(y_test, pred, labels=present, average=None, zero_division=0)
    report = {
        "chosen": chosen,
        "candidates": results,
        "classes": classes,
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "majority_class": classes[majority],
        "majority_accuracy": baseline["accuracy"],
        "majority_macro_f1": baseline["macro_f1"],
        "per_class_f1": {classes[i]: float(f) for i, f in zip(present, per_class)},  # classes present in test
        "test_support": {c: int((y_test == i).sum()) for i, c in enumerate(classes)},
        "n_windows": {s: int(part[s].sum()) for s in SPLITS},
        "merged_into_other": sorted(set(styles) - set(classes)),
    }
    bundle = drum_style.export_forest(model, classes)
    if not np.array_equal(drum_style.forest_predict(bundle, x), model.predict(x)):  # e.g. a new sklearn tree format
        raise RuntimeError("the exported style classifier disagrees with scikit-learn on the Groove windows")
    return bundle, report


def song_keys(songs: pd.DataFrame) -> pd.DataFrame:
    """Key, confidence and whether any pitched note exists, per song of songs.parquet."""
    hists = np.nan_to_num(songs[[f"pc_{i}" for i in range(12)]].to_numpy(dtype=np.float64)).clip(min=0.0)
    keys, confidence = estimate_keys(hists)
    return pd.DataFrame(
        {"song_id": songs["song_id"].to_numpy(), "key": keys, "key_confidence": confidence, "pitched": hists.sum(1) > 0}
    )


def pair_keys(pairs: pd.DataFrame, songs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """(key, confidence) per pair from its song; pairs whose song is missing from
    songs.parquet get C major with confidence 0 and are counted."""
    per_song = song_keys(songs).drop_duplicates("song_id").set_index("song_id")
    index = per_song.index.get_indexer(pairs["song_id"])
    found = index >= 0
    keys = np.where(found, per_song["key"].to_numpy()[index], 0).astype(np.int64)
    confidence = np.where(found, per_song["key_confidence"].to_numpy()[index], 0.0)
    return keys, confidence, int((~found).sum())


def folder_crosstab(pairs: pd.DataFrame, styles: np.ndarray) -> dict:
    """{folder genre: {predicted style: pairs}} over pairs that have a folder genre."""
    folder = pairs["folder_genre"].astype("string")
    has = (folder.notna() & (folder.str.strip() != "")).to_numpy()
    if not has.any():
        return {}
    table = pd.crosstab(folder[has].to_numpy(), styles[has])
    return {str(g): {str(s): int(n) for s, n in row.items()} for g, row in table.iterrows()}


def main() -> None:
    params = load_params()["annotate"]
    t0 = time.perf_counter()
    grids, windows, groove_counts = groove_windows(Path(params["groove_path"]), int(params["min_drum_onsets"]))
    bundle, classifier = train_classifier(
        grids, windows["style"], windows["split"], int(params["min_style_windows"]), int(params["seed"])
    )
    classifier["groove"] = groove_counts
    t1 = time.perf_counter()

    pairs = pd.read_parquet(INTERIM / "pairs.parquet", columns=["song_id", "folder_genre"])
    songs = pd.read_parquet(INTERIM / "songs.parquet")
    with np.load(INTERIM / "pairs.npz") as data:
        drums = data["drums"]
    if len(drums) != len(pairs):
        raise ValueError(f"pairs.npz has {len(drums)} drum grids but pairs.parquet {len(pairs)} rows")
    keys, confidence, missing = pair_keys(pairs, songs)
    style_index = drum_style.predict_style_index(bundle, drums)
    classes = np.array(bundle["classes"])
    annotations = pd.DataFrame(
        {
            "key": keys,
            "key_name": np.array(rep.KEY_NAMES)[keys],
            "key_confidence": confidence,
            "style": classes[style_index],
            "style_index": style_index,
        }
    )
    per_song = song_keys(songs)
    pitched = per_song[per_song["pitched"]]
    key_counts = np.bincount(pitched["key"], minlength=N_KEYS)
    style_counts = np.bincount(style_index, minlength=len(classes))
    t2 = time.perf_counter()

    annotations.to_parquet(INTERIM / "annotations.parquet", index=False)
    drum_style.save_classifier(bundle, "data/style_classifier.npz")
    report = {
        "classifier": classifier,
        "pairs": len(pairs),
        "songs": len(songs),
        "key_histogram": {rep.KEY_NAMES[k]: int(n) for k, n in enumerate(key_counts)},
        "songs_without_pitched_notes": int((~per_song["pitched"]).sum()),
        "pairs_without_song": missing,
        "mean_key_confidence": float(pitched["key_confidence"].mean()) if len(pitched) else 0.0,
        "style_histogram": {c: int(n) for c, n in zip(classes, style_counts)},
        "crosstab": folder_crosstab(pairs, classes[style_index]),
    }
    Path("data/annotate_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"annotate: {len(pairs)} pairs, {len(songs)} songs; style classifier {classifier['chosen']}: "
        f"test acc {classifier['test_accuracy']:.3f} macro-F1 {classifier['test_macro_f1']:.3f} "
        f"(majority {classifier['majority_class']}: {classifier['majority_accuracy']:.3f} / "
        f"{classifier['majority_macro_f1']:.3f}); "
        f"{t1 - t0:.1f} s for the classifier, {t2 - t1:.1f} s to annotate"
    )


if __name__ == "__main__":
    main()
