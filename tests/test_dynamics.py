"""Bass dynamics: the velocity rule on a built window, humanized timing, and the command-line flags."""

import numpy as np
import pytest
import symusic

from dnb import representation as rep
from producer import dynamics
from producer.generate import with_bass

# (start, end) in 32nd steps and the velocity the rule gives, over kicks on 16ths 0, 4 and 10
NOTES = [
    ((0, 6), 112),  # kick and downbeat
    ((6, 8), 64),  # a 16th on the "e": ghost
    ((8, 12), 112),  # kick (beat 2)
    ((12, 14), 96),  # short but on the 8th grid: normal
    ((14, 15), 64),  # a 32nd off the 8th grid: ghost
    ((17, 20), 96),  # off the grid but 3 steps long: normal
    ((20, 22), 112),  # short, off the beat, but on a kick: accent
    ((22, 32), 96),  # long
    ((32, 35), 112),  # downbeat of bar 2, no kick
    ((35, 36), 64),  # ghost
    ((40, 64), 96),  # beat 2 of bar 2, no kick
]
KICKS = (0, 4, 10)


def window() -> tuple[np.ndarray, np.ndarray]:
    tokens = np.zeros(rep.BASS_STEPS, dtype=np.int64)
    for i, ((start, end), _) in enumerate(NOTES):
        tokens[start] = rep.ONSET_OFFSET + i
        tokens[start + 1:end] = rep.SUSTAIN
    drums = np.zeros((rep.DRUM_STEPS, rep.DRUM_CLASSES), dtype=np.uint8)
    drums[list(KICKS), rep.KICK] = 1
    drums[:, 4] = 1  # hi-hats on every 16th change nothing (and make the score end with the window)
    return tokens, drums


def test_velocity_rule_on_a_built_window():
    tokens, drums = window()
    assert [(s, e) for s, e, _ in rep.token_notes(tokens)] == [n for n, _ in NOTES]
    assert dynamics.velocities(tokens, drums) == [v for _, v in NOTES]
    assert dynamics.velocities(tokens, drums, "fixed") == [100] * len(NOTES)
    with pytest.raises(ValueError):
        dynamics.velocities(tokens, drums, "loud")


def score_of(drums: np.ndarray, tpq: int = 480) -> symusic.Score:
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, 120.0))
    kit = symusic.Track("kit", 0, True)
    for step, cls in zip(*np.nonzero(drums)):
        kit.notes.append(symusic.Note(int(step) * tpq // 4, tpq // 4, int(rep.CLASS_TO_GM_DRUM[cls]), 90))
    score.tracks.append(kit)
    return score


def test_with_bass_writes_the_rule_and_humanizes_with_a_seed():
    tokens, drums = window()
    score = score_of(drums)
    windows = rep.score_windows(score, with_bass=False)
    assert len(windows.drums) == 1 and (windows.drums[0] == drums).all()

    def bass(**kw):
        return with_bass(score, windows, tokens[None], 33, **kw).tracks[-1].notes.numpy()

    plain = bass()
    assert plain["velocity"].tolist() == [v for _, v in NOTES]
    assert plain["time"].tolist() == [s * 60 for (s, _), _ in NOTES]  # 60 ticks per 32nd at tpq 480
    assert (bass(velocity="fixed")["velocity"] == 100).all()
    jittered = bass(humanize_ms=10.0, seed=4)
    shift = jittered["time"] - plain["time"]
    assert np.abs(shift).max() <= 10 and np.count_nonzero(shift) >= 8  # 0.96 ticks per ms at 120 bpm
    assert (np.diff(jittered["time"]) > 0).all()
    ends = jittered["time"] + jittered["duration"]
    assert (ends[:-1] <= jittered["time"][1:]).all()  # still monophonic
    assert (jittered["time"] == bass(humanize_ms=10.0, seed=4)["time"]).all()
    assert not (jittered["time"] == bass(humanize_ms=10.0, seed=5)["time"]).all()


def test_cli_velocity_and_humanize_flags(tmp_path):
    from dnb.data import synthetic_split
    from dnb.tensors import write_split
    from producer import cli

    tensors = tmp_path / "tensors"
    tensors.mkdir()
    write_split(tensors / "train.npz", {k: v.numpy() for k, v in synthetic_split(16, seed=0).items()})
    (tensors / "meta.json").write_text('{"styles": ["rock"]}')
    _, drums = window()
    score_of(np.tile(drums, (2, 1))).dump_midi(str(tmp_path / "drums.mid"))
    base = ["generate", str(tmp_path / "drums.mid"), "--model", "root_on_kick", "--tensors", str(tensors),
            "--style", "rock"]
    assert cli.main(base + ["--out", str(tmp_path / "rule.mid")]) == 0
    assert cli.main(base + ["--velocity", "fixed", "--out", str(tmp_path / "fixed.mid")]) == 0
    rule = symusic.Score(str(tmp_path / "rule.mid")).tracks[-1].notes.numpy()
    fixed = symusic.Score(str(tmp_path / "fixed.mid")).tracks[-1].notes.numpy()
    assert rule["velocity"].tolist() == [112] * 6  # root on every kick: all accents
    assert fixed["velocity"].tolist() == [100] * 6
    assert cli.main(base + ["--humanize", "500", "--out", str(tmp_path / "x.mid")]) == 2
