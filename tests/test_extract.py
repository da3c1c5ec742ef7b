"""Stage extract on a tiny corpus of good and broken files: exact counts by reason."""

from __future__ import annotations

import io
import json
import shutil
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import symusic

from dnb import chords as ch
from dnb import representation as rep
from dnb.corpus import iter_midi, strip_common_top, unwrap_rmid
from pipeline import extract

TPQ = 480
BAR = 4 * TPQ
PARAMS = {
    "min_drum_onsets": 4,
    "min_bass_onsets": 2,
    "min_bpm": 30,
    "max_bpm": 300,
    "max_notes": 1000,
    "max_windows": 20000,
    "workers": 1,
}


def song(
    bars: int = 8,
    bpm: float = 120.0,
    drums: bool = True,
    bass: bool = True,
    sparse_bars: int = 0,
    signature: tuple[int, int] | None = None,
    hits_per_bar: int = 8,
    bass_program: int = 34,
) -> bytes:
    """A rock beat (kick, snare, eighth hats) with a root-fifth bass line: ``bars`` dense
    bars, then ``sparse_bars`` bars of a single kick and a single bass note."""
    pm = pretty_midi.PrettyMIDI(resolution=TPQ, initial_tempo=bpm)
    beat = 60.0 / bpm
    beats_per_bar = signature[0] if signature else 4
    if signature:
        pm.time_signature_changes = [pretty_midi.TimeSignature(signature[0], signature[1], 0.0)]
    kit = pretty_midi.Instrument(0, is_drum=True)
    line = pretty_midi.Instrument(bass_program, name="Bass")
    for bar in range(bars):
        t0 = bar * beats_per_bar * beat
        for i in range(hits_per_bar):
            key = [36, 42, 38, 42][i % 4]
            kit.notes.append(pretty_midi.Note(90, key, t0 + i * beat / 2, t0 + i * beat / 2 + 0.05))
        for i, pitch in enumerate([40, 47, 40, 45]):
            line.notes.append(pretty_midi.Note(90, pitch, t0 + i * beat, t0 + (i + 0.5) * beat))
    for bar in range(bars, bars + sparse_bars):
        t0 = bar * beats_per_bar * beat
        kit.notes.append(pretty_midi.Note(90, 36, t0, t0 + 0.05))
        line.notes.append(pretty_midi.Note(90, 40, t0, t0 + beat / 2))
    kit.notes.append(pretty_midi.Note(90, 49, (bars + sparse_bars) * beats_per_bar * beat - 0.05,
                                      (bars + sparse_bars) * beats_per_bar * beat))
    pm.instruments += [kit] * drums + [line] * bass
    return rep.pretty_midi_to_bytes(pm)


def header(n_tracks: int, division: int) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, 1, n_tracks, division)


def track(events: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(events) + 4) + events + b"\x00\xff\x2f\x00"


GOOD = song(bars=8, sparse_bars=2)  # 4 dense windows + 1 sparse window
EXPECTED_REASONS = {
    "unreadable": 2,
    "zero_ticks_per_beat": 1,
    "zero_tracks": 1,
    "too_many_notes": 1,
    "too_long": 1,
    "no_drums": 1,
    "no_bass": 1,
    "no_four_four": 1,
    "too_short": 1,
    "absurd_tempo": 2,
    "no_dense_window": 1,
    "failed": 0,
}


def write_corpus(root: Path) -> None:
    files = {
        "rock/good.mid": GOOD,
        "rock/zz_copy.MID": GOOD,  # byte-identical duplicate, upper-case suffix
        "rock/notes.txt": b"not midi",
        "random.mid": np.random.default_rng(0).bytes(700),
        "truncated.mid": GOOD[: len(GOOD) // 2],
        "zero_tracks.mid": header(0, TPQ),
        "zero_tpq.mid": header(1, 0) + track(b"\x00\x99\x24\x64\x60\x89\x24\x00"),
        "pop/fast.midi": song(bpm=2000.0),
        "pop/slow.mid": song(bpm=5.0),
        "pop/no_drums.mid": song(drums=False),
        "pop/no_bass.mid": song(bass=False),
        "pop/waltz.mid": song(signature=(3, 4)),
        "pop/one_bar.mid": song(bars=1),
        "pop/many_notes.mid": song(bars=60, hits_per_bar=16),  # 60 * 21 + 1 > 1000 notes
        "pop/sparse.mid": song(bars=0, sparse_bars=8),
        # one drum note ending 2^28 ticks after it starts at 1 tick per quarter: 33 million windows
        "huge_end.mid": header(1, 1) + track(b"\x00\x99\x24\x64\xff\xff\xff\x7f\x89\x24\x00"),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    return root


@pytest.fixture(scope="module")
def result(corpus: Path, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("out")
    return extract.run({**PARAMS, "corpora": {"small": str(corpus)}}, out), out


def test_counts_by_reason(result):
    report, _ = result
    assert report["skipped_by_reason"] == EXPECTED_REASONS
    assert report["files_seen"] == 15
    assert report["non_midi_skipped"] == 1
    duplicate = {"path": "small:rock/zz_copy.MID", "same_as": "small:rock/good.mid"}
    assert report["duplicates"] == {"count": 1, "examples": [duplicate]}
    assert report["parsed"] == 15 - 1 - 2
    assert report["songs_kept"] == 1
    assert report["pairs_kept"] == 4
    assert report["pairs_by_genre"] == {"rock": 4}
    assert report["windows_dropped"] == {"sparse": 1 + 4, "absurd_tempo": 4 + 4}
    assert report["skipped_examples"]["unreadable"] == ["small:random.mid", "small:truncated.mid"]
    assert json.loads((result[1] / "extract_report.json").read_text())["pairs_kept"] == 4


def test_pairs_of_the_good_song(result):
    _, out = result
    with np.load(out / "pairs.npz") as data:
        drums, tokens, chords = data["drums"], data["tokens"], data["chords"]
        assert sorted(data.files) == ["chords", "drums", "has_prev", "has_recall", "prev_drums", "prev_tokens",
                                      "recall_drums", "recall_tokens", "tokens"]
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert drums.shape == (4, 32, 14) and drums.dtype == np.uint8
    assert tokens.shape == (4, 64) and tokens.dtype == np.uint8
    assert chords.shape == (4, 4) and chords.dtype == np.uint8 and (chords == 0).all()  # drums and bass only: N
    assert pairs["window_index"].tolist() == [0, 1, 2, 3]
    assert set(pairs["path"]) == {"rock/good.mid"} and set(pairs["folder_genre"]) == {"rock"}
    assert pairs["bass_program"].tolist() == [34] * 4 and pairs["program_index"].tolist() == [2] * 4
    np.testing.assert_allclose(pairs["bpm"], 120.0)
    assert pairs["n_drum_onsets"].tolist() == [16] * 4 and pairs["n_bass_onsets"].tolist() == [8] * 4
    expected = rep.score_windows(rep.load_score(GOOD))
    np.testing.assert_array_equal(drums, expected.drums[:4])
    np.testing.assert_array_equal(tokens, expected.tokens[:4])
    with np.load(out / "pairs.npz") as data:  # the previous window of the song, read from the song itself
        assert data["has_prev"].tolist() == [0, 1, 1, 1]
        np.testing.assert_array_equal(data["prev_tokens"][1:], expected.tokens[:3])
        np.testing.assert_array_equal(data["prev_drums"][1:], expected.drums[:3])
        assert not data["prev_tokens"][0].any() and not data["prev_drums"][0].any()
        # the recalled window: 2..8 windows back; window 3's drums are window 1's, the more recent tie
        assert data["has_recall"].tolist() == [0, 0, 1, 1]
        assert (expected.drums[3] == expected.drums[1]).all()
        np.testing.assert_array_equal(data["recall_tokens"][2:], expected.tokens[:2])
        np.testing.assert_array_equal(data["recall_drums"][2:], expected.drums[:2])
    first_bar = [rep.ONSET_OFFSET + p - rep.BASS_LOW for p in (40, 47, 40, 45)]
    assert tokens[0, 0:32:8].tolist() == first_bar
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["song_id"].tolist() == [pairs["song_id"][0]] and songs["n_pairs"].tolist() == [4]
    assert songs["tpq"].tolist() == [TPQ]
    # pitch classes in quarters: E 2 x half a beat in 8 dense bars + once in 2 sparse bars, A and B once a bar
    pc = songs[[f"pc_{k}" for k in range(12)]].to_numpy()[0]
    np.testing.assert_allclose(pc[[4, 9, 11]], [9.0, 4.0, 4.0])
    assert pc.sum() == pytest.approx(17.0)


def test_chords_of_a_song_with_a_piano(tmp_path: Path):
    """Em | A | C | N per bar pair over the E-B-E-A bass: the report counts the bass on roots and chord tones."""
    score = rep.load_score(song(bars=4))
    piano = symusic.Track("piano", 0, False)
    for bar in range(4):
        for half, chord in enumerate([(52, 55, 59), (57, 61, 64)] if bar % 2 == 0 else [(48, 52, 55)]):
            for pitch in chord:
                piano.notes.append(symusic.Note(bar * BAR + half * BAR // 2, BAR // 2, pitch, 80))
    score.tracks.append(piano)
    (tmp_path / "c").mkdir()
    score.dump_midi(str(tmp_path / "c/piano.mid"))
    report = extract.run({**PARAMS, "corpora": {"c": str(tmp_path / "c")}}, tmp_path / "out")
    with np.load(tmp_path / "out/pairs.npz") as data:
        chords = data["chords"]
    assert [[ch.chord_name(label) for label in row] for row in chords] == [["Em", "A", "C", "N"]] * 2
    # per window: under Em the bass plays E (root) B (tone), under A E (tone) A (root), under C E (tone) B
    assert report["chords"] == {
        "half_bars_by_quality": {"N": 2, "maj": 4, "min": 2},
        "bass_onsets_under_a_chord": 12,
        "bass_root_rate": round(4 / 12, 4),
        "bass_chord_tone_rate": round(10 / 12, 4),
        "synthetic_accuracy": 1.0,
    }
    assert json.loads((tmp_path / "out/extract_report.json").read_text())["chords"] == report["chords"]


def test_same_outputs_with_two_workers_and_fixed_zip_dates(result, corpus: Path, tmp_path: Path):
    _, out = result
    time.sleep(1.1)  # np.savez would stamp a different second into the zip
    extract.run({**PARAMS, "workers": 2, "corpora": {"small": str(corpus)}}, tmp_path)
    for name in ("pairs.npz", "pairs.parquet", "songs.parquet"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_archives_and_duplicates_across_corpora(corpus: Path, tmp_path: Path):
    tgz = tmp_path / "pack.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        # archive order is not path order: z.mid comes first, but its copy b.mid is kept
        members = [("pack/country/z.mid", song(bars=4)), ("pack/country/b.mid", song(bars=4))]
        for rel, data in members + [("pack/country/a.mid", GOOD), ("pack/README", b"hi")]:
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stats: dict = {}
    listed = [(rel, genre) for rel, _, genre in iter_midi(tgz, stats)]
    assert listed == [("country/a.mid", "country"), ("country/b.mid", "country"), ("country/z.mid", "country")]
    assert stats["non_midi_skipped"] == 1
    report = extract.run({**PARAMS, "corpora": {"small": str(corpus), "pack": str(tgz)}}, tmp_path / "out")
    assert report["duplicates"]["count"] == 3
    assert report["duplicates"]["examples"][1:] == [
        {"path": "pack:country/a.mid", "same_as": "small:rock/good.mid"},
        {"path": "pack:country/z.mid", "same_as": "pack:country/b.mid"},
    ]
    pairs = pd.read_parquet(tmp_path / "out/pairs.parquet")
    assert pairs["path"].tolist() == ["rock/good.mid"] * 4 + ["country/b.mid"] * 2
    assert report["pairs_by_corpus"] == {"pack": 2, "small": 4}
    assert report["pairs_by_genre"] == {"country": 2, "rock": 4}


def test_zip_and_folder_iteration_sorted(tmp_path: Path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("b.MIDI", b"1")
        zf.writestr("a/c.mid", b"2")
        zf.writestr("a/d.txt", b"3")
    assert [(r, d, g) for r, d, g in iter_midi(archive)] == [("a/c.mid", b"2", "a"), ("b.MIDI", b"1", "")]
    folder = tmp_path / "f"
    (folder / "z").mkdir(parents=True)
    (folder / "z" / "y.mid").write_bytes(b"y")
    (folder / "b.mid").write_bytes(b"b")
    assert [(r, g) for r, _, g in iter_midi(folder)] == [("b.mid", ""), ("z/y.mid", "z")]
    assert strip_common_top(["top/a/x.mid", "top/y.mid"]) == (["a/x.mid", "y.mid"], "top")
    assert strip_common_top(["top/a/x.mid", "y.mid"]) == (["top/a/x.mid", "y.mid"], "")


def rmid(data: bytes) -> bytes:
    """``data`` in a RIFF RMID wrapper, after an odd-sized chunk (padded to even)."""
    chunks = b"DISP" + struct.pack("<I", 3) + b"abc\x00" + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"RMID" + chunks


def test_rmid_wrapper_and_out_of_range_bytes_are_recovered(tmp_path: Path):
    plain = song(bars=4)
    assert unwrap_rmid(rmid(plain)) == plain and unwrap_rmid(plain) == plain
    loud = song(bars=4, bass_program=38)
    at = loud.index(bytes([0x99, 36, 90]))
    loud = loud[: at + 2] + bytes([180]) + loud[at + 3 :]  # a velocity of 180: invalid MIDI
    with pytest.raises(RuntimeError):
        rep.load_score(loud)
    (tmp_path / "c").mkdir()
    (tmp_path / "c/wrapped.mid").write_bytes(rmid(plain))
    (tmp_path / "c/loud.mid").write_bytes(loud)
    report = extract.run({**PARAMS, "corpora": {"c": str(tmp_path / "c")}}, tmp_path / "out")
    assert sum(report["skipped_by_reason"].values()) == 0
    assert report["parsed_after_sanitizing"] == 1
    assert report["pairs_kept"] == 4 and report["songs_kept"] == 2
    with np.load(tmp_path / "out/pairs.npz") as data:
        np.testing.assert_array_equal(data["drums"][2:], rep.score_windows(rep.load_score(plain)).drums)


def test_missing_corpus_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        extract.run({**PARAMS, "corpora": {"x": str(tmp_path / "nowhere")}}, tmp_path)


def test_hundred_thousand_notes_parse_fast():
    events = b"".join(b"\x00\x99\x24\x64\x0a\x89\x24\x00" for _ in range(100_001))
    data = header(1, TPQ) + track(events)
    start = time.perf_counter()
    score = rep.load_score(data)
    assert score.note_num() == 100_001
    assert time.perf_counter() - start < 3.0
    assert extract.process_file(data, {**PARAMS, "max_notes": 100_000})["reason"] == "too_many_notes"


def test_stage_reads_its_params_section(tmp_path: Path, corpus: Path, monkeypatch):
    shutil.copytree(corpus, tmp_path / "c")
    params = {"extract": {**PARAMS, "corpora": {"c": "c"}}, "other": {"ignored": True}}
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["extract"])
    extract.main()
    assert json.loads((tmp_path / "data/extract_report.json").read_text())["pairs_kept"] == 4
    assert (tmp_path / "data/interim/pairs.npz").exists()


def test_an_error_while_cutting_windows_is_counted_not_fatal(tmp_path: Path, monkeypatch):
    (tmp_path / "c").mkdir()
    (tmp_path / "c/good.mid").write_bytes(GOOD)

    def broken(score, with_bass=True):
        raise IndexError("boom")

    monkeypatch.setattr(rep, "score_windows", broken)
    report = extract.run({**PARAMS, "corpora": {"c": str(tmp_path / "c")}}, tmp_path / "out")
    assert report["skipped_by_reason"]["failed"] == 1 and report["pairs_kept"] == 0
    assert report["errors"] == ["c:good.mid: IndexError: boom"]
