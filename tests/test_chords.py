"""Chord labels per half bar on synthetic symusic scores (piano block chords, drums, bass),
chord-symbol parsing, keys from chords, transposition and the chord-tone metric."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from dnb import chords as ch
from dnb import representation as rep

TPQ = 480
HALF = 2 * TPQ  # ticks per half bar
WINDOW = rep.QUARTERS_PER_WINDOW * TPQ


def track(name: str, program: int, notes: list[tuple[int, int, int]], is_drum: bool = False) -> symusic.Track:
    """A symusic track from (start tick, duration ticks, pitch) triples."""
    out = symusic.Track(name, program, is_drum)
    for start, duration, pitch in notes:
        out.notes.append(symusic.Note(start, duration, pitch, 90))
    return out


def block_chords(labels: list[int], base: int = 60) -> list[tuple[int, int, int]]:
    """Root-position block chords, one per half bar (N: nothing): the root at
    ``base + root`` (``base`` a C), the other tones within the octave above it."""
    notes = []
    for i, label in enumerate(labels):
        if label == ch.N:
            continue
        root = ch.chord_root(label)
        for pc in ch.chord_pitch_classes(label):
            notes.append((i * HALF, HALF, base + root + (pc - root) % 12))
    return notes


def song(piano: list[tuple[int, int, int]], bass: list[tuple[int, int, int]] | None, n_windows: int) -> symusic.Score:
    """A score with a piano track, a drum track (eighth-note hats on every window) and,
    unless ``bass`` is None, a GM finger bass."""
    score = symusic.Score(TPQ)
    drums = [(i * TPQ // 2, TPQ // 4, 42) for i in range(n_windows * 16)]
    score.tracks.append(track("piano", 0, piano))
    score.tracks.append(track("drums", 0, drums, is_drum=True))
    if bass is not None:
        score.tracks.append(track("bass", 33, bass))
    return score


def starts(n_windows: int) -> np.ndarray:
    return WINDOW * np.arange(n_windows, dtype=np.int64)


def busy_bass(n_windows: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """Eighth notes of random pitch: a bass that disagrees with every chord."""
    rng = np.random.default_rng(seed)
    return [(i * TPQ // 2, TPQ // 2, int(p)) for i, p in enumerate(rng.integers(28, 64, n_windows * 16))]


ALL_LABELS = list(range(1, ch.N_CHORDS))  # 12 roots x every quality


def test_vocabulary_and_encoding():
    assert ch.QUALITIES == ("maj", "min")
    assert ch.N_CHORDS == 25
    assert ch.make_label(0, "maj") == 1 and ch.make_label(0, "min") == 2 and ch.make_label(9, "min") == 20
    assert [ch.chord_name(label) for label in (0, 1, 2, 3, 20, 23)] == ["N", "C", "Cm", "C#", "Am", "B"]
    assert ch.chord_root(0) == -1 and ch.chord_root(20) == 9
    assert ch.chord_pitch_classes(20).tolist() == [0, 4, 9] and ch.chord_pitch_classes(0).tolist() == []
    assert ch.chord_pitch_classes(ch.parse_chord("G")).tolist() == [2, 7, 11]
    for label in range(ch.N_CHORDS):
        assert ch.parse_chord(ch.chord_name(label)) == label
    with pytest.raises(ValueError):
        ch.chord_name(ch.N_CHORDS)


@pytest.mark.parametrize("base", [36, 60, 72])  # C2, C4, C5
def test_every_root_and_quality_is_labelled_exactly(base: int):
    n = len(ALL_LABELS) // 4  # 24 chords -> 6 windows
    score = song(block_chords(ALL_LABELS, base), busy_bass(n), n)
    win = rep.score_windows(score)
    np.testing.assert_array_equal(win.start_ticks, starts(n))
    labels = ch.window_chords(score, win.start_ticks)
    assert labels.dtype == np.uint8 and labels.shape == (n, 4)
    assert labels.ravel().tolist() == ALL_LABELS


def test_inversions_and_doublings_keep_the_root():
    # first inversion of C (E G C), second inversion of Am (E A C), a doubled root in F
    piano = [(0, HALF, p) for p in (64, 67, 72)] + [(HALF, HALF, p) for p in (64, 69, 72)]
    piano += [(2 * HALF, HALF, p) for p in (53, 57, 60, 65)]
    labels = ch.window_chords(song(piano, None, 1), starts(1))
    assert [ch.chord_name(label) for label in labels[0]] == ["C", "Am", "F", "N"]


def test_empty_half_bar_and_lone_notes_are_n():
    piano = block_chords([ch.parse_chord("C"), ch.N, ch.parse_chord("G"), ch.N])
    piano.append((3 * HALF, HALF, 64))  # one pitch class only: not a chord
    labels = ch.window_chords(song(piano, busy_bass(1), 1), starts(1))
    assert [ch.chord_name(label) for label in labels[0]] == ["C", "N", "G", "N"]
    assert ch.window_chords(song([], busy_bass(1), 1), starts(1)).tolist() == [[0, 0, 0, 0]]
    assert ch.window_chords(song(piano, None, 1), np.zeros(0, dtype=np.int64)).shape == (0, 4)


def test_bass_never_changes_a_label():
    n = 6
    piano = block_chords(ALL_LABELS)
    expected = ch.window_chords(song(piano, None, n), starts(n))
    assert expected.ravel().tolist() == ALL_LABELS
    for seed in range(3):
        assert (ch.window_chords(song(piano, busy_bass(n, seed), n), starts(n)) == expected).all()
    # a second bass (named, not a GM bass program) and a held cluster on the bass's program
    score = song(piano, busy_bass(n), n)
    score.tracks.append(track("Synth Bass line", 81, busy_bass(n, seed=7)))
    score.tracks.append(track("fretless", 35, [(0, n * WINDOW, p) for p in range(40, 52)]))
    assert (ch.window_chords(score, starts(n)) == expected).all()
    # a track passed as the bass is left out even when nothing else says it is a bass
    lead = track("lead", 80, [(0, n * WINDOW, p) for p in (54, 58, 61, 66, 70, 73, 78, 82, 85)])
    score.tracks.append(lead)
    f_sharp = ch.parse_chord("F#")
    assert (ch.window_chords(score, starts(n)) == f_sharp).all()  # F# in 3 octaves drowns every chord
    assert (ch.window_chords(score, starts(n), bass_track=lead) == expected).all()


def test_chord_held_across_a_half_bar_boundary_counts_in_both():
    # C major from quarter 1 to quarter 3 (half bars 0 and 1), then G across the window boundary
    piano = [(TPQ, HALF, p) for p in (60, 64, 67)] + [(WINDOW - TPQ, HALF, p) for p in (55, 59, 62)]
    score = song(piano, busy_bass(2), 2)
    hists = ch.half_bar_histograms(score, starts(2))
    assert hists.shape == (2, 4, 12)
    np.testing.assert_allclose(hists[0, 0], np.eye(12)[[0, 4, 7]].sum(0))  # one quarter of each
    np.testing.assert_allclose(hists[0, 1], np.eye(12)[[0, 4, 7]].sum(0))
    np.testing.assert_allclose(hists[0, 3], np.eye(12)[[2, 7, 11]].sum(0))
    np.testing.assert_allclose(hists[1, 0], np.eye(12)[[2, 7, 11]].sum(0))
    labels = ch.window_chords(score, starts(2))
    assert [[ch.chord_name(label) for label in row] for row in labels] == [["C", "C", "N", "G"], ["G", "N", "N", "N"]]
    # a window may start on any tick (after a 3/4 stretch, say): only its own spans count
    np.testing.assert_allclose(ch.half_bar_histograms(score, [WINDOW - TPQ])[0, 0], 2 * np.eye(12)[[2, 7, 11]].sum(0))


def test_duration_weighting_decides_between_overlapping_chords():
    # 1.5 quarters of C then half a quarter of Am in one half bar -> C; and the other way round -> Am
    c_then_am = [(0, 3 * TPQ // 2, p) for p in (60, 64, 67)] + [(3 * TPQ // 2, TPQ // 2, p) for p in (57, 60, 64)]
    am_then_c = [(0, 3 * TPQ // 2, p) for p in (57, 60, 64)] + [(3 * TPQ // 2, TPQ // 2, p) for p in (60, 64, 67)]
    assert ch.chord_name(ch.window_chords(song(c_then_am, None, 1), starts(1))[0, 0]) == "C"
    assert ch.chord_name(ch.window_chords(song(am_then_c, None, 1), starts(1))[0, 0]) == "Am"


def test_cosine_rule_ties_and_threshold():
    def vec(*pcs: int) -> np.ndarray:
        return np.eye(12)[list(pcs)].sum(0)

    names = [
        ch.chord_name(label)
        for label in ch.label_histograms(
            np.stack(
                [
                    vec(0, 7),  # C5: C and Cm tie; the root C sounds in both -> the first quality, C
                    vec(4, 7),  # E G: C and Em tie; only Em's root sounds -> Em
                    vec(0, 4),  # C E: C and Am tie; only C's root sounds -> C
                    vec(0, 4, 7, 9),  # C6 = Am7: C and Am tie, both roots sound equally -> the lower label, C
                    vec(0, 4, 7, 10),  # C7 -> C
                    vec(0, 3, 6),  # Cdim: Cm, Ebm, Ab and B tie; roots C and Eb sound -> the lower label, Cm
                    vec(0),  # one pitch class: 0.577 < MIN_SCORE -> N
                    np.ones(12),  # everything: 0.5 -> N
                    np.zeros(12),  # silence -> N
                ]
            )
        )
    ]
    assert names == ["C", "Em", "C", "C", "C", "Cm", "N", "N", "N"]
    assert ch.label_histograms(vec(0), min_score=0.5) == ch.parse_chord("C")
    full = ("maj", "min", "7", "m7", "dim", "sus4", "5")
    assert ch.label_histograms(vec(0, 7), qualities=full) == 1 + 0 * 7 + 6  # the power-chord template of C


def test_parse_chord():
    cases = {
        "C": "C",
        "Cm": "Cm",
        "C7": "C",
        "Cmaj7": "C",
        "Cm7": "Cm",
        "F#m7b5": "F#m",
        "Bbdim": "Bbm",
        "Gsus4": "G",
        "E5": "E",
        "Am7/G": "Am",
        "C/E": "C",
        "Db9": "C#",
        "Ebmaj9#11": "Eb",
        "C6/9": "C",
        "Cmadd9": "Cm",
        "C-7": "Cm",
        "Ab+": "Ab",
        "bm": "Bm",
        " G ": "G",
        "N": "N",
        "NC": "N",
        "N.C.": "N",
        "-": "N",
    }
    assert {text: ch.chord_name(ch.parse_chord(text)) for text in cases} == cases


@pytest.mark.parametrize("text", ["", "H", "hello", "Cxyz", "7", "C#m7b5q", "C/X", "Am F"])
def test_parse_chord_rejects_nonsense_in_one_line(text: str):
    with pytest.raises(ValueError, match="not a chord") as err:
        ch.parse_chord(text)
    assert "\n" not in str(err.value)


def test_parse_progression():
    am, f, c, g = (ch.parse_chord(x) for x in ("Am", "F", "C", "G"))
    np.testing.assert_array_equal(ch.parse_progression("Am F C G"), [am, am, f, f, c, c, g, g])
    np.testing.assert_array_equal(ch.parse_progression("Am, F, C, G", chords_per_bar=2), [am, f, c, g])
    np.testing.assert_array_equal(ch.parse_progression("| C G | Am | F |"), [c, g, am, am, f, f])
    assert ch.parse_progression("C N").tolist() == [c, c, 0, 0] and ch.parse_progression("C").dtype == np.uint8
    for bad, kwargs in [("", {}), ("C G", {"chords_per_bar": 3}), ("| C G Am |", {}), ("C Q", {})]:
        with pytest.raises(ValueError):
            ch.parse_progression(bad, **kwargs)


def test_key_from_chords():
    # C major, not A minor: the histogram is blind to order, and C is a tone of Am, F and C
    # (8 against A's 6 with roots counted twice), so Am F C G reads as vi-IV-I-V in C
    assert rep.KEY_NAMES[ch.key_from_chords(ch.parse_progression("Am F C G"))] == "C major"
    assert rep.KEY_NAMES[ch.key_from_chords(ch.parse_progression("C F G C"))] == "C major"
    assert rep.KEY_NAMES[ch.key_from_chords(ch.parse_progression("Am Dm E Am"))] == "A minor"
    for shift in range(12):  # transposed progressions give transposed keys
        labels = ch.transpose_chords(ch.parse_progression("Am Dm E Am"), shift)
        assert ch.key_from_chords(labels) == 12 + (9 + shift) % 12
    assert ch.key_from_chords(np.zeros(8, dtype=np.uint8)) == 0
    np.testing.assert_allclose(
        ch.chord_histogram(ch.parse_progression("C Am", chords_per_bar=2)), [3, 0, 0, 0, 2, 0, 0, 1, 0, 2, 0, 0]
    )


def test_transpose_chords():
    assert ch.chord_name(ch.transpose_chords(ch.parse_chord("C"), 7)) == "G"
    assert [ch.chord_name(x) for x in ch.transpose_chords(ch.parse_progression("Am N", 2), -2)] == ["Gm", "N"]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, ch.N_CHORDS, (50, 4)).astype(np.uint8)
    shifts = rng.integers(-11, 12, 50)
    moved = ch.transpose_chords(labels, shifts)
    assert moved.shape == labels.shape and moved.dtype == np.uint8
    np.testing.assert_array_equal(ch.transpose_chords(moved, -shifts), labels)
    np.testing.assert_array_equal(moved == 0, labels == 0)
    roots = np.vectorize(ch.chord_root)
    pitched = labels > 0
    np.testing.assert_array_equal(roots(moved)[pitched], ((roots(labels) + shifts[:, None]) % 12)[pitched])
    np.testing.assert_array_equal(ch.transpose_chords(labels, 12), labels)


def test_chord_tone_hits():
    def onset(midi: int) -> int:
        return rep.ONSET_OFFSET + rep.fold_pitch(midi) - rep.BASS_LOW

    tokens = np.zeros((2, 64), dtype=np.uint8)
    # pair 0 over C | Am | N | G: C (root), E (tone), sustain; A (root), B (no); D under N; G (root), D (tone), F (no)
    tokens[0, [0, 8, 16, 20, 32, 48, 52, 60]] = [onset(p) for p in (36, 40, 45, 47, 38, 43, 50, 41)]
    tokens[0, 1:8] = rep.SUSTAIN
    # pair 1 all N: nothing counted
    tokens[1, [0, 16]] = onset(36)
    chords = np.stack([ch.parse_progression("C Am N G", 2), ch.parse_progression("N N", 1)])
    tone, root, under = ch.chord_tone_hits(tokens, chords)
    assert tone.tolist() == [5, 0] and root.tolist() == [3, 0] and under.tolist() == [7, 0]
    # the real bass of the synthetic song: root notes under their chords hit every time
    labels = np.array(ALL_LABELS[:4], dtype=np.uint8)[None]
    roots = [onset(36 + ch.chord_root(label)) for label in labels[0]]
    line = np.zeros((1, 64), dtype=np.uint8)
    line[0, ::16] = roots
    assert [int(x[0]) for x in ch.chord_tone_hits(line, labels)] == [4, 4, 4]
