"""Extract speed: our per-file path (symusic parse + windows) against a pretty_midi path
(pretty_midi parse + the same windows, built by the same ``score_windows`` from
pretty_midi's note lists), on the same files, one core, both measured in this run.

    python benchmarks/extract_speed.py            # first 200 files of the large corpus
    python benchmarks/extract_speed.py --full     # also the whole corpus through extract, 2 workers
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

from dnb import representation as rep
from dnb.corpus import iter_midi
from dnb.params import load_params

DEFAULT_CORPUS = "../shared/corpora/ultimate-midi.tar.gz"


# ----------------------------------------------------------------- pretty_midi -> score_windows adapter


@dataclass
class Notes:
    time: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def numpy(self) -> dict[str, np.ndarray]:
        return {"time": self.time, "duration": self.duration, "pitch": self.pitch}


@dataclass
class Track:
    name: str
    program: int
    is_drum: bool
    notes: Notes

    def end(self) -> int:
        return int((self.notes.time + self.notes.duration).max()) if len(self.notes) else 0


@dataclass
class Event:
    time: int
    qpm: float = 0.0
    numerator: int = 4
    denominator: int = 4


@dataclass
class Score:
    """Just what ``rep.score_windows`` reads of a symusic Score, in ticks."""

    tpq: int
    tracks: list[Track] = field(default_factory=list)
    tempos: list[Event] = field(default_factory=list)
    time_signatures: list[Event] = field(default_factory=list)


def pretty_midi_score(pm: pretty_midi.PrettyMIDI) -> Score:
    """Seconds -> ticks through pretty_midi's own tempo map (vectorised ``time_to_tick``)."""
    ticks = np.array([t for t, _ in pm._tick_scales], dtype=np.float64)
    scales = np.array([s for _, s in pm._tick_scales], dtype=np.float64)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * scales[:-1])])

    def to_tick(seconds) -> np.ndarray:
        seg = np.maximum(np.searchsorted(starts, seconds, side="right") - 1, 0)
        return np.rint(ticks[seg] + (np.asarray(seconds) - starts[seg]) / scales[seg]).astype(np.int64)

    score = Score(tpq=pm.resolution)
    score.tempos = [Event(int(t), qpm=60.0 / (s * pm.resolution)) for t, s in pm._tick_scales]
    score.time_signatures = [
        Event(int(to_tick(ts.time)), numerator=ts.numerator, denominator=ts.denominator)
        for ts in pm.time_signature_changes
    ]
    for inst in pm.instruments:
        start = to_tick([n.start for n in inst.notes])
        end = to_tick([n.end for n in inst.notes])
        pitch = np.array([n.pitch for n in inst.notes], dtype=np.int64)
        score.tracks.append(Track(inst.name, inst.program, inst.is_drum, Notes(start, end - start, pitch)))
    return score


# ----------------------------------------------------------------- the two paths


def symusic_path(data: bytes) -> tuple[float, float, rep.Windows | None]:
    t0 = time.perf_counter()
    try:
        score = rep.load_score(data)
    except Exception:
        return time.perf_counter() - t0, 0.0, None
    t1 = time.perf_counter()
    try:
        win = rep.score_windows(score)
    except Exception:
        win = None
    return t1 - t0, time.perf_counter() - t1, win


def pretty_midi_path(data: bytes) -> tuple[float, float, rep.Windows | None]:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception:
        return time.perf_counter() - t0, 0.0, None
    t1 = time.perf_counter()
    try:
        win = rep.score_windows(pretty_midi_score(pm))
    except Exception:
        win = None
    return t1 - t0, time.perf_counter() - t1, win


def same(a: rep.Windows | None, b: rep.Windows | None) -> bool:
    if a is None or b is None:
        return False
    tokens_equal = (a.tokens is None and b.tokens is None) or (
        a.tokens is not None and b.tokens is not None and np.array_equal(a.tokens, b.tokens)
    )
    return np.array_equal(a.drums, b.drums) and tokens_equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--files", type=int, default=200, help="the first N files in sorted order")
    parser.add_argument("--full", action="store_true", help="also time the whole corpus through extract")
    args = parser.parse_args()

    t0 = time.perf_counter()
    files = []
    for _, data, _ in iter_midi(args.corpus):
        files.append(data)
        if len(files) == args.files:
            break
    print(f"read {len(files)} files of {args.corpus} in {time.perf_counter() - t0:.1f} s")

    symusic_path(files[0]), pretty_midi_path(files[0])  # warm up: imports, first-call caches
    ours = [symusic_path(data) for data in files]
    theirs = [pretty_midi_path(data) for data in files]
    both = [(a[2], b[2]) for a, b in zip(ours, theirs) if a[2] is not None or b[2] is not None]
    agree = sum(same(a, b) for a, b in both)
    parse_ours, win_ours = sum(r[0] for r in ours), sum(r[1] for r in ours)
    parse_theirs, win_theirs = sum(r[0] for r in theirs), sum(r[1] for r in theirs)
    for name, parse, win in [("symusic", parse_ours, win_ours), ("pretty_midi", parse_theirs, win_theirs)]:
        print(f"{name + ' path:':<18}{parse + win:7.2f} s (parse {parse:.2f} s + windows {win:.2f} s)")
    print(f"ratio: {(parse_theirs + win_theirs) / (parse_ours + win_ours):.0f}x per file, parse alone "
          f"{parse_theirs / parse_ours:.0f}x (goal >= 100x)")
    print(f"same windows from both parsers: {agree} of the {len(both)} files with windows")

    if args.full:
        from pipeline.extract import run

        params = load_params()["extract"]
        params |= {"corpora": {"large": args.corpus}, "workers": 2}
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = run(params, Path(out))
            wall = time.perf_counter() - start
        print(f"full corpus through extract, 2 workers: {wall:.1f} s wall, {report['files_seen']} files, "
              f"{report['pairs_kept']} pairs ({report['files_seen'] / wall:.0f} files/s)")


if __name__ == "__main__":
    main()
