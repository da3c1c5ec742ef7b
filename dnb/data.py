"""Loading the tensorized splits as torch batches (the format every model consumes).

The split files ``data/tensors/<split>.npz`` are written and read by ``dnb.tensors``;
the batch fields are ``dnb.schema.FIELDS``; ``data/tensors/meta.json`` holds ``styles``,
``keys``, ``songs`` (content hashes) and the split sizes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from dnb import representation as rep
from dnb.chords import HALF_BARS, QUALITIES
from dnb.schema import N_KEYS, DataInfo, context_arrays, to_batch
from dnb.tensors import read_split


def load_split(tensor_dir: str | Path, split: str) -> dict[str, torch.Tensor]:
    """One split as a single batch dict of tensors."""
    return to_batch(read_split(Path(tensor_dir) / f"{split}.npz"))


def load_meta(tensor_dir: str | Path) -> dict:
    return json.loads((Path(tensor_dir) / "meta.json").read_text())


def data_info(tensor_dir: str | Path) -> DataInfo:
    styles = load_meta(tensor_dir)["styles"]
    return DataInfo(n_programs=rep.BASS_PROGRAMS, n_keys=N_KEYS, n_styles=max(1, len(styles)), style_names=styles)


def batch_size_of(batch: dict[str, torch.Tensor]) -> int:
    return int(batch["tokens"].shape[0])


def subset(batch: dict[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in batch.items()}


def iterate_batches(
    data: dict[str, torch.Tensor],
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    limit: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Mini-batches of a split; shuffled with ``generator`` for reproducibility. ``limit``
    > 0 stops after that many pairs (with shuffling: a fresh random draw of that many)."""
    n = batch_size_of(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if limit > 0:
        order = order[:limit]
    for start in range(0, len(order), batch_size):
        yield subset(data, order[start : start + batch_size])


def synthetic_split(n: int, seed: int = 0, n_styles: int = 3) -> dict[str, torch.Tensor]:
    """A small random split with the right shapes and a learnable drum->bass
    relation (bass onsets on kicks, pitch from the key): for unit tests only."""
    rng = np.random.default_rng(seed)
    drums = (rng.random((n, rep.DRUM_STEPS, rep.DRUM_CLASSES)) < 0.1).astype(np.uint8)
    drums[:, ::8, rep.KICK] = 1
    key = rng.integers(0, N_KEYS, n)
    tonic_chord = 1 + (key % 12) * len(QUALITIES) + QUALITIES.index("min") * (key >= 12)  # the key's tonic triad
    tokens = np.zeros((n, rep.BASS_STEPS), dtype=np.uint8)
    kick_steps = drums[:, :, rep.KICK].nonzero()
    pitch_index = (key[kick_steps[0]] % 12 - rep.BASS_LOW) % 12  # the tonic in the lowest octave
    tokens[kick_steps[0], kick_steps[1] * 2] = rep.ONSET_OFFSET + pitch_index
    tokens[kick_steps[0], kick_steps[1] * 2 + 1] = rep.SUSTAIN
    position = np.arange(n) % 4  # songs of 4 consecutive windows: rows 4s..4s+3
    previous_row = np.where(position > 0, np.arange(n) - 1, -1)
    arrays = {
        **context_arrays(tokens, drums, previous_row),
        "position": position,
        "drums": drums,
        "roll": rep.tokens_to_roll(tokens),
        "tokens": tokens,
        "tempo": rng.normal(0, 0.3, n).astype(np.float32),
        "program": rng.integers(0, rep.BASS_PROGRAMS, n),
        "key": key,
        "style": rng.integers(0, n_styles, n),
        "chords": np.repeat(tonic_chord[:, None], HALF_BARS, axis=1),
        "song": np.arange(n) // 4,
    }
    return to_batch(arrays)
