"""Robust input: ``dnb.midi.read_midi``'s steps on built files, and a seeded fuzz of real files
through the reader and ``dnb generate`` (in process, with the root_on_kick baseline)."""

import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dnb.data import synthetic_split
from dnb.midi import READS, Unreadable, read_midi, repair_truncated
from dnb.tensors import write_split
from producer import cli

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["data/raw/freedoom/d_e1m1.mid", "data/raw/freedoom/d_intro.mid",
           "data/raw/groove/drummer6/session3/2_rock_100_beat_4-4.mid",
           "data/raw/groove/drummer1/session1/102_funk_95_beat_4-4.mid"]
NOTE = b"\x00\x99\x24\x64\x60\x89\x24\x00"  # kick on, a quarter later off (tpq 96): 8 bytes


def midi(*tracks: bytes, tpq: int = 96) -> bytes:
    out = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), tpq)
    return out + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


def test_read_midi_says_how_each_file_was_read():
    good = midi(NOTE * 8 + b"\x00\xff\x2f\x00")
    score, how = read_midi(good)
    assert how == "plain" and score.note_num() == 8
    loud = good.replace(b"\x99\x24\x64", b"\x99\x24\xb4", 1)  # a velocity of 180
    score, how = read_midi(loud)
    assert how == "sanitized" and score.note_num() == 8
    cut = good[:14 + 8 + 5 * 8 + 3]  # five whole notes, then half a note-on
    score, how = read_midi(cut)
    assert how == "repaired" and score.note_num() == 5
    with pytest.raises(Unreadable):
        read_midi(cut, repair=False)  # the pipeline's policy: a truncated song is not a training pair
    riff = b"RIFF" + struct.pack("<I", 12 + len(good)) + b"RMID" + b"data" + struct.pack("<I", len(good)) + good
    assert read_midi(riff)[1] == "plain"
    for junk in (b"", b"MThd", b"not a midi file", np.random.default_rng(0).bytes(300)):
        with pytest.raises(Unreadable):
            read_midi(junk)


def test_repair_closes_every_track_and_rewrites_the_header():
    two = midi(NOTE * 3 + b"\x00\xff\x2f\x00", NOTE * 4 + b"\x00\xff\x2f\x00")
    cut = two[:len(two) - 4 - 8 - 2]  # second track: end, last note and the data bytes of a note-off gone
    fixed = repair_truncated(cut)  # kept: two whole notes and the third note-on (its off byte pair was cut)
    assert fixed == midi(NOTE * 3 + b"\x00\xff\x2f\x00", NOTE * 2 + NOTE[:4] + b"\x00\xff\x2f\x00")
    assert repair_truncated(two) is None  # nothing to repair
    assert repair_truncated(b"MThd\x00\x00") is None


def test_generate_reads_an_out_of_range_velocity(tensors, tmp_path, capsys):
    data = (ROOT / SOURCES[2]).read_bytes()
    at = data.index(b"\x99") if b"\x99" in data else None
    assert at is not None
    loud = data[:at + 2] + bytes([180]) + data[at + 3:]
    (tmp_path / "loud.mid").write_bytes(loud)
    assert read_midi(loud)[1] == "sanitized"
    assert cli.main(args(tmp_path / "loud.mid", tensors, tmp_path / "out.mid")) == 0
    assert "out-of-range data bytes clamped" in capsys.readouterr().err
    assert (tmp_path / "out.mid").exists()


@pytest.fixture(scope="module")
def tensors(tmp_path_factory) -> Path:
    """A tiny training split: root_on_kick is fitted on it (its octave), no checkpoint needed."""
    folder = tmp_path_factory.mktemp("tensors")
    write_split(folder / "train.npz", {k: v.numpy() for k, v in synthetic_split(32, seed=0).items()})
    (folder / "meta.json").write_text('{"styles": ["funk", "rock", "jazz"]}')
    return folder


def args(path: Path, tensors: Path, out: Path) -> list[str]:
    return ["generate", str(path), "--model", "root_on_kick", "--tensors", str(tensors), "--style", "rock",
            "--out", str(out)]


def fuzz_cases(seed: int = 0) -> list[tuple[str, bytes]]:
    """(kind, bytes): seeded bit flips, truncations at many offsets, splices of two files, random bytes, empty."""
    rng = np.random.default_rng(seed)
    files = [(ROOT / s).read_bytes() for s in SOURCES]
    cases = [("original", f) for f in files]
    for f in files:
        for n_bits in (1, 1, 1, 1, 2, 2, 3, 3, 5, 5, 8, 8, 16, 16, 32, 64):
            flipped = bytearray(f)
            for pos in rng.integers(0, len(f), n_bits):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            cases.append(("bit_flips", bytes(flipped)))
        for cut in sorted(set(np.linspace(1, len(f) - 1, 30).astype(int).tolist() + [8, 14, 22])):
            cases.append(("truncated", f[:cut]))
    for _ in range(20):
        a, b = rng.choice(len(files), 2, replace=False)
        i, j = int(rng.integers(14, len(files[a]))), int(rng.integers(0, len(files[b])))
        cases.append(("spliced", files[a][:i] + files[b][j:]))
    for n in (1, 2, 10, 100, 300, 1000, 3000, 20000):
        cases.append(("random", rng.bytes(n)))
    cases.append(("random", b"MThd" + rng.bytes(500)))
    cases.append(("empty", b""))
    return cases


def test_fuzz_reader_and_generate(tensors, tmp_path, capsys):
    start = time.perf_counter()
    reads, outcomes = Counter(), Counter()
    for n, (kind, data) in enumerate(fuzz_cases()):
        path = tmp_path / f"case{n}.mid"
        path.write_bytes(data)
        try:
            score, how = read_midi(data)
            assert how in READS and score is not None
            reads[how] += 1
        except Unreadable as err:
            assert "\n" not in str(err)
            reads["unreadable"] += 1
        out = tmp_path / f"out{n}.mid"
        code = cli.main(args(path, tensors, out))
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert code in (0, 2), (kind, n, err)
        assert all(line.startswith("dnb: ") for line in lines), (kind, n, err)  # no traceback
        errors = [line for line in lines if line.startswith("dnb: error: ")]
        assert len(errors) == (code == 2), (kind, n, err)
        assert out.exists() == (code == 0)
        if kind == "original":
            assert code == 0, err
        outcome = "written" if code == 0 else errors[0][len("dnb: error: "):].split(" ")[:2]
        outcomes[outcome if isinstance(outcome, str) else " ".join(outcome)] += 1
        path.unlink()
        out.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nfuzz: {sum(reads.values())} cases in {seconds:.1f} s; read_midi: {dict(reads)}; "
              f"dnb generate: {dict(outcomes)}")
    assert sum(reads.values()) == len(fuzz_cases()) and reads["repaired"] > 0 and outcomes["written"] > 4
    assert seconds < 60
