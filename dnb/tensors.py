"""The split files ``data/tensors/<split>.npz``: one writer and one reader, numpy only
(no torch import, so that ``pipeline.tensorize`` stays fast).

Stored per split::

    drum_bits uint8   [N, 32, 2]   drum grid [N, 32, 14] bit-packed along the drum classes
    roll_bits uint8   [N, 64, 5]   onset roll [N, 64, 36] bit-packed along pitch
    tokens    uint8   [N, 64]
    tempo     float32 [N]   log2(bpm / 120)
    program   int64   [N]   0..8
    key       int64   [N]   0..23
    style     int64   [N]   index into meta.json "styles"
    chords    uint8   [N, 4] chord label per half bar (dnb.chords)
    prev_tokens uint8 [N, 64]   bass tokens of the previous window (zeros without one)
    prev_drum_bits uint8 [N, 32, 2] its drum grid, bit-packed
    has_prev  uint8   [N]   1 when the previous window exists and is contiguous
    recall_tokens, recall_drum_bits, has_recall: the same for the recalled window
    position  int64   [N]   window index within the song
    song      int64   [N]   index into meta.json "songs" (song-level bootstrap)

The batch fields themselves are defined once, in ``dnb.schema.FIELDS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnb import representation as rep
from dnb.schema import FIELDS, SOURCES

GRIDS = ("drums", *(s.drums for s in SOURCES.values()))  # drum grids, stored bit-packed like the roll
PACKED = {"roll": "roll_bits"} | {grid: grid.replace("drums", "drum_bits") for grid in GRIDS}
STORED = tuple(PACKED.get(name, name) for name in FIELDS)  # the arrays of a split file


def write_split(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a split (the ``FIELDS`` arrays; a ``roll`` among them is not read: the roll
    is a function of the tokens) as an uncompressed npz. The binary drum grid and roll
    are stored bit-packed (1.3 GB of tensors of the large corpus become 0.2 GB). Equal
    arrays give equal bytes."""
    out = {k: np.asarray(arrays[k], dtype=f.numpy_dtype) for k, f in FIELDS.items() if k not in PACKED}
    for grid in GRIDS:
        out[PACKED[grid]] = np.packbits(np.asarray(arrays[grid], dtype=np.uint8), axis=-1)
    out["roll_bits"] = rep.tokens_to_packed_roll(out["tokens"])
    np.savez(path, **{k: out[k] for k in STORED})


def read_split(path: str | Path, rows=None) -> dict[str, np.ndarray]:
    """The ``FIELDS`` arrays of a split file (optionally only ``rows``), unpacked."""
    with np.load(Path(path)) as data:
        arrays = {k: data[k] if rows is None else data[k][rows] for k in STORED}
    for grid in GRIDS:
        arrays[grid] = np.unpackbits(arrays.pop(PACKED[grid]), axis=-1, count=rep.DRUM_CLASSES)
    arrays["roll"] = rep.unpack_roll(arrays.pop("roll_bits"))
    return {k: arrays[k] for k in FIELDS}
