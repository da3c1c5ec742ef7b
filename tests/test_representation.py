"""MIDI written with pretty_midi (480 ticks per quarter) -> exact drum grids and bass tokens."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from dnb import representation as rep

TPQ = 480
S16 = TPQ // 4  # ticks per drum step
S32 = TPQ // 8  # ticks per bass step
WINDOW = rep.QUARTERS_PER_WINDOW * TPQ  # 3840 ticks


def make_midi(
    drums: list[tuple[int, int]] = (),
    bass: list[tuple[int, int, int]] = (),
    tempos: list[tuple[int, float]] = ((0, 120.0),),
    signatures: list[tuple[int, int, int]] = (),
    bass_program: int = 33,
) -> bytes:
    """MIDI bytes from drum hits (gm_key, tick), bass notes (pitch, start_tick, end_tick),
    tempo changes (tick, bpm) and time signatures (tick, numerator, denominator)."""
    pm = pretty_midi.PrettyMIDI(resolution=TPQ, initial_tempo=tempos[0][1])
    pm._tick_scales = [(tick, 60.0 / (bpm * TPQ)) for tick, bpm in tempos]
    pm._update_tick_to_time(64 * WINDOW)
    sec = pm.tick_to_time
    pm.time_signature_changes = [pretty_midi.TimeSignature(n, d, sec(t)) for t, n, d in signatures]
    if drums:
        kit = pretty_midi.Instrument(0, is_drum=True, name="drums")
        kit.notes = [pretty_midi.Note(100, key, sec(t), sec(t + S16)) for key, t in drums]
        pm.instruments.append(kit)
    if bass:
        line = pretty_midi.Instrument(bass_program, name="bass")
        line.notes = [pretty_midi.Note(100, p, sec(a), sec(b)) for p, a, b in bass]
        pm.instruments.append(line)
    return rep.pretty_midi_to_bytes(pm)


def windows_of(data: bytes) -> rep.Windows:
    return rep.score_windows(rep.load_score(data))


def onset(pitch: int) -> int:
    return rep.ONSET_OFFSET + pitch - rep.BASS_LOW


# Every window needs a note at its very end for the window to be complete.
END_HIT = [(36, 2 * WINDOW - S16)]


def test_every_gm_drum_key_has_exactly_one_class():
    listed = sorted(k for keys in rep._CLASS_KEYS.values() for k in keys)
    assert listed == list(range(27, 88))
    assert rep.GM_DRUM_TO_CLASS[[35, 36, 38, 40, 42, 44, 46, 49, 51]].tolist() == [0, 0, 1, 1, 4, 4, 5, 9, 10]
    assert rep.GM_DRUM_TO_CLASS[rep.CLASS_TO_GM_DRUM].tolist() == list(range(rep.DRUM_CLASSES))


def test_drum_keys_land_in_their_class():
    hits = [(35, 0), (36, S16), (42, 2 * S16), (44, 3 * S16), (38, 4 * S16), (46, 5 * S16), (81, 6 * S16)]
    win = windows_of(make_midi(hits + [(27, WINDOW - S16)]))
    assert win.drums.shape == (1, 32, 14)
    expected = np.zeros((32, 14), np.uint8)
    for step, cls in [(0, 0), (1, 0), (2, 4), (3, 4), (4, 1), (5, 5), (6, 12), (31, 13)]:
        expected[step, cls] = 1
    np.testing.assert_array_equal(win.drums[0], expected)


def test_sixteenth_quantisation_of_early_and_late_hits():
    # 20 ticks early / late (a 16th is 120 ticks) round to the nearest step; the 59-tick
    # late hit still rounds down, the 61-tick late hit rounds up.
    hits = [(38, 4 * S16 - 20), (38, 8 * S16 + 20), (42, 10 * S16 + 59), (42, 12 * S16 + 61), (36, WINDOW - S16)]
    win = windows_of(make_midi(hits))
    assert sorted(zip(*np.nonzero(win.drums[0]))) == [(4, 1), (8, 1), (10, 4), (13, 4), (31, 0)]


def test_bass_tokens_sustain_and_monophony():
    bass = [
        (40, 0, 4 * S32),  # E2 for 4 steps: onset + 3 sustains
        (45, 8 * S32, 9 * S32),  # A2 and E2 start together: the lowest (E2) is kept
        (40, 8 * S32, 12 * S32),
        (43, 16 * S32, 30 * S32),  # G2 held long, cut by the next onset at step 20
        (38, 20 * S32, 20 * S32 + 130),  # D2 lasting 130 ticks: rounds to 2 steps
        (33, 24 * S32 - 10, 26 * S32 + 10),  # slightly early / late: steps 24..26
    ]
    win = windows_of(make_midi(END_HIT, bass))
    expected = np.zeros(64, np.uint8)
    expected[0:4] = [onset(40), 1, 1, 1]
    expected[8:12] = [onset(40), 1, 1, 1]
    expected[16:20] = [onset(43), 1, 1, 1]
    expected[20:22] = [onset(38), 1]
    expected[24:26] = [onset(33), 1]
    np.testing.assert_array_equal(win.tokens[0], expected)
    np.testing.assert_array_equal(win.tokens[1], np.zeros(64, np.uint8))


def test_octave_folding_of_high_and_low_bass_notes():
    bass = [(p, 2 * i * S32, (2 * i + 1) * S32) for i, p in enumerate([70, 16, 21, 64, 63])]
    win = windows_of(make_midi(END_HIT, bass))
    # 70 (A#4) -> 58, 16 (E0) -> 28, 21 (A0) -> 33, 64 (E4) -> 52, 63 (D#4) stays
    assert win.tokens[0][[0, 2, 4, 6, 8]].tolist() == [onset(58), onset(28), onset(33), onset(52), onset(63)]


def test_note_held_across_window_boundary_starts_next_window_with_rests():
    bass = [(40, 60 * S32, 70 * S32), (47, WINDOW + 8 * S32, WINDOW + 9 * S32)]
    win = windows_of(make_midi(END_HIT, bass))
    assert win.tokens[0][60:].tolist() == [onset(40), 1, 1, 1]
    assert win.tokens[1][:10].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, onset(47), 0]


def test_windows_follow_a_three_four_to_four_four_change():
    # two bars of 3/4 (2 x 1440 ticks), then 4/4: windows start at 2880 and 2880 + 3840
    change = 2 * 3 * TPQ
    hits = [(36, 0), (38, change), (42, change + S16), (38, change + WINDOW), (36, change + 2 * WINDOW - S16)]
    win = windows_of(make_midi(hits, signatures=[(0, 3, 4), (change, 4, 4)]))
    assert win.start_ticks.tolist() == [change, change + WINDOW]
    assert win.index.tolist() == [0, 1]
    assert sorted(zip(*np.nonzero(win.drums[0]))) == [(0, 1), (1, 4)]
    assert sorted(zip(*np.nonzero(win.drums[1]))) == [(0, 1), (31, 0)]


def test_only_three_four_has_no_window():
    with pytest.raises(rep.NotFourFour):
        windows_of(make_midi([(36, 0), (36, 4 * WINDOW)], signatures=[(0, 3, 4)]))


def test_tempo_at_each_window_start():
    tempos = [(0, 120.0), (WINDOW, 90.0), (WINDOW + 1000, 150.0), (3 * WINDOW + 10, 60.0)]
    win = windows_of(make_midi([(36, 4 * WINDOW - S16)], tempos=tempos))
    np.testing.assert_allclose(win.bpm, [120.0, 90.0, 150.0, 150.0], rtol=1e-5)


def random_tokens(rng: np.random.Generator, n: int) -> np.ndarray:
    """Valid token sequences: sustains only continue a note, never lead a window."""
    tokens = np.zeros((n, rep.BASS_STEPS), np.uint8)
    for w in range(n):
        sounding = False
        for step in range(rep.BASS_STEPS):
            r = rng.random()
            if r < 0.2:
                tokens[w, step], sounding = rep.ONSET_OFFSET + rng.integers(rep.BASS_PITCHES), True
            elif r < 0.7 and sounding:
                tokens[w, step] = rep.SUSTAIN
            else:
                tokens[w, step], sounding = rep.REST, False
    return tokens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_to_midi_to_grid_is_identity(seed: int):
    rng = np.random.default_rng(seed)
    n = 3
    drums = (rng.random((n, rep.DRUM_STEPS, rep.DRUM_CLASSES)) < 0.15).astype(np.uint8)
    drums[-1, -1, rep.KICK] = 1  # the last window must reach its end
    tokens = random_tokens(rng, n)
    bpm = float(rng.uniform(70, 180))
    pm = rep.windows_to_pretty_midi(drums, tokens, bpm=bpm, bass_program=34)
    win = windows_of(rep.pretty_midi_to_bytes(pm))
    np.testing.assert_array_equal(win.drums, drums)
    np.testing.assert_array_equal(win.tokens, tokens)
    np.testing.assert_allclose(win.bpm, bpm, rtol=1e-5)


def test_packed_roll_is_the_roll_bit_for_bit():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, rep.VOCAB_SIZE, (50, rep.BASS_STEPS)).astype(np.uint8)
    tokens[:, :3] = [rep.ONSET_OFFSET, rep.ONSET_OFFSET + 35, rep.ONSET_OFFSET + 8]  # lowest, highest, byte edge
    packed = rep.tokens_to_packed_roll(tokens)
    assert packed.shape == (50, 64, 5) and packed.dtype == np.uint8
    assert np.array_equal(packed, np.packbits(rep.tokens_to_roll(tokens), axis=-1))
    assert np.array_equal(rep.unpack_roll(packed), rep.tokens_to_roll(tokens))
    assert packed[0, 0].tolist() == [128, 0, 0, 0, 0] and packed[0, 1].tolist() == [0, 0, 0, 0, 16]
    assert packed[0, 2].tolist() == [0, 128, 0, 0, 0]
