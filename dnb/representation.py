"""The one shared representation: MIDI <-> drum grids / bass tokens / onset rolls.

Every stage, model, metric and the `dnb generate` command goes through this module,
so that there is exactly one definition of how a 2-bar 4/4 window is encoded.

Encoding of one window (2 bars of 4/4 = 8 quarter notes):

* drums: ``[32, 14]`` binary grid, 16th-note steps x 14 drum classes (see
  ``GM_DRUM_TO_CLASS``). Onsets only; velocities and durations are dropped.
* bass tokens: ``[64]`` ints over 32nd-note steps. ``REST`` (0), ``SUSTAIN`` (1), or
  ``ONSET_OFFSET + p`` for an onset of folded pitch index ``p`` in ``0..35``
  (MIDI ``BASS_LOW + p``). Vocabulary size ``VOCAB_SIZE`` = 38.
* bass onset roll: ``[64, 36]`` binary, one-hot onset pitch per step (monophonic).

Monophony rule: when several bass notes start on the same 32nd step the **lowest**
is kept (the bass plays the root); a note is cut where the next onset starts.
Pitch folding: every bass pitch is moved by whole octaves into
``[BASS_LOW, BASS_HIGH]`` = E1 (28) .. D#4 (63), the 36-semitone span of a 4-string
bass plus its upper register, so that files that notate bass an octave high keep
their pitch class and contour.
Window boundaries: a note sustained across the start of a window is not an onset
of that window, so leading ``SUSTAIN`` tokens become ``REST``: each pair stands alone.
Quantisation: onsets and ends are rounded to the nearest step; a note lasts at
least one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRUM_STEPS = 32
DRUM_CLASSES = 14
BASS_STEPS = 64
BASS_PITCHES = 36
BASS_LOW = 28  # E1
BASS_HIGH = BASS_LOW + BASS_PITCHES - 1  # D#4 = 63
DRUM_STEPS_PER_QUARTER = 4
BASS_STEPS_PER_QUARTER = 8
QUARTERS_PER_WINDOW = 8  # two bars of 4/4

REST = 0
SUSTAIN = 1
ONSET_OFFSET = 2
VOCAB_SIZE = ONSET_OFFSET + BASS_PITCHES  # 38
ROLL_BYTES = -(-BASS_PITCHES // 8)  # bytes per step of the bit-packed onset roll on disk (5)

DRUM_CLASS_NAMES = [
    "kick",
    "snare",
    "side_stick",
    "clap",
    "closed_hihat",
    "open_hihat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
    "shaker_tambourine",
    "bell_wood",
    "other_perc",
]
KICK, SNARE = 0, 1

# Every General MIDI percussion key 27..87 -> drum class. Keys outside that range
# (GM2 / vendor kits) fall into "other_perc".
_CLASS_KEYS = {
    0: [35, 36],  # acoustic / electric bass drum
    1: [38, 40],  # acoustic / electric snare
    2: [37],  # side stick
    3: [39],  # hand clap
    4: [42, 44],  # closed / pedal hi-hat
    5: [46],  # open hi-hat
    6: [41, 43],  # low floor / high floor tom
    7: [45, 47],  # low / low-mid tom
    8: [48, 50],  # hi-mid / high tom
    9: [49, 52, 55, 57],  # crash 1, chinese, splash, crash 2
    10: [51, 53, 59],  # ride 1, ride bell, ride 2
    11: [54, 69, 70, 82],  # tambourine, cabasa, maracas, shaker
    12: [56, 67, 68, 75, 76, 77, 80, 81, 83, 84],  # cowbell, agogos, claves, blocks, triangles, bells
    13: [27, 28, 29, 30, 31, 32, 33, 34, 58, 60, 61, 62, 63, 64, 65, 66, 71, 72, 73, 74, 78, 79, 85, 86, 87],
}
GM_DRUM_TO_CLASS = np.full(128, 13, dtype=np.int64)
for _cls, _keys in _CLASS_KEYS.items():
    GM_DRUM_TO_CLASS[_keys] = _cls
# The key written back for each class when rendering a grid to MIDI.
CLASS_TO_GM_DRUM = np.array([36, 38, 37, 39, 42, 46, 41, 45, 48, 49, 51, 54, 56, 64], dtype=np.int64)

BASS_PROGRAMS = 9  # GM 32..39 -> 0..7; a track named "bass" with another program -> 8
KEY_NAMES = [f"{n} major" for n in ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]] + [
    f"{n} minor" for n in ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]
]


def fold_pitch(pitch: np.ndarray | int) -> np.ndarray:
    """Move MIDI pitches by octaves into [BASS_LOW, BASS_HIGH]."""
    pitch = np.asarray(pitch, dtype=np.int64)
    return BASS_LOW + (pitch - BASS_LOW) % 12 + 12 * np.clip((pitch - BASS_LOW) // 12, 0, BASS_PITCHES // 12 - 1)


# --------------------------------------------------------------------------- grids


def drum_grids(steps: np.ndarray, keys: np.ndarray, n_windows: int) -> np.ndarray:
    """Binary drum grids ``[n_windows, 32, 14]`` from onset steps (16ths from the
    segment start) and GM keys; onsets outside the windows are dropped."""
    grids = np.zeros((n_windows, DRUM_STEPS, DRUM_CLASSES), dtype=np.uint8)
    steps = np.asarray(steps, dtype=np.int64)
    keep = (steps >= 0) & (steps < n_windows * DRUM_STEPS)
    steps, keys = steps[keep], np.asarray(keys, dtype=np.int64)[keep]
    grids[steps // DRUM_STEPS, steps % DRUM_STEPS, GM_DRUM_TO_CLASS[np.clip(keys, 0, 127)]] = 1
    return grids


def bass_tokens(onsets: np.ndarray, ends: np.ndarray, pitches: np.ndarray, n_windows: int) -> np.ndarray:
    """Monophonic bass tokens ``[n_windows, 64]`` from note onset/end steps (32nds
    from the segment start) and MIDI pitches, following the module's rules."""
    n_steps = n_windows * BASS_STEPS
    tokens = np.zeros(n_steps, dtype=np.uint8)
    onsets = np.asarray(onsets, dtype=np.int64)
    ends = np.maximum(np.asarray(ends, dtype=np.int64), onsets + 1)
    pitches = np.asarray(pitches, dtype=np.int64)
    keep = (onsets >= 0) & (onsets < n_steps)
    onsets, ends, pitches = onsets[keep], ends[keep], pitches[keep]
    if len(onsets):
        order = np.lexsort((pitches, onsets))  # by onset, then lowest pitch first
        onsets, ends, pitches = onsets[order], ends[order], pitches[order]
        first = np.ones(len(onsets), dtype=bool)
        first[1:] = onsets[1:] != onsets[:-1]
        onsets, ends, pitches = onsets[first], ends[first], pitches[first]
        next_onset = np.append(onsets[1:], n_steps)
        ends = np.minimum(np.minimum(ends, next_onset), n_steps)
        cover = np.zeros(n_steps + 1, dtype=np.int64)
        np.add.at(cover, onsets + 1, 1)
        np.add.at(cover, ends, -1)
        held = np.cumsum(cover)[:n_steps] > 0
        tokens[held] = SUSTAIN
        tokens[onsets] = ONSET_OFFSET + fold_pitch(pitches) - BASS_LOW
    windows = tokens.reshape(n_windows, BASS_STEPS)
    leading = np.cumprod(windows == SUSTAIN, axis=1).astype(bool)
    windows[leading] = REST
    return windows


def tokens_to_roll(tokens: np.ndarray) -> np.ndarray:
    """Onset roll ``[..., 64, 36]`` from tokens ``[..., 64]`` (``tokens_to_packed_roll``, unpacked)."""
    return unpack_roll(tokens_to_packed_roll(tokens))


def tokens_to_packed_roll(tokens: np.ndarray) -> np.ndarray:
    """The onset roll bit-packed along pitch (``np.packbits`` order): ``[..., 64, 5]``
    uint8, 7x smaller on disk; ``unpack_roll`` gives the ``[..., 64, 36]`` roll. Flat
    indexing, one byte write per onset: fast on 400k pairs."""
    tokens = np.asarray(tokens)
    flat = tokens.reshape(-1).astype(np.int64)
    packed = np.zeros((flat.size, ROLL_BYTES), dtype=np.uint8)
    onsets = np.flatnonzero(flat >= ONSET_OFFSET)
    pitch = flat[onsets] - ONSET_OFFSET
    packed[onsets, pitch // 8] = (128 >> (pitch % 8)).astype(np.uint8)
    return packed.reshape(tokens.shape + (ROLL_BYTES,))


def unpack_roll(packed: np.ndarray) -> np.ndarray:
    """``[..., 64, 36]`` uint8 onset roll from ``tokens_to_packed_roll``'s bytes."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, count=BASS_PITCHES)


def transpose_tokens(tokens: np.ndarray, semitones: int | np.ndarray) -> np.ndarray:
    """Shift the onset pitches of tokens ``[..., 64]`` by ``semitones`` (one int, or
    one shift per sequence, shape ``tokens.shape[:-1]``) and fold them back into the
    bass range with ``fold_pitch``; rests and sustains are unchanged. Used for key
    normalisation and transposition augmentation (a table lookup: fast on 500k pairs)."""
    tokens = np.asarray(tokens)
    semitones = np.asarray(semitones, dtype=np.int64)
    shifts, inverse = np.unique(semitones, return_inverse=True)
    table = np.tile(np.arange(VOCAB_SIZE, dtype=np.uint8), (len(shifts), 1))
    pitch = BASS_LOW + np.arange(BASS_PITCHES)[None, :] + shifts[:, None]
    table[:, ONSET_OFFSET:] = ONSET_OFFSET + fold_pitch(pitch) - BASS_LOW
    rows = np.broadcast_to(inverse.reshape(semitones.shape), tokens.shape[:-1])
    return table[rows[..., None], tokens]


def roll_to_tokens(roll: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Tokens from an onset roll or onset probabilities ``[..., 64, 36]``: at each
    step whose best pitch reaches ``threshold`` an onset of that pitch, held
    (legato) until the next onset; steps before the first onset are rests."""
    roll = np.asarray(roll, dtype=np.float64)
    best = roll.argmax(axis=-1)
    is_onset = roll.max(axis=-1) >= threshold
    tokens = np.where(is_onset, ONSET_OFFSET + best, SUSTAIN).astype(np.uint8)
    started = np.cumsum(is_onset, axis=-1) > 0
    tokens[~started] = REST
    return tokens


def token_pitch_classes(tokens: np.ndarray) -> np.ndarray:
    """Pitch class 0..11 of every token (meaningless where there is no onset)."""
    return (BASS_LOW + np.asarray(tokens, dtype=np.int64) - ONSET_OFFSET) % 12


def token_notes(tokens: np.ndarray) -> list[tuple[int, int, int]]:
    """Notes ``(start_step, end_step, midi_pitch)`` of one token sequence ``[64]``."""
    tokens = np.asarray(tokens)
    notes = []
    for step in np.nonzero(tokens >= ONSET_OFFSET)[0]:
        end = step + 1
        while end < len(tokens) and tokens[end] == SUSTAIN:
            end += 1
        notes.append((int(step), int(end), int(tokens[step]) - ONSET_OFFSET + BASS_LOW))
    return notes


# --------------------------------------------------------------------------- MIDI in


@dataclass
class Windows:
    """All 2-bar 4/4 windows of one score."""

    drums: np.ndarray  # [W, 32, 14] uint8
    tokens: np.ndarray | None  # [W, 64] uint8, None when there is no bass track
    start_ticks: np.ndarray  # [W] int64
    bpm: np.ndarray  # [W] float64, tempo at the window start
    index: np.ndarray  # [W] int64, window index within the song (counted over all 4/4 windows)


class NotFourFour(ValueError):
    """The score has no complete 2-bar 4/4 window."""


def is_bass_track(track) -> tuple[bool, bool]:
    """(is a bass track, is a GM bass program 32-39)."""
    if track.is_drum:
        return False, False
    gm = 32 <= track.program <= 39
    return gm or "bass" in track.name.lower(), gm


def pick_tracks(score):
    """(drum tracks, bass track or None, bass is GM program): drums = every
    ``is_drum`` track; bass = the busiest GM 32-39 track, else the busiest track
    whose name says bass."""
    tracks = [t for t in score.tracks if len(t.notes)]
    drums = [t for t in tracks if t.is_drum]
    flags = [is_bass_track(t) for t in tracks]
    gm = [t for t, (_, is_gm) in zip(tracks, flags) if is_gm]
    pool = gm or [t for t, (is_bass, _) in zip(tracks, flags) if is_bass]
    bass = max(pool, key=lambda t: len(t.notes)) if pool else None
    return drums, bass, bool(gm)


def four_four_segments(score, end_tick: int) -> list[tuple[int, int]]:
    """(start, end) tick spans in 4/4; no time signature means 4/4 throughout.
    Bars are counted from each time-signature event."""
    sigs = sorted((int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in score.time_signatures)
    if not sigs or sigs[0][0] > 0:
        sigs = [(0, 4, 4)] + sigs
    spans = []
    for i, (time, num, den) in enumerate(sigs):
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else end_tick
        if num == 4 and den == 4 and stop > time:
            spans.append((time, stop))
    return spans


def _notes(tracks) -> dict[str, np.ndarray]:
    arrays = [t.notes.numpy() for t in tracks]
    return {k: np.concatenate([a[k] for a in arrays]).astype(np.int64) for k in ("time", "duration", "pitch")}


def score_windows(score, with_bass: bool = True) -> Windows:
    """Cut a symusic ``Score`` (tick time) into 2-bar 4/4 windows.

    Raises ``NotFourFour`` when no complete 4/4 window exists; returns empty
    drums when the score has no drum track (callers decide what that means).
    """
    tpq = int(score.tpq)
    drum_tracks, bass_track, _ = pick_tracks(score)
    drum = _notes(drum_tracks) if drum_tracks else None
    bass = _notes([bass_track]) if (with_bass and bass_track is not None) else None
    end_tick = max(int(t.end()) for t in score.tracks) if len(score.tracks) else 0
    window_ticks = QUARTERS_PER_WINDOW * tpq
    tempo_times = np.array([int(t.time) for t in score.tempos], dtype=np.int64)
    tempo_qpm = np.array([float(t.qpm) for t in score.tempos], dtype=np.float64)
    out_drums, out_tokens, out_starts = [], [], []
    for start, stop in four_four_segments(score, end_tick):
        n = (stop - start) // window_ticks
        if n <= 0:
            continue
        if drum is not None:
            steps = np.rint((drum["time"] - start) * DRUM_STEPS_PER_QUARTER / tpq).astype(np.int64)
            out_drums.append(drum_grids(steps, drum["pitch"], n))
        else:
            out_drums.append(np.zeros((n, DRUM_STEPS, DRUM_CLASSES), dtype=np.uint8))
        if bass is not None:
            scale = BASS_STEPS_PER_QUARTER / tpq
            on = np.rint((bass["time"] - start) * scale).astype(np.int64)
            end = np.rint((bass["time"] + bass["duration"] - start) * scale).astype(np.int64)
            out_tokens.append(bass_tokens(on, end, bass["pitch"], n))
        out_starts.append(start + window_ticks * np.arange(n, dtype=np.int64))
    if not out_starts:
        raise NotFourFour("no complete 2-bar 4/4 window")
    starts = np.concatenate(out_starts)
    if len(tempo_times):
        order = np.argsort(tempo_times, kind="stable")
        pos = np.searchsorted(tempo_times[order], starts, side="right") - 1
        bpm = np.where(pos >= 0, tempo_qpm[order][np.maximum(pos, 0)], 120.0)
    else:
        bpm = np.full(len(starts), 120.0)
    return Windows(
        drums=np.concatenate(out_drums),
        tokens=np.concatenate(out_tokens) if bass is not None else None,
        start_ticks=starts,
        bpm=bpm,
        index=np.arange(len(starts), dtype=np.int64),
    )


def load_score(data: bytes, sanitize: bool = False):
    """Parse MIDI bytes with symusic (about 220x faster than pretty_midi). ``sanitize``
    clamps out-of-range data bytes (a velocity of 180, say) instead of raising."""
    import symusic

    return symusic.Score.from_midi(data, sanitize_data=sanitize)


# --------------------------------------------------------------------------- MIDI out


def windows_to_pretty_midi(
    drums: np.ndarray | None,
    tokens: np.ndarray | None,
    bpm: float = 120.0,
    bass_program: int = 33,
    resolution: int = 480,
    velocity: int = 100,
):
    """Render consecutive windows (``[W,32,14]`` drums, ``[W,64]`` tokens) as a
    pretty_midi object: one drum track, one bass track. Drum hits last a 16th."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(bpm))
    quarter = 60.0 / float(bpm)
    window_s = QUARTERS_PER_WINDOW * quarter
    if drums is not None:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        drum_step = quarter / DRUM_STEPS_PER_QUARTER
        for w, step, cls in zip(*np.nonzero(np.asarray(drums))):
            start = w * window_s + step * drum_step
            kit.notes.append(
                pretty_midi.Note(velocity, int(CLASS_TO_GM_DRUM[cls]), start, start + drum_step)
            )
        pm.instruments.append(kit)
    if tokens is not None:
        bass = pretty_midi.Instrument(program=int(bass_program), name="bass")
        bass_step = quarter / BASS_STEPS_PER_QUARTER
        for w, seq in enumerate(np.asarray(tokens)):
            for start, end, pitch in token_notes(seq):
                offset = w * window_s
                bass.notes.append(
                    pretty_midi.Note(velocity, pitch, offset + start * bass_step, offset + end * bass_step)
                )
        pm.instruments.append(bass)
    return pm


def pretty_midi_to_bytes(pm) -> bytes:
    """Serialise a pretty_midi object to MIDI bytes."""
    import io

    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()
