"""Bass dynamics: velocities that follow the drums and the bar, and seeded timing jitter.

The models write pitches and rhythm only (tokens carry no velocity), so a flat velocity
of 100 made every line sound like a sequencer. The rule, per bass note of a 2-bar window
(steps are 32nds, 8 per beat, 32 per bar; the drum grid is in 16ths):

* ``ACCENT`` = 112 when the note starts with a kick (a kick on the same 16th) or on a
  downbeat (the first beat of a bar: step 0 or 32): the bass locks with the kick;
* ``GHOST`` = 64 for a short note (at most ``GHOST_STEPS`` = 2 steps, a 16th) that starts
  off the 8th-note grid (step % 4 != 0) and is not accented: the passing and grace notes;
* ``NORMAL`` = 96 otherwise.

``--velocity fixed`` keeps today's flat ``FIXED`` = 100. ``humanize`` moves each note by a
seeded uniform offset in [-ms, +ms] (start and end together) and then cuts every note at
the start of the next, so that the line stays monophonic.
"""

from __future__ import annotations

import numpy as np

from dnb import representation as rep

ACCENT, NORMAL, GHOST, FIXED = 112, 96, 64, 100
GHOST_STEPS = 2
STEPS_PER_BAR = 4 * rep.BASS_STEPS_PER_QUARTER  # 32
VELOCITY_MODES = ("rule", "fixed")


def note_velocity(start: int, end: int, drums: np.ndarray) -> int:
    """Velocity of one note (32nd steps ``start``..``end`` of a window) over its drum grid ``[32, 14]``."""
    per_drum_step = rep.BASS_STEPS_PER_QUARTER // rep.DRUM_STEPS_PER_QUARTER  # 2
    on_kick = start % per_drum_step == 0 and bool(drums[start // per_drum_step, rep.KICK])
    if on_kick or start % STEPS_PER_BAR == 0:
        return ACCENT
    if end - start <= GHOST_STEPS and start % 4 != 0:
        return GHOST
    return NORMAL


def velocities(tokens: np.ndarray, drums: np.ndarray, mode: str = "rule") -> list[int]:
    """One velocity per note of ``rep.token_notes(tokens)`` (tokens ``[64]``, drums ``[32, 14]``)."""
    if mode not in VELOCITY_MODES:
        raise ValueError(f"velocity mode must be one of {VELOCITY_MODES}, got {mode!r}")
    notes = rep.token_notes(tokens)
    if mode == "fixed":
        return [FIXED] * len(notes)
    return [note_velocity(start, end, np.asarray(drums)) for start, end, _ in notes]


def humanize(onsets: np.ndarray, ends: np.ndarray, ticks_per_ms: np.ndarray, ms: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, ends) in ticks, each note moved by a uniform offset in [-ms, +ms] (``ticks_per_ms``
    per note, from the tempo of its window); notes stay in order, at least a tick long, and end
    where the next starts at the latest. ``ms`` = 0 returns them unchanged."""
    onsets, ends = np.asarray(onsets, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    if ms <= 0 or len(onsets) == 0:
        return onsets, ends
    shift = np.rint(rng.uniform(-ms, ms, len(onsets)) * np.asarray(ticks_per_ms, dtype=np.float64)).astype(np.int64)
    new_on = np.maximum(onsets + shift, 0)
    new_on = np.maximum.accumulate(new_on)  # a note never jumps before the previous one
    new_end = ends + shift
    new_end[:-1] = np.minimum(new_end[:-1], new_on[1:])
    return new_on, np.maximum(new_end, new_on + 1)
