"""The batch schema: the one definition of what a model sees, and the label helpers beside it.

Every split file, every batch built from a MIDI file and every model reads these
fields. Adding a conditioning label or a batch field is one entry in ``FIELDS``::

    drums   float32 [B, 32, 14]   drum onset grid
    roll    float32 [B, 64, 36]   bass onset roll (targets; a function of the tokens)
    tokens  int64   [B, 64]       bass tokens (targets; REST/SUSTAIN/ONSET+p)
    tempo   float32 [B]           log2(bpm / 120)
    program int64   [B]           bass program index 0..8
    key     int64   [B]           0..23 (tonic + 12 * minor)
    style   int64   [B]           drum style predicted from the drums (index into meta.json "styles")
    chords  int64   [B, 4]        chord label per half bar (``dnb.chords``; 0 = N), from the non-bass tracks
    prev_tokens int64 [B, 64]     bass tokens of the previous 2-bar window of the song (zeros without one)
    prev_drums float32 [B, 32, 14] drum grid of the previous window (zeros without one)
    has_prev int64  [B]           1 when the previous window is contiguous (same 4/4 stretch) and exists
    recall_tokens int64 [B, 64]   bass tokens of the recalled window: of the 2..8 windows before the previous
                                  one (same stretch), the one whose drums match this window's best
    recall_drums float32 [B, 32, 14] its drum grid (zeros without one)
    has_recall int64 [B]          1 when there is a window to recall
    position int64  [B]           window index within the song (counted over all its 4/4 windows)
    song    int64   [B]           song index (the unit of the song-level bootstrap)

The previous window serves as context even when its own pair was dropped (too sparse, absurd
tempo): it is read from the song, not from the kept pairs. So is the recalled window
(``recall_rows``): a song returns to a riff it played several windows ago (A B A B, a verse
after a chorus), which the previous window alone cannot tell (how often the real bass plays
either window's line: ``repeats`` per split in ``data/stats.json``).

"style" is the drum style a classifier predicts from a drum grid; the first folder of a
corpus path is the folder *genre* of a song, a different thing (never a model input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from dnb import representation as rep
from dnb.chords import HALF_BARS, N_CHORDS

if TYPE_CHECKING:  # torch is imported only where a batch is built: tensorize stays numpy-only
    import torch

N_KEYS = 24  # 12 tonics x (major, minor)
DEFAULT_PROGRAM = 33  # GM finger bass


@dataclass(frozen=True)
class Field:
    """One batch field: torch dtype of the batch, numpy dtype on disk, shape after the batch axis."""

    torch_dtype: str  # name of the torch dtype of a batch
    numpy_dtype: type
    shape: tuple[int, ...]
    doc: str


FIELDS: dict[str, Field] = {
    "drums": Field("float32", np.uint8, (rep.DRUM_STEPS, rep.DRUM_CLASSES), "drum onset grid"),
    "roll": Field("float32", np.uint8, (rep.BASS_STEPS, rep.BASS_PITCHES), "bass onset roll"),
    "tokens": Field("int64", np.uint8, (rep.BASS_STEPS,), "bass tokens"),
    "tempo": Field("float32", np.float32, (), "log2(bpm / 120)"),
    "program": Field("int64", np.int64, (), "bass program index 0..8"),
    "key": Field("int64", np.int64, (), "tonic + 12 * minor"),
    "style": Field("int64", np.int64, (), "predicted drum style index"),
    "chords": Field("int64", np.uint8, (HALF_BARS,), "chord label per half bar, 0 = N"),
    "prev_tokens": Field("int64", np.uint8, (rep.BASS_STEPS,), "bass tokens of the previous window"),
    "prev_drums": Field("float32", np.uint8, (rep.DRUM_STEPS, rep.DRUM_CLASSES), "drum grid of the previous window"),
    "has_prev": Field("int64", np.uint8, (), "1 when the previous window exists and is contiguous"),
    "recall_tokens": Field("int64", np.uint8, (rep.BASS_STEPS,), "bass tokens of the recalled window"),
    "recall_drums": Field("float32", np.uint8, (rep.DRUM_STEPS, rep.DRUM_CLASSES), "drum grid of the recalled window"),
    "has_recall": Field("int64", np.uint8, (), "1 when there is a window to recall"),
    "position": Field("int64", np.int64, (), "window index within the song"),
    "song": Field("int64", np.int64, (), "song index"),
}


@dataclass(frozen=True)
class Source:
    """A window of the song's past a model may hear: the fields of its bass tokens, its drum
    grid and its presence flag."""

    tokens: str
    drums: str
    present: str


# The song's past, by conditioning label: taken only by the architectures that declare
# ``can_take_previous`` (``models.base.sample_song`` feeds them their own earlier output).
SOURCES: dict[str, Source] = {
    "previous": Source("prev_tokens", "prev_drums", "has_prev"),
    "recall": Source("recall_tokens", "recall_drums", "has_recall"),
}
# The conditioning inputs a model may be given.
LABELS = ("tempo", "program", "key", "style", "chords", *SOURCES)
CONTEXT = tuple(name for s in SOURCES.values() for name in (s.tokens, s.drums, s.present))  # their fields
RECALL_WINDOWS = 8  # recall among the windows 2..8 back (16 bars); chosen on validation songs


class Batch(TypedDict):
    """A batch of ``FIELDS`` (see the module docstring for shapes)."""

    drums: torch.Tensor
    roll: torch.Tensor
    tokens: torch.Tensor
    tempo: torch.Tensor
    program: torch.Tensor
    key: torch.Tensor
    style: torch.Tensor
    chords: torch.Tensor
    prev_tokens: torch.Tensor
    prev_drums: torch.Tensor
    has_prev: torch.Tensor
    recall_tokens: torch.Tensor
    recall_drums: torch.Tensor
    has_recall: torch.Tensor
    position: torch.Tensor
    song: torch.Tensor


@dataclass
class DataInfo:
    """What a model needs to know about the data to build itself."""

    n_programs: int = rep.BASS_PROGRAMS
    n_keys: int = N_KEYS
    n_styles: int = 1
    style_names: list[str] = field(default_factory=list)
    n_chords: int = N_CHORDS


def to_batch(arrays: dict[str, np.ndarray]) -> Batch:
    """Numpy arrays of every field -> the batch dict of tensors."""
    import torch

    return {name: torch.as_tensor(np.asarray(arrays[name]), dtype=getattr(torch, f.torch_dtype))
            for name, f in FIELDS.items()}


# --------------------------------------------------------------------------- label helpers


def tempo_feature(bpm: np.ndarray | float) -> np.ndarray:
    """Tempo feature: log2(bpm / 120), so 60 -> -1, 120 -> 0, 240 -> +1."""
    return np.log2(np.asarray(bpm, dtype=np.float64) / 120.0).astype(np.float32)


def tempo_bpm(feature: np.ndarray | float) -> np.ndarray:
    """Inverse of ``tempo_feature``: beats per minute (float64)."""
    return 120.0 * np.exp2(np.asarray(feature, dtype=np.float64))


def program_index(program: int, is_gm_bass: bool) -> int:
    """Conditioning index of a bass track's GM program: 32..39 -> 0..7; a track named bass -> 8."""
    return int(program) - 32 if is_gm_bass and 32 <= program <= 39 else 8


def program_of(index: int) -> int:
    """GM program to render a conditioning program index with (0..7 -> 32..39; 8 'named bass' -> 33)."""
    return 32 + int(index) if 0 <= int(index) < 8 else DEFAULT_PROGRAM


def conditioning_batch(
    drums: np.ndarray, bpm: np.ndarray, program: int, key: int | np.ndarray, style: np.ndarray,
    chords: np.ndarray | None = None, position: np.ndarray | None = None,
) -> Batch:
    """The batch of windows cut from a MIDI file (no targets: tokens and roll are zeros; no
    chords given: every half bar N; no earlier windows: ``models.base.sample_song`` writes
    the song window by window and fills them in)."""
    n = len(drums)
    arrays = {
        "drums": drums,
        "roll": np.zeros((n, rep.BASS_STEPS, rep.BASS_PITCHES), dtype=np.uint8),
        "tokens": np.zeros((n, rep.BASS_STEPS), dtype=np.uint8),
        "tempo": tempo_feature(bpm),
        "program": np.full(n, program_index(program, 32 <= program <= 39)),
        "key": np.full(n, key, dtype=np.int64) if np.ndim(key) == 0 else np.asarray(key, dtype=np.int64),
        "style": style,
        "chords": np.zeros((n, HALF_BARS), dtype=np.int64) if chords is None else chords,
        **no_context(n),
        "position": np.arange(n, dtype=np.int64) if position is None else np.asarray(position, dtype=np.int64),
        "song": np.zeros(n, dtype=np.int64),
    }
    return to_batch(arrays)


def previous_rows(start_ticks: np.ndarray, window_ticks: int) -> np.ndarray:
    """``[W]`` row of each window's previous window, -1 where it has none: the window just
    before it in the list when that one ends where it starts (the same 4/4 stretch)."""
    start_ticks = np.asarray(start_ticks, dtype=np.int64)
    prev = np.full(len(start_ticks), -1, dtype=np.int64)
    if len(start_ticks) > 1:
        follows = np.diff(start_ticks) == int(window_ticks)
        prev[1:] = np.where(follows, np.arange(len(start_ticks) - 1), -1)
    return prev


def no_context(n: int) -> dict[str, np.ndarray]:
    """The ``CONTEXT`` arrays of ``n`` windows without any past."""
    out = {}
    for source in SOURCES.values():
        out[source.tokens] = np.zeros((n, rep.BASS_STEPS), dtype=np.uint8)
        out[source.drums] = np.zeros((n, rep.DRUM_STEPS, rep.DRUM_CLASSES), dtype=np.uint8)
        out[source.present] = np.zeros(n, dtype=np.uint8)
    return out


def drum_agreement(drums: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``[N]`` Jaccard of two stacks of drum onset grids ``[N, ...]`` (1 for two empty grids):
    how much two windows' drums agree, for recalling a window and for ``repeat_matching``."""
    now, then = np.asarray(drums).reshape(len(drums), -1) > 0, np.asarray(other).reshape(len(other), -1) > 0
    inter = (now & then).sum(1)
    union = now.sum(1) + then.sum(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def recall_rows(previous_row: np.ndarray, drums: np.ndarray, depth: int = RECALL_WINDOWS) -> np.ndarray:
    """``[W]`` row of each window's recalled window, -1 where it has none: of the windows 2..``depth``
    steps back along ``previous_row`` (the same stretch), the one whose drum onsets agree best
    with its own (Jaccard; two empty grids agree fully), the most recent on a tie. It depends
    on the drums only, so a song written window by window knows it in advance."""
    previous_row = np.asarray(previous_row, dtype=np.int64)
    n = len(previous_row)
    grid = np.asarray(drums).reshape(n, -1) > 0
    best, best_sim = np.full(n, -1, dtype=np.int64), np.full(n, -1.0)
    back = np.where(previous_row >= 0, previous_row, -1)
    for _ in range(2, depth + 1):
        back = np.where(back >= 0, previous_row[np.maximum(back, 0)], -1)  # one more window back
        has = back >= 0
        if not has.any():
            break
        sim = drum_agreement(grid, grid[np.maximum(back, 0)])
        better = has & (sim > best_sim)  # strictly better: a tie keeps the more recent window
        best, best_sim = np.where(better, back, best), np.where(better, sim, best_sim)
    return best


def context_arrays(tokens: np.ndarray, drums: np.ndarray, previous_row: np.ndarray) -> dict[str, np.ndarray]:
    """The ``CONTEXT`` arrays of W windows of songs in order (``tokens [W, 64]``, ``drums
    [W, 32, 14]``, ``previous_row`` as ``previous_rows`` gives it)."""
    rows = {"previous": np.asarray(previous_row, dtype=np.int64), "recall": recall_rows(previous_row, drums)}
    out = {}
    for label, source in SOURCES.items():
        has = rows[label] >= 0
        safe = np.maximum(rows[label], 0)
        out[source.tokens] = np.where(has[:, None], tokens[safe], 0).astype(np.uint8)
        out[source.drums] = np.where(has[:, None, None], drums[safe], 0).astype(np.uint8)
        out[source.present] = has.astype(np.uint8)
    return out
