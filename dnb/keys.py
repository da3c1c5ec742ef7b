"""Key estimation from pitch-class profiles (key-signature events are not trusted:
most files that carry one say C major by default)."""

from __future__ import annotations

import numpy as np


def pitch_class_histogram(score) -> np.ndarray:
    """Duration-weighted (in quarter notes) pitch-class histogram ``[12]`` of every
    pitched, non-drum note of a symusic ``Score`` in tick time."""
    hist = np.zeros(12, dtype=np.float64)
    tpq = max(int(score.tpq), 1)
    for track in score.tracks:
        if track.is_drum or not len(track.notes):
            continue
        notes = track.notes.numpy()
        np.add.at(hist, notes["pitch"].astype(np.int64) % 12, notes["duration"].astype(np.float64) / tpq)
    return hist
