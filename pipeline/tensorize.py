"""Stage tensorize: song-level split, optional key normalisation and transposition
augmentation, and the model-ready tensors of ``dnb/data.py``.

Splits are drawn per song from its content hash, so a song never straddles two
splits and its split never depends on row order or on which other songs exist
(adding a corpus does not reshuffle the test set). Writes ``data/tensors/`` (the
three splits + ``meta.json``), ``data/stats.json`` and ``data/figures/pairs.png``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from dnb import chords as ch
from dnb import representation as rep
from dnb import tensors as split_files
from dnb.params import load_params
from dnb.schema import CONTEXT, FIELDS, N_KEYS, SOURCES, tempo_bpm, tempo_feature

SPLITS = ("train", "val", "test")
_HEX16 = re.compile(r"[0-9a-f]{16}")


# --------------------------------------------------------------------------- split


def song_unit(song_ids: list[str]) -> tuple[np.ndarray, int]:
    """(position of each song in [0, 1) from the first 8 hex digits of its id,
    number of ids that are not 16 hex chars: those are hashed with sha1 instead)."""
    unit = np.empty(len(song_ids), dtype=np.float64)
    bad = 0
    for i, song in enumerate(song_ids):
        if not _HEX16.fullmatch(song):
            bad += 1
            song = hashlib.sha1(song.encode()).hexdigest()
        unit[i] = int(song[:8], 16) / 16**8
    return unit, bad


def split_fractions(params: dict) -> np.ndarray:
    """Validated cumulative split edges (train, val, test)."""
    fractions = params["split"]
    if set(fractions) != set(SPLITS):
        raise ValueError(f"tensorize.split must have exactly the keys {SPLITS}, got {sorted(fractions)}")
    values = np.array([float(fractions[s]) for s in SPLITS])
    if (values < 0).any() or abs(values.sum() - 1.0) > 1e-6:
        raise ValueError(f"tensorize.split fractions must be >= 0 and sum to 1, got {fractions}")
    return np.cumsum(values)


def assign_splits(song_ids: list[str], params: dict) -> tuple[np.ndarray, int]:
    """(split index 0/1/2 per song, number of non-hex ids)."""
    unit, bad = song_unit(song_ids)
    edges = split_fractions(params)
    return np.minimum(np.searchsorted(edges, unit, side="right"), len(SPLITS) - 1), bad


# --------------------------------------------------------------------------- keys


def common_key_shift(keys: np.ndarray) -> np.ndarray:
    """Semitones (-6..+5, the smallest move) taking each key to C major / A minor."""
    keys = np.asarray(keys, dtype=np.int64)
    target = np.where(keys >= 12, 9, 0)
    return (target - keys % 12 + 6) % 12 - 6


def shift_keys(keys: np.ndarray, semitones: int | np.ndarray) -> np.ndarray:
    """Keys after transposing by ``semitones`` (mode unchanged)."""
    keys = np.asarray(keys, dtype=np.int64)
    return (keys % 12 + semitones) % 12 + 12 * (keys >= 12)


def augment_shifts(params: dict) -> list[int]:
    shifts = [int(s) for s in params.get("augment_semitones") or []]
    if any(s == 0 or abs(s) > 11 for s in shifts) or len(set(shifts)) != len(shifts):
        raise ValueError(f"tensorize.augment_semitones must be distinct non-zero ints in -11..11, got {shifts}")
    return shifts


# --------------------------------------------------------------------------- inputs


def load_inputs(interim: Path, classifier: Path) -> tuple[dict, pd.DataFrame, list[str]]:
    """(npz arrays, pairs + annotations frame, style class names); row counts must agree."""
    with np.load(interim / "pairs.npz") as data:
        arrays = {name: data[name] for name in ("drums", "tokens", "chords") + CONTEXT}
    shapes = {name: FIELDS[name].shape for name in ("drums", "tokens", "chords") + CONTEXT}
    for name, shape in shapes.items():
        if arrays[name].shape[1:] != shape:
            expected = ", ".join(map(str, ("N",) + shape))
            raise ValueError(f"pairs.npz {name} has shape {arrays[name].shape}, expected ({expected})")
    frame = pd.read_parquet(
        interim / "pairs.parquet",
        columns=["song_id", "corpus", "folder_genre", "window_index", "bpm", "program_index"],
    )
    notes = pd.read_parquet(interim / "annotations.parquet", columns=["key", "style_index"])
    sizes = {"pairs.npz drums": len(arrays["drums"]), "pairs.npz tokens": len(arrays["tokens"])}
    sizes |= {"pairs.parquet": len(frame), "annotations.parquet": len(notes)}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"interim files are not row-aligned: {sizes}")
    frame["key"] = notes["key"].to_numpy()
    frame["style_index"] = notes["style_index"].to_numpy()
    if classifier.suffix == ".json":  # the annotate report lists the classes: no sklearn import (~4 s)
        classes = json.loads(classifier.read_text())["classifier"]["classes"]
    else:  # data/style_classifier.npz (dnb.style): plain arrays, no pickle
        with np.load(classifier, allow_pickle=False) as bundle:
            classes = bundle["classes"].tolist()
    return arrays, frame, [str(g) for g in classes]


def bad_rows(arrays: dict, frame: pd.DataFrame, n_styles: int) -> tuple[np.ndarray, dict[str, int]]:
    """(mask of rows to drop, count per reason); each row counts under its first reason."""
    n = len(frame)
    tokens, drums = arrays["tokens"], arrays["drums"]
    checks = {  # whole-array max first: the per-row scan of 200 MB of drums only runs when needed
        "bad_tokens": (tokens >= rep.VOCAB_SIZE).any(axis=1) if n and tokens.max() >= rep.VOCAB_SIZE else False,
        "bad_prev_tokens": np.any([(arrays[s.tokens] >= rep.VOCAB_SIZE).any(axis=1) for s in SOURCES.values()], 0),
        "bad_drums": (drums > 1).any(axis=(1, 2)) if n and drums.max() > 1 else False,
        "bad_chords": (arrays["chords"] >= ch.N_CHORDS).any(axis=1),
        "bad_key": ~frame["key"].between(0, N_KEYS - 1).to_numpy(),
        "bad_style_index": ~frame["style_index"].between(0, n_styles - 1).to_numpy(),
        "bad_program": ~frame["program_index"].between(0, rep.BASS_PROGRAMS - 1).to_numpy(),
        "bad_bpm": ~(np.isfinite(frame["bpm"].to_numpy(dtype=np.float64)) & (frame["bpm"].to_numpy() > 0)),
    }
    drop = np.zeros(n, dtype=bool)
    counts = {}
    for reason, mask in checks.items():
        mask = np.broadcast_to(mask, n)
        counts[reason] = int((mask & ~drop).sum())
        drop |= mask
    return drop, counts


# --------------------------------------------------------------------------- tensors


def split_arrays(drums, tokens, bpm, program, key, style, chords, song, context: dict, position) -> dict:
    """The fields of ``dnb.schema.FIELDS`` with their documented dtypes (``context``: the
    ``CONTEXT`` arrays of the previous and the recalled window)."""
    tokens = np.ascontiguousarray(tokens, dtype=np.uint8)
    return {name: np.ascontiguousarray(context[name], dtype=np.uint8) for name in CONTEXT} | {
        "position": np.asarray(position, dtype=np.int64),
        "drums": np.ascontiguousarray(drums, dtype=np.uint8),
        "tokens": tokens,
        "tempo": tempo_feature(bpm),
        "program": np.asarray(program, dtype=np.int64),
        "key": np.asarray(key, dtype=np.int64),
        "style": np.asarray(style, dtype=np.int64),
        "chords": np.ascontiguousarray(chords, dtype=np.uint8),
        "song": np.asarray(song, dtype=np.int64),
    }


def augment(arrays: dict[str, np.ndarray], shifts: list[int]) -> dict[str, np.ndarray]:
    """The split followed by one transposed copy per shift (keys and chords moved with it)."""
    if not shifts:
        return arrays
    tokens = [arrays["tokens"]] + [rep.transpose_tokens(arrays["tokens"], s) for s in shifts]
    past = {src.tokens: np.concatenate([arrays[src.tokens]] + [rep.transpose_tokens(arrays[src.tokens], s)
                                                               for s in shifts])
            for src in SOURCES.values()}
    keys = [arrays["key"]] + [shift_keys(arrays["key"], s) for s in shifts]
    chords = [arrays["chords"]] + [ch.transpose_chords(arrays["chords"], s).astype(np.uint8) for s in shifts]
    reps = 1 + len(shifts)
    tiled = {k: np.concatenate([arrays[k]] * reps)
             for k in ("drums", "tempo", "program", "style", "song", "position", *CONTEXT) if k not in past}
    tokens = np.concatenate(tokens)
    return tiled | past | {"tokens": tokens, "key": np.concatenate(keys), "chords": np.concatenate(chords)}


# --------------------------------------------------------------------------- stats


def _hist(codes: np.ndarray, names: list[str]) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts) if c}


def repeat_rates(arrays: dict) -> dict:
    """How the real bass returns to its song's past, over the pairs with a previous window: the
    share whose line is the previous window's note for note, and the share whose line is the
    recalled window's but not the previous one's (what the recalled window adds)."""
    tokens = np.asarray(arrays["tokens"])
    has = np.asarray(arrays["has_prev"]) > 0
    same_previous = (tokens == np.asarray(arrays["prev_tokens"])).all(1) & has
    same_recalled = (tokens == np.asarray(arrays["recall_tokens"])).all(1) & (np.asarray(arrays["has_recall"]) > 0)
    n = int(has.sum())
    return {
        "pairs_with_previous_window": n,
        "line_of_previous_window": round(int(same_previous.sum()) / n, 4) if n else None,
        "line_of_recalled_window_only": round(int((same_recalled & ~same_previous).sum()) / n, 4) if n else None,
    }


def split_stats(arrays: dict, styles: list[str], corpora: list[str], folders: list[str], song_corpus, song_folder):
    """Counts, label histograms and note density of one written split."""
    n = len(arrays["tokens"])
    token_counts = np.bincount(arrays["tokens"].ravel(), minlength=rep.VOCAB_SIZE)
    bass_onsets = int(token_counts[rep.ONSET_OFFSET :].sum())
    steps = max(n * rep.BASS_STEPS, 1)
    bpm = tempo_bpm(arrays["tempo"])
    return {
        "pairs": n,
        "songs": int(len(np.unique(arrays["song"]))),
        "pairs_by_corpus": _hist(song_corpus[arrays["song"]], corpora),
        "style_histogram": _hist(arrays["style"], styles),
        "folder_genre_histogram": _hist(song_folder[arrays["song"]], folders),
        "key_histogram": _hist(arrays["key"], rep.KEY_NAMES),
        "density": {
            "bass_onsets_per_pair": round(bass_onsets / max(n, 1), 4),
            "drum_onsets_per_pair": round(int(arrays["drums"].sum(dtype=np.int64)) / max(n, 1), 4),
            "bass_onset_step_share": round(bass_onsets / steps, 4),
            "sustain_token_share": round(int(token_counts[rep.SUSTAIN]) / steps, 4),
            "rest_token_share": round(int(token_counts[rep.REST]) / steps, 4),
        },
        "pairs_with_previous_window": int(np.asarray(arrays["has_prev"]).sum()),
        "pairs_with_recalled_window": int(np.asarray(arrays["has_recall"]).sum()),
        "repeats": repeat_rates(arrays),
        "tempo_bpm": {
            "mean": round(float(bpm.mean()), 3) if n else None,
            "sd": round(float(bpm.std()), 3) if n else None,
        },
    }


# --------------------------------------------------------------------------- figure


def plot_pairs(arrays: dict, styles: list[str], songs: list[str], path: Path, n: int, seed: int) -> list[int]:
    """Piano rolls of ``n`` seeded test pairs (drum grid above, bass below); returns their rows."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, no GUI, a faster import

    total = len(arrays["tokens"])
    rows = sorted(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False).tolist())
    cols = max(len(rows), 1)
    fig = Figure(figsize=(4.2 * cols, 6.5))
    axes = fig.subplots(2, cols, squeeze=False, gridspec_kw={"height_ratios": [14, 24]})
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no test pairs", ha="center")
    for col, row in enumerate(rows):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(arrays["drums"][row].T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
        top.set_xticks(np.arange(0, rep.DRUM_STEPS + 1, 4) - 0.5, [str(i) for i in range(9)], fontsize=6)
        top.axvline(rep.DRUM_STEPS / 2 - 0.5, color="tab:red", lw=0.8)
        top.set_yticks(range(rep.DRUM_CLASSES), rep.DRUM_CLASS_NAMES if col == 0 else [], fontsize=6)
        bass = np.zeros((rep.BASS_PITCHES, rep.BASS_STEPS))
        for start, end, pitch in rep.token_notes(arrays["tokens"][row]):
            bass[pitch - rep.BASS_LOW, start:end] = 0.5
            bass[pitch - rep.BASS_LOW, start] = 1.0
        bottom.imshow(bass, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        bottom.set_xticks(np.arange(0, rep.BASS_STEPS + 1, 8) - 0.5, [str(i) for i in range(9)], fontsize=6)
        bottom.axvline(rep.BASS_STEPS / 2 - 0.5, color="tab:red", lw=0.8)
        octaves = np.arange(0, rep.BASS_PITCHES, 12)
        bottom.set_yticks(octaves, [f"E{1 + i}" for i in range(len(octaves))] if col == 0 else [], fontsize=6)
        bottom.set_xlabel("beat", fontsize=7)
        bpm = float(tempo_bpm(arrays["tempo"][row]))
        title = f"{songs[arrays['song'][row]][:8]}  {bpm:.0f} bpm\n{rep.KEY_NAMES[arrays['key'][row]]}"
        top.set_title(f"{title}, style: {styles[arrays['style'][row]]}", fontsize=8)
    fig.suptitle("Test pairs: drums (16ths) above, bass (32nds, dark = onset) below", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return rows


# --------------------------------------------------------------------------- stage


def run(
    params: dict,
    interim: Path = Path("data/interim"),
    classifier: Path = Path("data/annotate_report.json"),
    tensor_dir: Path = Path("data/tensors"),
    stats_path: Path = Path("data/stats.json"),
    figure_path: Path | None = Path("data/figures/pairs.png"),
) -> dict:
    """Write the split tensors, meta.json, stats.json and the figure; returns the stats."""
    started = time.perf_counter()
    split_fractions(params)
    shifts = augment_shifts(params)
    arrays, frame, styles = load_inputs(interim, classifier)
    drop, dropped = bad_rows(arrays, frame, len(styles))
    for reason, count in dropped.items():
        if count:
            print(f"tensorize: dropped {count} pairs: {reason}")
    drums, tokens, chords = arrays["drums"], arrays["tokens"], arrays["chords"]
    context = {name: arrays[name] for name in CONTEXT}
    if drop.any():
        keep = np.flatnonzero(~drop)
        frame = frame.iloc[keep].reset_index(drop=True)
        drums, tokens, chords = drums[keep], tokens[keep], chords[keep]
        context = {name: value[keep] for name, value in context.items()}

    # songs sorted by id: index, split, corpus and folder genre per song
    songs_cat = pd.Categorical(frame["song_id"].astype(str))
    songs = [str(s) for s in songs_cat.categories]
    song = songs_cat.codes.astype(np.int64)
    song_split, bad_ids = assign_splits(songs, params)
    if bad_ids:
        print(f"tensorize: {bad_ids} song ids are not 16 hex chars; split by their sha1 instead")
    first = np.unique(song, return_index=True)[1]
    corpus_cat = pd.Categorical(frame["corpus"].astype(str))
    folder_cat = pd.Categorical(frame["folder_genre"].fillna("").astype(str))
    corpora, folders = [str(c) for c in corpus_cat.categories], [str(f) for f in folder_cat.categories]
    song_corpus = corpus_cat.codes.astype(np.int64)[first]
    song_folder = folder_cat.codes.astype(np.int64)[first]

    key = frame["key"].to_numpy(dtype=np.int64)
    if params.get("transpose_to_common_key"):
        shift = common_key_shift(key)
        tokens, key = rep.transpose_tokens(tokens, shift), shift_keys(key, shift)
        for source in SOURCES.values():
            context[source.tokens] = rep.transpose_tokens(context[source.tokens], shift)
        chords = ch.transpose_chords(chords, shift).astype(np.uint8)

    row_split = song_split[song]
    tensor_dir.mkdir(parents=True, exist_ok=True)
    stats: dict = {"splits": {}}
    written = {}
    for index, name in enumerate(tqdm(SPLITS, desc="tensorize", unit="split")):
        rows = np.flatnonzero(row_split == index)
        out = split_arrays(
            drums[rows],
            tokens[rows],
            frame["bpm"].to_numpy(dtype=np.float64)[rows],
            frame["program_index"].to_numpy(dtype=np.int64)[rows],
            key[rows],
            frame["style_index"].to_numpy(dtype=np.int64)[rows],
            chords[rows],
            song[rows],
            {name: value[rows] for name, value in context.items()},
            frame["window_index"].to_numpy(dtype=np.int64)[rows],
        )
        if name == "train":
            out = augment(out, shifts)
        split_files.write_split(tensor_dir / f"{name}.npz", out)
        stats["splits"][name] = split_stats(out, styles, corpora, folders, song_corpus, song_folder)
        written[name] = out

    sizes = {name: len(written[name]["tokens"]) for name in SPLITS}
    meta = {
        "styles": styles,
        "keys": rep.KEY_NAMES,
        "songs": songs,
        "song_split": [SPLITS[i] for i in song_split],
        "song_corpus": [corpora[i] for i in song_corpus],
        "song_folder_genre": [folders[i] for i in song_folder],
        "split_sizes": sizes,
        "split_songs": {name: int((song_split == i).sum()) for i, name in enumerate(SPLITS)},
        "params": params,
    }
    (tensor_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    stats |= {
        "pairs_per_split": sizes,
        "songs_per_split": meta["split_songs"],
        "pairs_by_corpus_split": {
            c: {name: stats["splits"][name]["pairs_by_corpus"].get(c, 0) for name in SPLITS} for c in corpora
        },
        "input_pairs": int(len(drop)),
        "dropped": dropped,
        "non_hex_song_ids": bad_ids,
        "transposed_to_common_key": bool(params.get("transpose_to_common_key")),
        "augment_semitones": shifts,
        "train_pairs_before_augmentation": int((row_split == 0).sum()),
    }
    stats_path.parent.mkdir(parents=True, exist_ok=True)
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    if figure_path is not None:
        plot_pairs(written["test"], styles, songs, figure_path, int(params["figure_pairs"]), int(params["seed"]))
    print(
        f"tensorize: pairs {sizes}, songs {meta['split_songs']} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return stats


def main() -> None:
    params = load_params()["tensorize"]
    run(params)


if __name__ == "__main__":
    main()
