"""The seeded test loops shown in the paper's piano rolls and on the listening page, and
every trained model's sample of them (shared by the ``evaluate`` and ``demo`` stages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dnb import data
from dnb import representation as rep
from dnb.corpus import SHAREABLE_CORPORA
from dnb.tensors import read_split
from models.checkpoint import load_trained


def pick_loops(tokens: np.ndarray, drums: np.ndarray, songs: np.ndarray, n: int, seed: int,
               shown: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n`` test pairs with a busy drum part and a real bass line (>= 4 onsets), from
    distinct songs as long as there are enough songs, in a seeded order: the first ``k`` of ``n``
    do not depend on ``n``. ``shown`` [N] bool: the pairs whose notes may be shown (none else is picked)."""
    order = np.random.default_rng(seed).permutation(len(tokens))
    busy = ((tokens >= rep.ONSET_OFFSET).sum(axis=1) >= 4) & (drums.reshape(len(drums), -1).sum(axis=1) >= 8)
    if shown is not None:
        busy &= np.asarray(shown, dtype=bool)
    picked, seen = [], set()
    for i in order:
        if busy[i] and int(songs[i]) not in seen and len(picked) < n:
            picked.append(int(i))
            seen.add(int(songs[i]))
    for i in order:  # fewer songs than loops: fill with other pairs
        if busy[i] and int(i) not in picked and len(picked) < n:
            picked.append(int(i))
    return np.array(picked, dtype=np.int64)


def shareable_songs(tensor_dir: Path) -> np.ndarray | None:
    """``[songs]`` bool: the songs of ``SHAREABLE_CORPORA``, whose notes a committed figure may show;
    None when ``meta.json`` names no corpus per song (tensors built by hand: no restriction)."""
    corpus = data.load_meta(tensor_dir).get("song_corpus")
    return None if corpus is None else np.array([c in SHAREABLE_CORPORA for c in corpus], dtype=bool)


def load_loops(tensor_dir: Path, n: int, seed: int) -> dict:
    """The picked test loops (of shareable corpora only) as a batch dict of tensors."""
    path = Path(tensor_dir) / "test.npz"
    if not path.exists():
        raise SystemExit(f"no test tensors at {path}: run `dvc repro tensorize` first")
    split = read_split(path)
    shown = shareable_songs(tensor_dir)
    index = pick_loops(split["tokens"], split["drums"], split["song"], n, seed,
                       None if shown is None else shown[split["song"]])
    return data.to_batch({k: v[index] for k, v in split.items()})


def sample_models(names: list[str], batch: dict, checkpoint_dir: Path, seed: int, temperature: float = 1.0) -> dict:
    """{name: tokens [B, 64] (first sample, seeded) or None when the checkpoint is missing}."""
    out = {}
    for name in names:
        path = Path(checkpoint_dir) / f"{name}.pt"
        if not path.exists():
            print(f"missing checkpoint {path}: no sample of {name}")
            out[name] = None
            continue
        model = load_trained(path)
        with torch.no_grad():
            tokens = model.sample(batch, k=1, temperature=temperature, generator=torch.Generator().manual_seed(seed))
        out[name] = tokens[:, 0].cpu().numpy().astype(np.int64)
    return out
