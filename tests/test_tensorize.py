"""Stage tensorize on a tiny synthetic interim folder: song-level split, key
normalisation, augmentation, byte-identical outputs and the dnb.data format."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dnb import data
from dnb import representation as rep
from dnb.chords import HALF_BARS, N_CHORDS
from dnb.schema import FIELDS, context_arrays
from dnb.tensors import STORED, read_split
from pipeline import tensorize

torch.set_num_threads(1)
GENRES = ["funk", "jazz", "rock"]
PARAMS = {
    "split": {"train": 0.6, "val": 0.2, "test": 0.2},
    "transpose_to_common_key": False,
    "augment_semitones": [],
    "figure_pairs": 2,
    "seed": 0,
}


def song_ids(names: list[str]) -> list[str]:
    return [hashlib.sha1(n.encode()).hexdigest()[:16] for n in names]


def context_of(drums: np.ndarray, tokens: np.ndarray, windows: int) -> dict:
    """The past-window arrays of songs of ``windows`` consecutive rows each."""
    rows = np.arange(len(tokens))
    return context_arrays(tokens, drums, np.where(rows % windows > 0, rows - 1, -1))


def make_interim(root: Path, songs: list[str], windows: int = 4, seed: int = 0) -> dict:
    """Random but valid interim files (pairs.npz/.parquet, annotations, classifier)."""
    rng = np.random.default_rng(seed)
    n = len(songs) * windows
    drums = (rng.random((n, rep.DRUM_STEPS, rep.DRUM_CLASSES)) < 0.15).astype(np.uint8)
    tokens = rng.choice([rep.REST, rep.SUSTAIN], size=(n, rep.BASS_STEPS)).astype(np.uint8)
    onsets = rng.random((n, rep.BASS_STEPS)) < 0.2
    tokens[onsets] = rep.ONSET_OFFSET + rng.integers(0, rep.BASS_PITCHES, onsets.sum())
    song_keys = rng.integers(0, 24, len(songs))
    ids = np.repeat(songs, windows)
    frame = pd.DataFrame(
        {
            "song_id": ids,
            "corpus": np.where(np.arange(n) % 3 == 0, "groove", "freedoom"),
            "path": [f"{s}.mid" for s in ids],
            "folder_genre": np.repeat(rng.choice(["", "rock", "pop"], len(songs)), windows),
            "window_index": np.tile(np.arange(windows), len(songs)),
            "bpm": np.repeat(rng.uniform(70, 180, len(songs)), windows),
            "bass_program": 33,
            "program_index": rng.integers(0, rep.BASS_PROGRAMS, n),
            "n_drum_onsets": drums.sum(axis=(1, 2)),
            "n_bass_onsets": (tokens >= rep.ONSET_OFFSET).sum(axis=1),
        }
    )
    style = rng.integers(0, len(GENRES), n)
    chords = rng.integers(0, N_CHORDS, (n, HALF_BARS)).astype(np.uint8)
    notes = pd.DataFrame(
        {
            "key": np.repeat(song_keys, windows),
            "key_name": [rep.KEY_NAMES[k] for k in np.repeat(song_keys, windows)],
            "key_confidence": 0.5,
            "style": [GENRES[s] for s in style],
            "style_index": style,
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "pairs.npz", drums=drums, tokens=tokens, chords=chords, **context_of(drums, tokens, windows))
    frame.to_parquet(root / "pairs.parquet", index=False)
    notes.to_parquet(root / "annotations.parquet", index=False)
    np.savez(root / "classifier.npz", classes=np.array(GENRES), feature_version=1)
    return {"drums": drums, "tokens": tokens, "chords": chords, "frame": frame, "key": notes["key"].to_numpy()}


def run(root: Path, out: Path, params: dict | None = None, figure: bool = False) -> dict:
    return tensorize.run(
        params or PARAMS,
        interim=root,
        classifier=root / "classifier.npz",
        tensor_dir=out / "tensors",
        stats_path=out / "stats.json",
        figure_path=out / "pairs.png" if figure else None,
    )


def load(out: Path) -> tuple[dict, dict]:
    splits = {}
    for name in tensorize.SPLITS:
        with np.load(out / "tensors" / f"{name}.npz") as f:
            assert tuple(f.files) == STORED
        splits[name] = read_split(out / "tensors" / f"{name}.npz")
    return splits, json.loads((out / "tensors" / "meta.json").read_text())


def input_rows(meta: dict, fixture: dict, split: str) -> np.ndarray:
    """Input rows of a split in input order (the stage keeps that order)."""
    split_of = dict(zip(meta["songs"], meta["song_split"]))
    return np.flatnonzero(fixture["frame"]["song_id"].map(split_of).to_numpy() == split)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("interim")
    return root, make_interim(root, song_ids([f"song{i}" for i in range(30)]))


def test_transpose_tokens_exact_values():
    e1, top = rep.ONSET_OFFSET + 0, rep.ONSET_OFFSET + 35  # E1 (28), D#4 (63)
    tokens = np.array([rep.REST, rep.SUSTAIN, e1, top], dtype=np.uint8)
    # up one: E1 -> F1; D#4 -> E4 = 64, folded an octave down to E3 (52, index 24)
    assert rep.transpose_tokens(tokens, 1).tolist() == [0, 1, 3, 26]
    # down one: E1 -> D#1 = 27, folded up to D#2 (39, index 11); D#4 -> D4 (index 34)
    assert rep.transpose_tokens(tokens, -1).tolist() == [0, 1, 13, 36]
    batch = np.stack([tokens, tokens, tokens])
    per_row = rep.transpose_tokens(batch, np.array([1, -1, 0]))
    assert per_row.dtype == np.uint8
    assert per_row[0].tolist() == [0, 1, 3, 26] and per_row[1].tolist() == [0, 1, 13, 36]
    assert per_row[2].tolist() == tokens.tolist()


def test_common_key_shift_reaches_c_major_or_a_minor():
    keys = np.arange(24)
    shift = tensorize.common_key_shift(keys)
    assert shift.min() >= -6 and shift.max() <= 5
    assert tensorize.shift_keys(keys, shift).tolist() == [0] * 12 + [21] * 12
    assert shift[7] == 5 and shift[5] == -5 and shift[6] == -6  # G up to C, F down to C
    assert shift[12 + 4] == 5 and shift[12 + 11] == -2  # E minor up to A minor, B minor down


def test_split_depends_only_on_the_song(tmp_path):
    songs = song_ids([f"s{i}" for i in range(2000)])
    split, bad = tensorize.assign_splits(songs, PARAMS)
    assert bad == 0
    assert 0.55 < (split == 0).mean() < 0.65 and 0.15 < (split == 2).mean() < 0.25
    others = songs[500:1500][::-1] + song_ids([f"new{i}" for i in range(300)])
    split2, _ = tensorize.assign_splits(others, PARAMS)
    before = dict(zip(songs, split))
    assert all(before[s] == v for s, v in zip(others, split2) if s in before)
    # the stage agrees: drop a third of the songs, add new ones, shuffle rows
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    names = [f"song{i}" for i in range(24)]
    make_interim(root_a, song_ids(names))
    fixture_b = make_interim(root_b, song_ids(names[8:] + ["x1", "x2", "x3"]), seed=5)
    shuffled = np.random.default_rng(0).permutation(len(fixture_b["frame"]))
    context_b = context_of(fixture_b["drums"], fixture_b["tokens"], 4)
    np.savez(root_b / "pairs.npz", drums=fixture_b["drums"][shuffled], tokens=fixture_b["tokens"][shuffled],
             chords=fixture_b["chords"][shuffled], **{k: v[shuffled] for k, v in context_b.items()})
    fixture_b["frame"].iloc[shuffled].to_parquet(root_b / "pairs.parquet", index=False)
    pd.read_parquet(root_b / "annotations.parquet").iloc[shuffled].to_parquet(root_b / "annotations.parquet")
    run(root_a, tmp_path / "out_a")
    run(root_b, tmp_path / "out_b")
    meta_a, meta_b = load(tmp_path / "out_a")[1], load(tmp_path / "out_b")[1]
    split_a = dict(zip(meta_a["songs"], meta_a["song_split"]))
    shared = [(s, v) for s, v in zip(meta_b["songs"], meta_b["song_split"]) if s in split_a]
    assert len(shared) == 16 and all(split_a[s] == v for s, v in shared)


def test_outputs_match_dnb_data_and_no_song_in_two_splits(fixture, tmp_path):
    root, fx = fixture
    stats = run(root, tmp_path, figure=True)
    splits, meta = load(tmp_path)
    assert meta["styles"] == GENRES and meta["keys"] == rep.KEY_NAMES and meta["songs"] == sorted(meta["songs"])
    song_sets = {name: set(arrays["song"].tolist()) for name, arrays in splits.items()}
    assert not (song_sets["train"] & song_sets["val"] or song_sets["train"] & song_sets["test"])
    assert not song_sets["val"] & song_sets["test"]
    for name, arrays in splits.items():
        assert all(meta["song_split"][s] == name for s in song_sets[name])
        n = len(arrays["tokens"])
        assert n == meta["split_sizes"][name] == stats["pairs_per_split"][name] > 0
        assert arrays["drums"].shape == (n, 32, 14) and arrays["drums"].dtype == np.uint8
        assert arrays["roll"].shape == (n, 64, 36) and arrays["roll"].dtype == np.uint8
        assert arrays["tokens"].shape == (n, 64) and arrays["tokens"].dtype == np.uint8
        assert arrays["tempo"].dtype == np.float32
        assert all(arrays[k].dtype == np.int64 for k in ("program", "key", "style", "song"))
        assert np.array_equal(arrays["roll"], rep.tokens_to_roll(arrays["tokens"]))
        rows = input_rows(meta, fx, name)
        assert np.array_equal(arrays["drums"], fx["drums"][rows])
        assert np.array_equal(arrays["tokens"], fx["tokens"][rows])
        assert np.allclose(arrays["tempo"], np.log2(fx["frame"]["bpm"].to_numpy()[rows] / 120))
        assert [meta["songs"][s] for s in arrays["song"]] == fx["frame"]["song_id"].to_numpy()[rows].tolist()
        batch = data.load_split(tmp_path / "tensors", name)
        assert list(batch) == list(FIELDS) and batch["roll"].shape == (n, 64, 36)
    assert sum(meta["split_sizes"].values()) == len(fx["tokens"]) == stats["input_pairs"]
    train = splits["train"]
    density = stats["splits"]["train"]["density"]
    onsets = (train["tokens"] >= rep.ONSET_OFFSET).sum()
    assert density["bass_onsets_per_pair"] == round(onsets / len(train["tokens"]), 4)
    assert density["rest_token_share"] == round((train["tokens"] == rep.REST).mean(), 4)
    assert data.data_info(tmp_path / "tensors").n_styles == 3
    assert (tmp_path / "pairs.png").read_bytes()[:4] == b"\x89PNG"


def test_same_params_give_byte_identical_files(fixture, tmp_path, monkeypatch):
    root, _ = fixture
    run(root, tmp_path / "one")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400)  # a later run, a day later
    run(root, tmp_path / "two")
    names = [f"tensors/{s}.npz" for s in tensorize.SPLITS] + ["tensors/meta.json", "stats.json"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_common_key_keeps_pitch_classes_relative_to_the_tonic(fixture, tmp_path):
    root, fx = fixture
    stats = run(root, tmp_path, PARAMS | {"transpose_to_common_key": True})
    splits, meta = load(tmp_path)
    assert set(stats["splits"]["train"]["key_histogram"]) <= {"C major", "A minor"}
    for name, arrays in splits.items():
        assert set(np.unique(arrays["key"]).tolist()) <= {0, 21}
        rows = input_rows(meta, fx, name)
        old, new = fx["tokens"][rows], arrays["tokens"]
        assert np.array_equal(old >= rep.ONSET_OFFSET, new >= rep.ONSET_OFFSET)  # rhythm untouched
        assert np.array_equal(old < rep.ONSET_OFFSET, new < rep.ONSET_OFFSET)
        assert np.array_equal(old[old < 2], new[new < 2])
        onset = old >= rep.ONSET_OFFSET
        old_tonic = np.broadcast_to((fx["key"][rows] % 12)[:, None], old.shape)[onset]
        new_tonic = np.broadcast_to((arrays["key"] % 12)[:, None], new.shape)[onset]
        old_rel = (old[onset].astype(int) + rep.BASS_LOW - old_tonic) % 12
        new_rel = (new[onset].astype(int) + rep.BASS_LOW - new_tonic) % 12
        assert np.array_equal(old_rel, new_rel)
        moved = np.abs(new[onset].astype(int) - old[onset].astype(int))
        assert moved.max() <= 12 and (moved > 0).any()


def test_augmentation_only_touches_train(fixture, tmp_path):
    root, _ = fixture
    run(root, tmp_path / "plain")
    stats = run(root, tmp_path / "aug", PARAMS | {"augment_semitones": [-1, 2]})
    plain, _ = load(tmp_path / "plain")
    aug, meta = load(tmp_path / "aug")
    for name in ("val", "test"):
        assert (tmp_path / "plain/tensors" / f"{name}.npz").read_bytes() == (
            tmp_path / "aug/tensors" / f"{name}.npz"
        ).read_bytes()
    n = len(plain["train"]["tokens"])
    assert len(aug["train"]["tokens"]) == 3 * n == meta["split_sizes"]["train"]
    assert stats["train_pairs_before_augmentation"] == n
    for k in FIELDS:
        assert np.array_equal(aug["train"][k][:n], plain["train"][k]), k
    for block, shift in ((1, -1), (2, 2)):
        part = {k: v[block * n : (block + 1) * n] for k, v in aug["train"].items()}
        assert np.array_equal(part["tokens"], rep.transpose_tokens(plain["train"]["tokens"], shift))
        assert np.array_equal(part["roll"], rep.tokens_to_roll(part["tokens"]))
        assert np.array_equal(part["key"] % 12, (plain["train"]["key"] + shift) % 12)
        assert np.array_equal(part["key"] >= 12, plain["train"]["key"] >= 12)
        assert np.array_equal(part["drums"], plain["train"]["drums"])
        assert np.array_equal(part["song"], plain["train"]["song"])
        # the previous window moves with the bass it precedes
        assert np.array_equal(part["prev_tokens"], rep.transpose_tokens(plain["train"]["prev_tokens"], shift))
        assert np.array_equal(part["has_prev"], plain["train"]["has_prev"])
        assert np.array_equal(part["recall_tokens"], rep.transpose_tokens(plain["train"]["recall_tokens"], shift))
        assert np.array_equal(part["has_recall"], plain["train"]["has_recall"])
        assert plain["train"]["has_recall"].any()


def test_bad_rows_are_counted_not_fatal(tmp_path):
    root = tmp_path / "interim"
    fx = make_interim(root, song_ids([f"b{i}" for i in range(10)]))
    tokens = fx["tokens"].copy()
    tokens[3, 5] = 99  # outside the 38-token vocabulary
    np.savez(root / "pairs.npz", drums=fx["drums"], tokens=tokens, chords=fx["chords"],
             **context_of(fx["drums"], fx["tokens"], 4))
    notes = pd.read_parquet(root / "annotations.parquet")
    notes.loc[7, "key"] = 30
    notes.loc[3, "key"] = 31  # same row as the bad token: counted once
    notes.loc[11, "style_index"] = 3
    notes.to_parquet(root / "annotations.parquet", index=False)
    stats = run(root, tmp_path / "out")
    assert stats["dropped"]["bad_tokens"] == 1 and stats["dropped"]["bad_key"] == 1
    assert stats["dropped"]["bad_style_index"] == 1 and sum(stats["dropped"].values()) == 3
    assert sum(stats["pairs_per_split"].values()) == len(tokens) - 3


def test_bad_params_and_misaligned_inputs_are_clear(fixture, tmp_path):
    root, _ = fixture
    with pytest.raises(ValueError, match="sum to 1"):
        run(root, tmp_path, PARAMS | {"split": {"train": 0.8, "val": 0.1, "test": 0.2}})
    with pytest.raises(ValueError, match="augment_semitones"):
        run(root, tmp_path, PARAMS | {"augment_semitones": [0]})
    bad = tmp_path / "bad"
    make_interim(bad, song_ids(["a", "b"]))
    pd.read_parquet(bad / "annotations.parquet").iloc[:-1].to_parquet(bad / "annotations.parquet")
    with pytest.raises(ValueError, match="row-aligned"):
        run(bad, tmp_path)
    np.savez(bad / "pairs.npz", drums=np.zeros((8, 32, 13), np.uint8), tokens=np.zeros((8, 64), np.uint8),
             chords=np.zeros((8, 4), np.uint8), **context_of(np.zeros((8, 32, 14)), np.zeros((8, 64)), 4))
    with pytest.raises(ValueError, match=r"expected \(N, 32, 14\)"):
        run(bad, tmp_path)
