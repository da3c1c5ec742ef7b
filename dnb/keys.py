"""Key estimation from pitch-class profiles (key-signature events are not trusted:
most files that carry one say C major by default).

Krumhansl-Schmuckler: correlate a song's duration-weighted pitch-class histogram
with the 24 rotations of a major and a minor key profile and take the best.
The profile was picked on synthetic music only (``tests/test_keys.py``: scales,
cadences, arpeggios, pentatonic scales, a descending natural-minor scale, a 12-bar
blues in seventh chords, a I-V-vi-IV-I / i-VI-III-VII-i loop, chromatic neighbour
notes; 8 kinds x 24 keys): Krumhansl-Kessler names all 192 right, Albrecht-Shanahan
180 (the minor loop becomes its relative major), Temperley 168 (the minor loop
becomes VI, and the blues becomes the key of its IV chord). Corpus data played no part.
"""

from __future__ import annotations

import numpy as np

# (major, minor) profiles, tonic first.
PROFILES = {
    # Krumhansl & Kessler (1982), probe-tone ratings.
    "krumhansl_kessler": (
        [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88],
        [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17],
    ),
    # Temperley (2007), Kostka-Payne corpus.
    "temperley": (
        [0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400],
        [0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330],
    ),
    # Albrecht & Shanahan (2013), duration-weighted pitch classes of 982 pieces.
    "albrecht_shanahan": (
        [0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081],
        [0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052],
    ),
}
DEFAULT_PROFILE = "krumhansl_kessler"


def pitch_class_histogram(score) -> np.ndarray:
    """Duration-weighted (in quarter notes) pitch-class histogram ``[12]`` of every
    pitched, non-drum note of a symusic ``Score`` in tick time."""
    tpq = max(int(score.tpq), 1)
    notes = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not notes:
        return np.zeros(12, dtype=np.float64)
    pitch = np.concatenate([n["pitch"] for n in notes]).astype(np.int64)
    duration = np.concatenate([n["duration"] for n in notes]).astype(np.float64)
    # one bincount over all tracks adds the notes in the same order as a running sum would
    return np.bincount(pitch % 12, weights=duration / tpq, minlength=12)


def key_templates(profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """``[24, 12]`` z-scored templates; row ``k`` is key ``k`` (tonic + 12 * minor)."""
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    rows = [np.roll(major, t) for t in range(12)] + [np.roll(minor, t) for t in range(12)]
    templates = np.stack(rows)
    templates -= templates.mean(axis=1, keepdims=True)
    return templates / np.linalg.norm(templates, axis=1, keepdims=True)


def estimate_keys(hists: np.ndarray, profile: str = DEFAULT_PROFILE) -> tuple[np.ndarray, np.ndarray]:
    """Keys ``[N]`` (0..23) and confidences ``[N]`` (best minus second-best Pearson
    correlation) for histograms ``[N, 12]``. A histogram without variance (no notes,
    or all twelve pitch classes equal) says nothing: C major with confidence 0."""
    hists = np.asarray(hists, dtype=np.float64).reshape(-1, 12)
    centred = hists - hists.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    flat = norm[:, 0] <= 1e-12
    corr = (centred / np.where(flat[:, None], 1.0, norm)) @ key_templates(profile).T  # [N, 24]
    top2 = np.sort(corr, axis=1)[:, -2:]
    keys = corr.argmax(axis=1).astype(np.int64)
    confidence = top2[:, 1] - top2[:, 0]
    keys[flat] = 0
    confidence[flat] = 0.0
    return keys, confidence


def estimate_key(hist: np.ndarray, profile: str = DEFAULT_PROFILE) -> tuple[int, float]:
    """(key index, confidence) of one histogram ``[12]``; see ``estimate_keys``."""
    keys, confidence = estimate_keys(np.asarray(hist)[None], profile)
    return int(keys[0]), float(confidence[0])
