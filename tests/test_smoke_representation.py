"""Round trip of a real Freedoom song through the shared representation."""

from pathlib import Path

import numpy as np

from dnb import representation as rep

SONG = Path(__file__).resolve().parents[1] / "data/raw/freedoom/d_dm01.mid"


def test_real_song_round_trip():
    windows = rep.score_windows(rep.load_score(SONG.read_bytes()))
    assert windows.drums.shape == (32, 32, 14)
    assert windows.tokens.shape == (32, 64)
    pm = rep.windows_to_pretty_midi(windows.drums, windows.tokens, bpm=float(windows.bpm[0]), bass_program=36)
    again = rep.score_windows(rep.load_score(rep.pretty_midi_to_bytes(pm)))
    np.testing.assert_array_equal(again.drums, windows.drums)
    np.testing.assert_array_equal(again.tokens, windows.tokens)


def test_fold_pitch_keeps_pitch_class():
    pitches = np.arange(0, 128)
    folded = rep.fold_pitch(pitches)
    assert folded.min() == rep.BASS_LOW and folded.max() == rep.BASS_HIGH
    np.testing.assert_array_equal(folded % 12, pitches % 12)
