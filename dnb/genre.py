"""Drum-style (genre) features and prediction, shared by the annotate stage and
``dnb generate``. The classifier sees drums only (no tempo), so it labels any drum
file; it is trained on the Groove MIDI Dataset by ``pipeline/annotate.py`` and saved
as a bundle ``{"model", "classes", "feature_version"}`` in ``data/genre_classifier.joblib``.
"""

from __future__ import annotations

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


def check_bundle(bundle: dict) -> None:
    if bundle.get("feature_version") != FEATURE_VERSION:
        raise ValueError(
            f"genre classifier has feature_version {bundle.get('feature_version')}, this code computes "
            f"{FEATURE_VERSION}: rerun `dvc repro annotate`"
        )


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
    """Index into ``bundle["classes"]`` ``[N]`` int64 of each drum grid (the model is
    fitted on these indices), predicted once per distinct grid, in chunks."""
    check_bundle(bundle)
    grids = np.asarray(grids)
    if len(grids) == 0:
        return np.zeros(0, dtype=np.int64)
    distinct, inverse = unique_grids(grids)
    out = np.zeros(len(distinct), dtype=np.int64)
    for start in tqdm(range(0, len(distinct), _CHUNK), desc="style", leave=False, disable=len(distinct) <= _CHUNK):
        chunk = distinct[start : start + _CHUNK]
        out[start : start + len(chunk)] = bundle["model"].predict(drum_features(chunk))
    return out[inverse]


def predict_style(bundle: dict, grids: np.ndarray) -> list[str]:
    """Style name of each drum grid ``[N, 32, 14]``."""
    classes = list(bundle["classes"])
    return [classes[i] for i in predict_style_index(bundle, grids)]
