"""Stage extract: cut (drum grid, bass tokens) pairs from every MIDI file of the corpora.

Files are de-duplicated by content hash across corpora (the first by corpus order, then
path, is kept), parsed with symusic in ``workers`` processes and cut into 2-bar 4/4
windows by ``dnb.representation``. Bad input never stops the stage: every file that
yields no pair is counted under exactly one reason (``REASONS``).

Outputs (row i of pairs.npz is row i of pairs.parquet; rows sorted by corpus order,
path, window index), byte-identical for the same params and corpora:

* ``data/interim/pairs.npz``: ``drums`` uint8 [N, 32, 14], ``tokens`` uint8 [N, 64],
  ``chords`` uint8 [N, 4] (one ``dnb.chords`` label per half bar, from the non-bass tracks),
  ``prev_tokens`` uint8 [N, 64], ``prev_drums`` uint8 [N, 32, 14], ``has_prev`` uint8 [N]: the
  previous 2-bar window of the song when it is contiguous (read from the song, so a window
  dropped as sparse still serves as the next one's context), and ``recall_tokens``,
  ``recall_drums``, ``has_recall``: the earlier window recalled by ``dnb.schema.recall_rows``
* ``data/interim/pairs.parquet``: song_id, corpus, path, folder_genre, window_index,
  bpm, bass_program (GM), program_index (0..8), n_drum_onsets, n_bass_onsets
* ``data/interim/songs.parquet``: one row per song with a pair: song_id, corpus, path,
  folder_genre, n_pairs, tpq, pc_0..pc_11 (duration-weighted pitch-class histogram)
* ``data/extract_report.json``: counts by reason, duplicates, pairs by corpus and genre,
  chord labels by quality and how often the real bass plays their root / a chord tone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from dnb import chords as ch
from dnb import representation as rep
from dnb.corpus import folder_genre, is_midi, iter_files, relative_names
from dnb.keys import pitch_class_histogram
from dnb.midi import Unreadable, read_midi
from dnb.params import load_params
from dnb.schema import CONTEXT, context_arrays, no_context, previous_rows, program_index

# Every file that yields no pair gets exactly one of these, checked in this order.
REASONS = (
    "unreadable",  # not a MIDI file, truncated, corrupt: anything symusic raises on
    "zero_ticks_per_beat",  # header division of 0 ticks per quarter
    "zero_tracks",  # no track with a note
    "too_many_notes",  # more than max_notes notes
    "too_long",  # more than max_windows 2-bar windows (guards memory against absurd end times)
    "no_drums",
    "no_bass",
    "no_four_four",  # no 4/4 stretch at all (e.g. only 3/4)
    "too_short",  # 4/4 stretches, none of them 2 bars long
    "absurd_tempo",  # every window's tempo outside [min_bpm, max_bpm]
    "no_dense_window",  # every remaining window under min_drum_onsets / min_bass_onsets
    "failed",  # an unexpected error while cutting windows (a bug: see the examples)
)
EXAMPLES = 5
SONG_COLUMNS = ("song_id", "corpus", "path", "folder_genre")


def process_file(data: bytes, params: dict) -> dict:
    """Pairs of one MIDI file, or ``{"reason": ...}`` when it yields none. Runs in a worker."""
    try:  # RMID unwrapped, out-of-range data bytes clamped; truncated files stay unreadable (see dnb.midi)
        score, how = read_midi(data, repair=False)
    except Unreadable:
        return {"reason": "unreadable"}
    sanitized = how == "sanitized"
    try:
        out = _process_score(score, params)
    except Exception as err:  # a bug, not bad input: counted, shown in the report, never fatal
        out = {"reason": "failed", "error": f"{type(err).__name__}: {err}"}
    out["sanitized"] = sanitized
    return out


def _process_score(score, params: dict) -> dict:
    tpq = int(score.tpq)
    if tpq <= 0:
        return {"reason": "zero_ticks_per_beat"}
    if not any(len(t.notes) for t in score.tracks):
        return {"reason": "zero_tracks"}
    if score.note_num() > params["max_notes"]:
        return {"reason": "too_many_notes"}
    if int(score.end()) // (rep.QUARTERS_PER_WINDOW * tpq) > params["max_windows"]:
        return {"reason": "too_long"}
    drum_tracks, bass_track, is_gm = rep.pick_tracks(score)
    if not drum_tracks:
        return {"reason": "no_drums"}
    if bass_track is None:
        return {"reason": "no_bass"}
    try:
        win = rep.score_windows(score)
    except rep.NotFourFour:
        spans = rep.four_four_segments(score, max(int(t.end()) for t in score.tracks))
        return {"reason": "too_short" if spans else "no_four_four"}
    n_drum = win.drums.reshape(len(win.drums), -1).sum(axis=1, dtype=np.int64)
    n_bass = (win.tokens >= rep.ONSET_OFFSET).sum(axis=1, dtype=np.int64)
    tempo_ok = (win.bpm >= params["min_bpm"]) & (win.bpm <= params["max_bpm"])
    dense = (n_drum >= params["min_drum_onsets"]) & (n_bass >= params["min_bass_onsets"])
    keep = tempo_ok & dense
    out = {
        "reason": None,
        "dropped_tempo": int((~tempo_ok).sum()),
        "dropped_sparse": int((tempo_ok & ~dense).sum()),
    }
    if not keep.any():
        out["reason"] = "absurd_tempo" if not tempo_ok.any() else "no_dense_window"
        return out
    program = int(bass_track.program)
    previous = previous_rows(win.start_ticks, rep.QUARTERS_PER_WINDOW * tpq)
    context = context_arrays(win.tokens, win.drums, previous)  # over every window: dropped ones too
    out |= {name: value[keep] for name, value in context.items()} | {
        "drums": win.drums[keep],
        "tokens": win.tokens[keep],
        "chords": ch.window_chords(score, win.start_ticks[keep], bass_track),
        "bpm": win.bpm[keep].astype(np.float64),
        "index": win.index[keep],
        "n_drum": n_drum[keep],
        "n_bass": n_bass[keep],
        "program": program,
        "program_index": program_index(program, is_gm),
        "tpq": tpq,
        "pc": pitch_class_histogram(score),
    }
    return out


_PARAMS: dict = {}


def _init_worker(params: dict) -> None:
    global _PARAMS
    _PARAMS = params


def _work(data: bytes) -> dict:
    return process_file(data, _PARAMS)


def _table(columns: dict[str, tuple[list | np.ndarray, pa.DataType]]) -> pa.Table:
    return pa.table({name: pa.array(values, type=kind) for name, (values, kind) in columns.items()})


def run(params: dict, out_dir: Path, report_path: Path | None = None) -> dict:
    """Extract every corpus of ``params["corpora"]`` into ``out_dir``; returns the report
    (also written to ``report_path``, default ``out_dir/extract_report.json``)."""
    start = time.time()
    corpora = {str(k): Path(v) for k, v in params["corpora"].items()}
    for name, root in corpora.items():
        if not root.exists():
            raise FileNotFoundError(f"extract: corpus {name!r} not found at {root}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = Path(report_path) if report_path else out_dir / "extract_report.json"

    # Files are parsed in storage order (an archive is streamed while the workers parse);
    # names, de-duplication and row order are settled once every corpus has been read.
    stats = {"non_midi_skipped": 0}
    names: dict[int, list[str]] = {}  # corpus index -> every file name in storage order
    copies: dict[str, list[tuple[int, int]]] = {}  # song_id -> (corpus index, name index) of each copy
    order: list[str] = []  # song_id of each task

    def tasks():
        for ci, root in enumerate(corpora.values()):
            names[ci] = seen = []
            for name, data in iter_files(root):
                seen.append(name)
                if not is_midi(name):
                    stats["non_midi_skipped"] += 1
                    continue
                song_id = hashlib.sha1(data).hexdigest()[:16]
                if song_id in copies:
                    copies[song_id].append((ci, len(seen) - 1))
                    continue
                copies[song_id] = [(ci, len(seen) - 1)]
                order.append(song_id)
                yield data

    results: dict[str, dict] = {}
    workers = int(params["workers"])
    pool = Pool(workers, initializer=_init_worker, initargs=(params,)) if workers > 1 else None
    _init_worker(params)
    try:
        done = pool.imap(_work, tasks(), chunksize=8) if pool else map(_work, tasks())
        for i, res in enumerate(tqdm(done, desc="extract", unit="file", mininterval=1.0)):
            results[order[i]] = res
    finally:
        if pool:
            pool.close()
            pool.join()

    parsed_at = time.time()
    corpus_names = list(corpora)
    rel = {ci: relative_names(root, names[ci]) for ci, root in enumerate(corpora.values())}
    located = {sid: sorted((ci, rel[ci][k]) for ci, k in where) for sid, where in copies.items()}
    files_by_corpus = Counter(corpus_names[ci] for where in located.values() for ci, _ in where)
    duplicates = [
        {"path": f"{corpus_names[ci]}:{path}", "same_as": f"{corpus_names[where[0][0]]}:{where[0][1]}"}
        for where in located.values()
        for ci, path in where[1:]
    ]
    duplicates.sort(key=lambda d: (corpus_names.index(d["path"].split(":", 1)[0]), d["path"]))

    reasons: Counter = Counter()
    examples: dict[str, list[str]] = {}
    errors: list[str] = []
    dropped = Counter()
    sanitized = 0
    pairs: list[dict] = []
    for song_id in sorted(located, key=lambda sid: located[sid][0]):
        res = results[song_id]
        ci, path = located[song_id][0]
        corpus = corpus_names[ci]
        dropped["absurd_tempo"] += res.get("dropped_tempo", 0)
        dropped["sparse"] += res.get("dropped_sparse", 0)
        sanitized += res.get("sanitized", False)
        if res["reason"] is not None:
            reasons[res["reason"]] += 1
            examples.setdefault(res["reason"], [])
            if len(examples[res["reason"]]) < EXAMPLES:
                examples[res["reason"]].append(f"{corpus}:{path}")
            if "error" in res and len(errors) < EXAMPLES:
                errors.append(f"{corpus}:{path}: {res['error']}")
            continue
        res |= {"song_id": song_id, "corpus": corpus, "path": path, "folder_genre": folder_genre(path)}
        pairs.append(res)

    n = sum(len(p["index"]) for p in pairs)
    drums = np.concatenate([p["drums"] for p in pairs]) if pairs else np.zeros((0, 32, 14), np.uint8)
    tokens = np.concatenate([p["tokens"] for p in pairs]) if pairs else np.zeros((0, 64), np.uint8)
    chords = np.concatenate([p["chords"] for p in pairs]) if pairs else np.zeros((0, ch.HALF_BARS), np.uint8)
    empty = no_context(0)
    context = {name: np.concatenate([p[name] for p in pairs]) if pairs else empty[name] for name in CONTEXT}
    np.savez(out_dir / "pairs.npz", drums=drums, tokens=tokens, chords=chords, **context)  # equal arrays, equal bytes
    counts = np.array([len(p["index"]) for p in pairs], dtype=np.int64)

    def repeat(key: str) -> np.ndarray:
        return np.repeat(np.array([p[key] for p in pairs], dtype=object), counts)

    def cat(key: str, dtype) -> np.ndarray:
        return np.concatenate([np.asarray(p[key], dtype=dtype) for p in pairs]) if pairs else np.zeros(0, dtype)

    pair_table = _table(
        {
            "song_id": (repeat("song_id"), pa.string()),
            "corpus": (repeat("corpus"), pa.string()),
            "path": (repeat("path"), pa.string()),
            "folder_genre": (repeat("folder_genre"), pa.string()),
            "window_index": (cat("index", np.int64), pa.int64()),
            "bpm": (cat("bpm", np.float64), pa.float64()),
            "bass_program": (repeat("program"), pa.int64()),
            "program_index": (repeat("program_index"), pa.int64()),
            "n_drum_onsets": (cat("n_drum", np.int64), pa.int64()),
            "n_bass_onsets": (cat("n_bass", np.int64), pa.int64()),
        }
    )
    pq.write_table(pair_table, out_dir / "pairs.parquet")
    pc = np.array([p["pc"] for p in pairs], dtype=np.float64).reshape(len(pairs), 12)
    song_columns = {key: ([p[key] for p in pairs], pa.string()) for key in SONG_COLUMNS}
    song_columns |= {
        "n_pairs": ([len(p["index"]) for p in pairs], pa.int64()),
        "tpq": ([p["tpq"] for p in pairs], pa.int64()),
    }
    song_columns |= {f"pc_{k}": (pc[:, k], pa.float64()) for k in range(12)}
    pq.write_table(_table(song_columns), out_dir / "songs.parquet")

    by_corpus = Counter()
    by_genre = Counter()
    for p in pairs:
        by_corpus[p["corpus"]] += len(p["index"])
        by_genre[p["folder_genre"] or "(none)"] += len(p["index"])
    report = {
        "corpora": {name: str(root) for name, root in corpora.items()},
        "files_seen": sum(files_by_corpus.values()),
        "files_by_corpus": dict(files_by_corpus),
        "non_midi_skipped": stats["non_midi_skipped"],
        "duplicates": {"count": len(duplicates), "examples": duplicates[:20]},
        "parsed": len(results) - reasons["unreadable"],
        "parsed_after_sanitizing": sanitized,
        "skipped_by_reason": {reason: reasons[reason] for reason in REASONS},
        "skipped_examples": {reason: examples[reason] for reason in REASONS if reason in examples},
        "errors": errors,
        "windows_dropped": {"sparse": dropped["sparse"], "absurd_tempo": dropped["absurd_tempo"]},
        "pairs_kept": n,
        "pairs_with_previous_window": int(context["has_prev"].sum()),
        "pairs_with_recalled_window": int(context["has_recall"].sum()),
        "pairs_by_corpus": dict(sorted(by_corpus.items())),
        "pairs_by_genre": dict(sorted(by_genre.items())),
        "songs_kept": len(pairs),
        "chords": chord_summary(tokens, chords),
        "seconds": round(time.time() - start, 2),
        "seconds_reading_and_parsing": round(parsed_at - start, 2),
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    # wall times are printed, not written: the report is a DVC metric and must not change between equal runs
    stable = {key: value for key, value in report.items() if not key.startswith("seconds")}
    report_path.write_text(json.dumps(stable, indent=2) + "\n")
    print_summary(report)
    return report


def chord_summary(tokens: np.ndarray, chords: np.ndarray) -> dict:
    """Report section: half bars per chord quality (and N), and for the real bass the
    share of its onsets under a chord (not N) that land on the chord root / a chord tone."""
    quality = np.where(chords == ch.N, -1, (chords.astype(np.int64) - 1) % len(ch.QUALITIES))
    by_quality = {"N": int((quality == -1).sum())}
    by_quality |= {name: int((quality == q).sum()) for q, name in enumerate(ch.QUALITIES)}
    tone, root, under = (int(x.sum()) for x in ch.chord_tone_hits(tokens, chords))
    return {
        "half_bars_by_quality": by_quality,
        "bass_onsets_under_a_chord": under,
        "bass_root_rate": round(root / under, 4) if under else None,
        "bass_chord_tone_rate": round(tone / under, 4) if under else None,
        "synthetic_accuracy": ch.synthetic_accuracy(),
    }


def print_summary(report: dict) -> None:
    print(
        f"extract: {report['files_seen']} MIDI files seen ({report['non_midi_skipped']} non-MIDI skipped), "
        f"{report['duplicates']['count']} duplicates, {report['parsed']} parsed "
        f"({report['parsed_after_sanitizing']} after clamping bad data bytes), "
        f"{report['songs_kept']} songs -> {report['pairs_kept']} pairs in {report['seconds']} s"
    )
    for reason, count in report["skipped_by_reason"].items():
        if count:
            shown = ", ".join(report["skipped_examples"].get(reason, [])[:2])
            print(f"extract: skipped {count:6d} files: {reason:<20} e.g. {shown}")
    dropped = report["windows_dropped"]
    print(f"extract: dropped windows: {dropped['sparse']} sparse, {dropped['absurd_tempo']} absurd tempo")
    chords = report["chords"]
    print(
        f"extract: chords per half bar {chords['half_bars_by_quality']}; real bass on the root "
        f"{chords['bass_root_rate']}, on a chord tone {chords['bass_chord_tone_rate']} "
        f"(of {chords['bass_onsets_under_a_chord']} onsets under a chord)"
    )
    for line in report["errors"]:
        print(f"extract: error {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/interim", help="folder for pairs.npz, pairs.parquet, songs.parquet")
    parser.add_argument("--report", default="data/extract_report.json")
    parser.add_argument("--corpus", action="append", metavar="NAME=PATH", help="replace the corpora of params")
    args = parser.parse_args()
    params = load_params(args.params)["extract"]
    if args.corpus:
        params["corpora"] = dict(item.split("=", 1) for item in args.corpus)
    run(params, Path(args.out), Path(args.report))


if __name__ == "__main__":
    main()
