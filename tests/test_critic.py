"""dnb.critic: segments, hand-computed features, and the critic's test on synthetic lines."""

import numpy as np
import pytest

from dnb import critic as C
from dnb import representation as rep
from dnb.chords import make_label

W = C.SEGMENT_WINDOWS


def line(notes: dict[int, int], length: int = 4) -> np.ndarray:
    """Tokens [64]: an onset of folded pitch index p at each step, held ``length`` steps."""
    tokens = np.zeros(rep.BASS_STEPS, dtype=np.int64)
    for step, p in notes.items():
        tokens[step] = rep.ONSET_OFFSET + p
        tokens[step + 1 : step + length] = rep.SUSTAIN
    return tokens


def no_drums(n: int = 1) -> np.ndarray:
    return np.zeros((n, W, rep.DRUM_STEPS, rep.DRUM_CLASSES), dtype=np.uint8)


def feature(values: np.ndarray, name: str) -> np.ndarray:
    return values[:, C.FEATURE_NAMES.index(name)]


# --------------------------------------------------------------------------- segments


def test_segments_exact_rows():
    # song 7: rows 0-9 with a break before row 5 (runs of 5 and 5); song 8: rows 10-12
    # (shorter than 4); song 9: rows 13-21 (a run of 9), row 13 claims to follow row 12
    # but belongs to another song.
    song = np.array([7] * 10 + [8] * 3 + [9] * 9)
    follows = np.ones(len(song), dtype=bool)
    follows[[0, 5, 10]] = False
    np.testing.assert_array_equal(
        C.segments(follows, song),
        [[0, 1, 2, 3], [5, 6, 7, 8], [13, 14, 15, 16], [17, 18, 19, 20]],
    )


def test_segments_greedy_after_every_break_and_empty():
    follows = np.array([False, True, True, False, True, True, True, True, True, True, True])
    np.testing.assert_array_equal(C.segments(follows, np.zeros(11, dtype=int)), [[3, 4, 5, 6], [7, 8, 9, 10]])
    assert C.segments(np.zeros(0, dtype=bool), np.zeros(0, dtype=int)).shape == (0, W)
    assert C.segments(np.ones(3, dtype=bool), np.zeros(3, dtype=int)).shape == (0, W)


# --------------------------------------------------------------------------- features


def test_feature_names_match_columns():
    assert len(set(C.FEATURE_NAMES)) == len(C.FEATURE_NAMES) == C.N_FEATURES
    values = C.features(np.zeros((3, W, 64), dtype=np.uint8), no_drums(3))
    assert values.shape == (3, C.N_FEATURES)
    assert np.isfinite(values).all()


def test_repeated_line_is_one_distinct_line_and_hand_computed_pitch_features():
    # E1 (p=0), B1 (7), E2 (12), E2 (12) on the four beats 1 and 3 of both bars, held a 16th each
    one = line({0: 0, 16: 7, 32: 12, 48: 12})
    tokens = np.tile(one, (1, W, 1))
    f = C.features(tokens, no_drums())
    expected = {
        "same_line_next": 1.0, "same_line_skip": 1.0, "same_rhythm_next": 1.0, "same_rhythm_skip": 1.0,
        "token_agree_next": 1.0, "token_agree_skip": 1.0, "onset_f1_next": 1.0, "same_pitch_set_next": 1.0,
        "distinct_lines": 1.0, "distinct_rhythms": 1.0, "bar_repeat": 0.0,
        "onset_density": 16 / 256, "onsets_std": 0.0, "onsets_range": 0.0,
        "empty_window_share": 0.0, "empty_bar_share": 0.0,
        "sustain_share": 48 / 256, "rest_share": 192 / 256, "longest_rest": 12 / 64, "mean_note_length": 4.0,
        "off_grid": 0.0, "on_beat": 1.0, "on_offbeat_eighth": 0.0, "downbeat_onset": 1.0,
        "on_kick": 0.0, "kick_covered": 0.0,
        "pitch_range": 12 / 35, "pitch_mean": (0 + 7 + 12 + 12) / 4 / 35,
        "pitch_std": np.std([0, 7, 12, 12]) / 35,
        "distinct_pitch_classes": 2.0,  # E and B
        "pc_entropy": -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)),
        "top_pc_share": 0.75,
        # 15 intervals: per window +7, +5, 0 (x4) and -12 at the 3 window boundaries
        "interval_up": 8 / 11, "mean_abs_interval": (4 * 7 + 4 * 5 + 3 * 12) / 15 / 12,
        "interval_0": 4 / 15, "interval_5": 4 / 15, "interval_7": 4 / 15, "interval_octave": 3 / 15,
        "interval_1": 0.0, "interval_11": 0.0,
        "chord_root": 0.0, "chord_tone": 0.0, "under_chord": 0.0,  # no chords given
    }
    for name, value in expected.items():
        assert feature(f, name)[0] == pytest.approx(value), name

    e_major = make_label(4, "maj")  # E G# B: E is the root, B a chord tone
    chords = np.full((1, W, 4), e_major)
    g = C.features(tokens, no_drums(), chords)
    assert feature(g, "chord_root")[0] == pytest.approx(0.75)
    assert feature(g, "chord_tone")[0] == pytest.approx(1.0)
    assert feature(g, "under_chord")[0] == pytest.approx(1.0)
    chords[:, :, 2:] = 0  # N over the second bar: its onsets (E2, E2) are not counted
    g = C.features(tokens, no_drums(), chords)
    assert feature(g, "under_chord")[0] == pytest.approx(0.5)
    assert feature(g, "chord_root")[0] == pytest.approx(0.5)  # E1 of the two (E1, B1)
    np.testing.assert_array_equal(np.delete(g, [C.FEATURE_NAMES.index(n) for n in
                                                ("chord_root", "chord_tone", "under_chord")], axis=1),
                                  np.delete(f, [C.FEATURE_NAMES.index(n) for n in
                                                ("chord_root", "chord_tone", "under_chord")], axis=1))


def test_four_different_lines_and_variable_density():
    lines = [line({0: 0}), line({0: 0, 32: 5}), line({0: 0, 16: 0, 32: 5}), line({8: 3, 24: 3, 40: 3, 56: 3})]
    f = C.features(np.stack(lines)[None], no_drums())
    assert feature(f, "distinct_lines")[0] == 4
    assert feature(f, "distinct_rhythms")[0] == 4
    assert feature(f, "same_line_next")[0] == 0
    # onset F1 of neighbours: (1 vs 2) 2*1/3, (2 vs 3) 2*2/5, (3 vs 4) 0
    assert feature(f, "onset_f1_next")[0] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert feature(f, "onsets_std")[0] == pytest.approx(np.std([1, 2, 3, 4]))
    assert feature(f, "onsets_range")[0] == 3
    assert feature(f, "empty_bar_share")[0] == pytest.approx(1 / 8)  # bar 2 of window 1
    assert feature(f, "on_offbeat_eighth")[0] == pytest.approx(0.0)  # steps 8, 24, ... are beats 2 and 4
    assert feature(f, "longest_rest")[0] == pytest.approx(60 / 64)  # window 1: one 4-step note


def test_onsets_on_the_kicks_and_off_the_grid():
    drums = no_drums()
    drums[0, :, [0, 6, 10], rep.KICK] = 1  # kicks at 16ths 0, 6, 10
    drums[0, :, [4, 12], rep.SNARE] = 1
    on_kicks = line({0: 0, 12: 3, 20: 5}, length=2)  # 32nd steps 2 x the kick 16ths
    f = C.features(np.tile(on_kicks, (1, W, 1)), drums)
    assert feature(f, "on_kick")[0] == 1.0
    assert feature(f, "kick_covered")[0] == 1.0
    assert feature(f, "on_snare")[0] == 0.0
    assert feature(f, "off_grid")[0] == 0.0
    off = line({1: 0, 8: 3, 13: 5, 26: 5}, length=2)  # two odd 32nd steps, one on a snare (16th 4)
    g = C.features(np.tile(off, (1, W, 1)), drums)
    assert feature(g, "off_grid")[0] == 0.5
    assert feature(g, "on_snare")[0] == 0.25
    assert feature(g, "on_kick")[0] == 0.0
    assert feature(g, "kick_covered")[0] == 0.0


def test_silence_has_finite_features():
    f = C.features(np.zeros((1, W, 64), dtype=np.uint8), no_drums())
    assert feature(f, "longest_rest")[0] == 1.0
    assert feature(f, "onset_f1_next")[0] == 1.0  # two empty windows agree
    assert feature(f, "empty_window_share")[0] == 1.0
    assert feature(f, "distinct_lines")[0] == 1.0
    assert feature(f, "pc_entropy")[0] == 0.0


def test_chunks_do_not_change_features():
    tokens, drums = looped(np.random.default_rng(3), 50)
    np.testing.assert_array_equal(C.features(tokens, drums, chunk=7), C.features(tokens, drums))


# --------------------------------------------------------------------------- critic_test

SCALE = np.array([0, 3, 5, 7, 10, 12, 15])


def windows(rng: np.random.Generator, p_on: np.ndarray, kick: np.ndarray | None = None) -> np.ndarray:
    """Random windows [n, 64]: an onset on each 16th with probability ``p_on`` (per row, or
    per row and step), a pitch of a minor-pentatonic scale, held until the next onset."""
    n = len(p_on)
    p = np.broadcast_to(np.asarray(p_on, dtype=float).reshape(n, -1), (n, 32))
    on = rng.random((n, 32)) < p
    tokens = np.ones((n, 64), dtype=np.int64)
    tokens[:, ::2][on] = rep.ONSET_OFFSET + rng.choice(SCALE, size=on.sum())
    tokens[np.cumsum(tokens >= rep.ONSET_OFFSET, axis=1) == 0] = rep.REST
    return tokens


def random_drums(rng: np.random.Generator, n: int) -> np.ndarray:
    """One random 2-bar beat per segment, looped over its 4 windows."""
    drums = np.zeros((n, W, rep.DRUM_STEPS, rep.DRUM_CLASSES), dtype=np.uint8)
    drums[:, :, :, rep.KICK] = (rng.random((n, 1, rep.DRUM_STEPS)) < 0.25).astype(np.uint8)
    drums[:, :, [8, 24], rep.SNARE] = 1
    return drums


def repeat_with_noise(rng: np.random.Generator, riff: np.ndarray, noise: float = 0.2) -> np.ndarray:
    """The riff [n, 64] over 4 windows, each onset re-pitched with probability ``noise``."""
    tokens = np.repeat(riff[:, None], W, axis=1)
    flip = (tokens >= rep.ONSET_OFFSET) & (rng.random(tokens.shape) < noise)
    tokens[flip] = rep.ONSET_OFFSET + rng.integers(0, rep.BASS_PITCHES, size=flip.sum())
    return tokens


def looped(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A real-like line: one riff repeated over the 4 windows with noise."""
    return repeat_with_noise(rng, windows(rng, rng.uniform(0.15, 0.6, n))), random_drums(rng, n)


def independent(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A forgetful generator: 4 independent windows of the same density."""
    density = rng.uniform(0.15, 0.6, n)
    return np.stack([windows(rng, density) for _ in range(W)], axis=1), random_drums(rng, n)


def crossed(rng: np.random.Generator, n: int, swap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Half the lines lock to the kick (90% of kicks), half do not (30%); the locked ones
    play low and the loose ones an octave up (``swap``: the reverse). Every single feature
    has the same distribution either way, only the pairing differs."""
    drums = random_drums(rng, n)
    locked = rng.random(n) < 0.5
    p_on = np.where(drums[:, 0, :, rep.KICK] > 0, np.where(locked, 0.9, 0.3)[:, None], 0.15)
    riff = windows(rng, p_on)
    riff[((riff >= rep.ONSET_OFFSET) & (locked != swap)[:, None])] += 12
    return repeat_with_noise(rng, riff, 0.05), drums


def rows(make, n: int, seed: int, **kw) -> np.ndarray:
    return C.features(*make(np.random.default_rng(seed), n, **kw))


def songs(n: int, n_songs: int = 40) -> np.ndarray:
    return np.arange(n) % n_songs


def test_looped_riff_against_independent_windows_is_caught():
    out = C.critic_test(rows(looped, 600, 1), rows(independent, 600, 2), rows(looped, 400, 3),
                        rows(independent, 400, 4), songs(400), songs(400), seed=0, n_boot=200)
    assert out["accuracy"]["value"] > 0.9
    assert out["accuracy"]["lo"] <= out["accuracy"]["value"] <= out["accuracy"]["hi"]
    assert out["n_real"] == out["n_fake"] == 400
    assert out["stats"].shape == (800, 2) and out["song"].shape == (800,)


def test_two_samples_of_one_distribution_are_indistinguishable():
    out = C.critic_test(rows(looped, 1000, 1), rows(looped, 1000, 2), rows(looped, 1000, 3),
                        rows(looped, 1000, 4), songs(1000), songs(1000), seed=0, n_boot=200)
    assert abs(out["accuracy"]["value"] - 0.5) < 0.1


def test_critic_finds_interactions():
    # a linear critic scores 0.5 here (every marginal is equal); the trees do not
    out = C.critic_test(rows(crossed, 800, 1, swap=False), rows(crossed, 800, 2, swap=True),
                        rows(crossed, 400, 3, swap=False), rows(crossed, 400, 4, swap=True),
                        songs(400), songs(400), seed=0, n_boot=200)
    assert out["accuracy"]["value"] > 0.8


def test_same_seed_same_result_and_balanced_classes():
    args = (rows(looped, 300, 1), rows(independent, 500, 2), rows(looped, 120, 3), rows(independent, 90, 4),
            songs(120, 12), songs(90, 12) + 100)
    a, b = C.critic_test(*args, seed=5, n_boot=100), C.critic_test(*args, seed=5, n_boot=100)
    assert a["accuracy"] == b["accuracy"]
    np.testing.assert_array_equal(a["stats"], b["stats"])
    np.testing.assert_array_equal(a["song"], b["song"])
    assert a["n_real"] == a["n_fake"] == 90 and a["n_train"] == 600
    assert a["is_real"].sum() == 90 and len(a["is_real"]) == 180
    assert set(a["song"][a["is_real"]]) <= set(range(12)) and set(a["song"][~a["is_real"]]) <= set(range(100, 112))
    np.testing.assert_array_equal(a["stats"][:, 1], 1.0)
    assert a["accuracy"]["value"] == pytest.approx(a["stats"][:, 0].mean())


def test_too_few_rows_give_none():
    real, fake = rows(looped, 20, 1), rows(independent, 20, 2)
    s = songs(20)
    assert C.critic_test(real[:3], fake, real, fake, s, s) is None
    assert C.critic_test(real, fake[:3], real, fake, s, s) is None
    assert C.critic_test(real, fake, real[:3], fake, s[:3], s) is None
    assert C.critic_test(real, fake, real, fake[:3], s, s[:3]) is None
    none = np.zeros((0, C.N_FEATURES))  # no line at all (a control no song can give): None, not a reshape error
    assert C.critic_test(real, fake, real, none, s, s[:0]) is None
    assert C.critic_test(real[:4], fake[:4], real[:4], fake[:4], s[:4], s[:4], n_boot=10) is not None


def test_giveaways_name_the_shifted_feature_first():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, C.N_FEATURES))
    fake = rng.normal(size=(400, C.N_FEATURES))
    j, k = C.FEATURE_NAMES.index("distinct_pitch_classes"), C.FEATURE_NAMES.index("rest_share")
    fake[:, j] -= 1.5  # fewer pitch classes: d about -1.5
    fake[:, k] += 0.8
    real[:, 0] = fake[:, 0] = 2.0  # a constant feature: d 0, not a division by zero
    top = C.giveaways(real, fake, top=2)
    assert [g["feature"] for g in top] == ["distinct_pitch_classes", "rest_share"]
    assert top[0]["d"] == pytest.approx(-1.5, abs=0.15) and top[1]["d"] == pytest.approx(0.8, abs=0.15)
    assert top[0]["fake"] < top[0]["real"]
    same = C.giveaways(real, real.copy(), top=C.N_FEATURES)
    assert len(same) == C.N_FEATURES and all(g["d"] == 0 for g in same)
    assert C.giveaways(real[:2], fake) == [] == C.giveaways(real, np.zeros((0, C.N_FEATURES)))


# --------------------------------------------------------------------------- controls


def test_the_same_song_control_takes_the_next_segment_and_the_one_before_for_a_songs_last():
    song = np.array([3, 3, 3, 5, 7, 7])
    assert C.control_rows(song, "same_song").tolist() == [1, 2, 1, -1, 5, 4]  # song 5 has one segment: none
    assert C.control_rows(np.zeros(0, dtype=int), "same_song").tolist() == []


def test_the_other_song_control_never_plays_a_songs_own_line_and_uses_every_line_once():
    song = np.repeat(np.arange(40), np.random.default_rng(0).integers(1, 6, 40))
    rows = C.control_rows(song, "other_song", seed=0)
    assert (song[rows] != song).all()
    assert sorted(rows.tolist()) == list(range(len(song)))  # a permutation
    assert rows.tolist() == C.control_rows(song, "other_song", seed=0).tolist()
    assert rows.tolist() != C.control_rows(song, "other_song", seed=1).tolist()
    half = np.array([0, 0, 1, 2])  # one song holds half the segments: still possible
    assert (half[C.control_rows(half, "other_song")] != half).all()
    # one song holds more than half the segments: two of them would get its own line, so no control at all
    assert C.control_rows(np.array([0, 0, 0, 1]), "other_song").tolist() == [-1] * 4
    with pytest.raises(ValueError, match="unknown critic control 'shuffled'"):
        C.control_rows(song, "shuffled")


def test_cross_fitted_accuracy_scores_every_line_on_songs_its_critic_never_saw():
    """The validation estimate that chooses decodings: high where the critic test is, near chance for two
    samples of one distribution, and blind to what identifies a song. Here every song has its own random
    features and the real lines come from other songs than the generated ones: a critic that had seen a
    song would name its class from its identity (about 1.0), one that never did can only guess."""
    n = 800
    assert C.cross_fitted_accuracy(rows(looped, n, 1), songs(n), rows(independent, n, 2), songs(n)) > 0.9
    same = C.cross_fitted_accuracy(rows(looped, n, 1), songs(n), rows(looped, n, 2), songs(n))
    assert abs(same - 0.5) < 0.1
    rng = np.random.default_rng(0)
    song = np.repeat(np.arange(200), 4)  # 200 songs of 4 lines; real lines from the even songs, generated from the odd
    x = rng.normal(size=(200, C.N_FEATURES))[song] + 0.01 * rng.normal(size=(len(song), C.N_FEATURES))
    real, fake = song % 2 == 0, song % 2 == 1
    assert C.cross_fitted_accuracy(x[real], song[real], x[fake], song[fake]) < 0.65
    seen = C.critic_test(x[real], x[fake], x[real], x[fake], song[real], song[fake], n_boot=10)
    assert seen["accuracy"]["value"] > 0.95
    again = C.cross_fitted_accuracy(rows(looped, n, 1), songs(n), rows(looped, n, 2), songs(n))
    assert again == same  # seeded
    assert C.cross_fitted_accuracy(rows(looped, 6, 1), songs(6), rows(looped, 6, 2), songs(6)) is None  # 3 a half


def test_the_critic_goal_gap_is_the_accuracy_above_chance_over_its_tolerance():
    assert C.goal_gap(0.65) == pytest.approx(1.0)  # the goal: at most 0.65
    assert C.goal_gap(0.80) == pytest.approx(2.0)
    assert C.goal_gap(0.5) == 0.0 and C.goal_gap(0.42) == 0.0  # below chance is no closer
    assert C.goal_gap(None) == 0.0  # too few lines for a critic: no gap
