"""dnb.metrics against hand-computed values and against nltk."""

import numpy as np
import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from dnb import metrics as M
from dnb import representation as rep

torch.set_num_threads(1)
SMOOTH = SmoothingFunction().method1


def onset(midi_pitch: int) -> int:
    return rep.ONSET_OFFSET + midi_pitch - rep.BASS_LOW


def line(notes: dict[int, int], length: int = 2) -> np.ndarray:
    """Tokens [64] with an onset of MIDI pitch at each step, held for ``length`` steps."""
    tokens = np.zeros(rep.BASS_STEPS, dtype=np.int64)
    for step, pitch in notes.items():
        tokens[step] = onset(pitch)
        tokens[step + 1 : step + length] = rep.SUSTAIN
    return tokens


def random_lines(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens = rng.choice([0, 1, 1, 1, 2, 9, 14, 21], size=(n, rep.BASS_STEPS))
    return tokens


def test_bleu_identical_is_one_and_disjoint_is_zero():
    refs = random_lines(20, 0)
    stats = M.bleu_stats(refs, refs)
    for order in range(1, 5):
        assert M.bleu_statistic(order)(stats.sum(0)) == pytest.approx(1.0)
    np.testing.assert_allclose(M.sentence_bleu(stats, 4), 1.0)
    disjoint = np.full_like(refs, 30)  # a token that never occurs in refs
    assert M.bleu_statistic(4)(M.bleu_stats(disjoint, refs).sum(0)) == pytest.approx(0.0, abs=1e-9)
    assert corpus_bleu([[r.tolist()] for r in refs], disjoint.tolist(), smoothing_function=SMOOTH) == 0


def test_fast_bleu_equals_nltk():
    refs = random_lines(300, 1)
    hyps = refs.copy()
    mask = np.random.default_rng(2).random(hyps.shape) < 0.4
    hyps[mask] = random_lines(300, 3)[mask]
    hyps[:5] = 0  # some hypotheses without any unigram match
    stats = M.bleu_stats(hyps, refs)
    for order in range(1, 5):
        weights = (1 / order,) * order
        expected = corpus_bleu([[r.tolist()] for r in refs], hyps.tolist(), weights=weights, smoothing_function=SMOOTH)
        assert M.bleu_statistic(order)(stats.sum(0)) == pytest.approx(expected, rel=1e-12)
    for i in (0, 7, 42):
        expected = sentence_bleu([refs[i].tolist()], hyps[i].tolist(), smoothing_function=SMOOTH)
        assert M.sentence_bleu(stats[i]) == pytest.approx(expected, rel=1e-12)
    several = np.stack([refs, np.roll(refs, 3, axis=1), hyps[::-1]], axis=1)
    expected = corpus_bleu([[x.tolist() for x in r] for r in several], hyps.tolist(), smoothing_function=SMOOTH)
    assert M.bleu_statistic(4)(M.bleu_stats(hyps, several).sum(0)) == pytest.approx(expected, rel=1e-12)


def test_self_bleu_stats_equal_generic_bleu_stats():
    samples = random_lines(40 * 4, 5).reshape(40, 4, 64)
    samples[:5, 1] = samples[:5, 0]  # some repeated samples
    fast = M.self_bleu_stats(samples)
    for i in range(4):
        others = np.delete(samples, i, axis=1)
        np.testing.assert_array_equal(fast[:, i], M.bleu_stats(samples[:, i], others))


def test_uniform_model_perplexity_is_alphabet_size():
    uniform = np.full((10, rep.BASS_STEPS), -np.log(1 / rep.VOCAB_SIZE))
    stats = M.nll_stats(uniform)
    assert M.PERPLEXITY(stats.sum(0)) == pytest.approx(38.0)
    assert M.perplexity(float(M.RATIO(stats.sum(0)))) == pytest.approx(38.0)
    assert M.perplexity(None) is None


def test_bce_known_value():
    probs = np.full((1, rep.BASS_STEPS, rep.BASS_PITCHES), 0.5)
    roll = np.zeros_like(probs)
    assert M.bce_stats(probs, roll)[0, 0] == pytest.approx(rep.BASS_STEPS * rep.BASS_PITCHES * np.log(2))
    roll[0, 0, 0] = 1
    certain = np.zeros_like(probs)  # clipped at 1e-7: one miss costs -log(1e-7)
    assert M.bce_stats(certain, roll)[0, 0] == pytest.approx(-np.log(1e-7) - 2303 * np.log1p(-1e-7))


def test_onset_precision_recall_f1_by_hand():
    pred = line({0: 40, 8: 43, 16: 45})
    true = line({0: 40, 8: 55, 24: 31})  # 55 = 43 + 12: timing match, same pitch class, other octave
    s = M.onset_stats(pred[None], true[None])
    np.testing.assert_array_equal(s[0], [2, 1, 2, 3, 3])
    assert M.RATIO(s[0, [0, 3]]) == pytest.approx(2 / 3)
    assert M.F1(s[0, [0, 3, 4]]) == pytest.approx(2 / 3)
    assert M.F1(s[0, [1, 3, 4]]) == pytest.approx(1 / 3)
    assert M.RATIO(s[0, [2, 0]]) == pytest.approx(1.0)
    # micro average over a song group: 2TP / (P + T) of the sums, not the mean of F1s
    pred2, true2 = line({0: 40}), line({0: 40, 4: 40, 8: 40, 12: 40, 16: 40, 20: 40, 24: 40})
    both = M.onset_stats(np.stack([pred, pred2]), np.stack([true, true2]))
    assert M.F1(both[:, [0, 3, 4]].sum(0)) == pytest.approx(2 * 3 / (4 + 10))
    np.testing.assert_allclose(M.pair_f1(np.stack([pred, pred2]), np.stack([true, true2]), pitch=False), [2 / 3, 0.25])
    assert M.pair_f1(np.zeros((1, 64)), np.zeros((1, 64)))[0] == 1.0


def test_musical_metrics_on_constructed_examples():
    drums = np.zeros((2, rep.DRUM_STEPS, rep.DRUM_CLASSES), dtype=np.uint8)
    drums[:, [0, 4], rep.KICK] = 1
    # C major: C, D in scale; C#, F# out. Onsets at 32nd 0 (kick), 8 (kick at 16th 4), 9 (odd), 2 (no kick)
    a = np.zeros(64, dtype=np.int64)
    a[[0, 2, 8, 9]] = [onset(36), onset(38), onset(37), onset(42)]
    a[3] = rep.SUSTAIN  # only the D lasts >= 2 steps
    # C minor: Eb in, E out; all in bar 2 (bar 1 empty)
    b = np.zeros(64, dtype=np.int64)
    b[[32, 40]] = [onset(39), onset(40)]
    b[[33, 34, 41]] = rep.SUSTAIN
    s = M.musical_stats(np.stack([a, b]), drums, np.array([0, 12]))
    np.testing.assert_array_equal(s["key_consistency"], [[2, 4], [1, 2]])
    np.testing.assert_array_equal(s["kick_lock"], [[2, 4], [0, 2]])
    np.testing.assert_array_equal(s["empty_bar_rate"], [[1, 2], [1, 2]])  # a: bar 2 empty; b: bar 1
    np.testing.assert_array_equal(s["upc"], [[4, 2], [2, 2]])  # a: C D C# F# in bar 1; b: Eb E in bar 2
    np.testing.assert_array_equal(s["qualified_note_rate"], [[1, 4], [2, 2]])
    np.testing.assert_array_equal(s["polyphony_rate"], [[0, 64], [0, 64]])
    assert M.RATIO(s["key_consistency"].sum(0)) == pytest.approx(0.5)
    roll = rep.tokens_to_roll(np.stack([a, b]))
    roll[0, 5, [3, 7]] = 1  # two onsets on one step
    np.testing.assert_array_equal(M.polyphony_stats(roll), [[1, 64], [0, 64]])


def test_scale_mask():
    assert sorted(np.nonzero(M.scale_mask(np.array([9]))[0])[0]) == [1, 2, 4, 6, 8, 9, 11]  # A major
    assert sorted(np.nonzero(M.scale_mask(np.array([21]))[0])[0]) == [0, 2, 4, 5, 7, 9, 11]  # A minor


def test_diversity():
    loop = random_lines(3, 4)
    same = np.repeat(loop[:, None], 4, axis=1)
    d = M.diversity_stats(same)
    assert M.RATIO(d["distinct_samples"].sum(0)) == 1.0
    assert M.bleu_statistic(4)(d["self_bleu4"].sum(0)) == pytest.approx(1.0)
    assert M.RATIO(d["pairwise_f1_distance"].sum(0)) == 0.0
    different = np.stack([line({0: 40}), line({8: 41}), line({16: 42})])[None]
    d = M.diversity_stats(different)
    assert M.RATIO(d["distinct_samples"].sum(0)) == 3.0
    assert M.RATIO(d["pairwise_f1_distance"].sum(0)) == 1.0


def test_bootstrap_contains_estimate_and_narrows():
    rng = np.random.default_rng(0)

    def songs(n):  # per-song (successes, trials): true rate 0.3, song-level spread
        trials = rng.integers(5, 30, n).astype(float)
        rate = np.clip(rng.normal(0.3, 0.1, n), 0, 1)
        return np.stack([rng.binomial(trials.astype(int), rate), trials], 1).astype(float)

    small, large = songs(10), songs(400)
    widths = []
    for stats in (small, large):
        point = M.RATIO(stats.sum(0))
        lo, hi = M.bootstrap_ci(stats, M.RATIO, n_boot=500, seed=0)
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3
    assert M.bootstrap_ci(small, M.RATIO, 500, 0) == M.bootstrap_ci(small, M.RATIO, 500, 0)


def test_summarise_resamples_songs_not_pairs():
    # two songs: one with 100 perfect pairs, one with 100 failed pairs. Resampling pairs
    # would give a tight interval around 0.5; resampling songs spans 0..1.
    stats = np.array([[1.0, 1.0]] * 100 + [[0.0, 1.0]] * 100)
    song = np.array([0] * 100 + [1] * 100)
    out = M.summarise(stats, M.RATIO, song, n_boot=200, seed=0)
    assert out["value"] == pytest.approx(0.5)
    assert out["lo"] == 0.0 and out["hi"] == 1.0
    assert M.summarise(np.zeros((3, 2)), M.RATIO, np.arange(3), 50, 0) is None


def test_mbr_select_equals_brute_force_nltk():
    samples = random_lines(6 * 5, 11).reshape(6, 5, 64)
    samples[0, 3] = samples[0, 1]  # a repeated sample is the consensus of loop 0
    chosen = M.mbr_select(samples)
    for n in range(len(samples)):
        utility = [np.mean([sentence_bleu([samples[n, j].tolist()], samples[n, i].tolist(), smoothing_function=SMOOTH)
                            for j in range(5) if j != i]) for i in range(5)]
        np.testing.assert_array_equal(chosen[n], samples[n, int(np.argmax(utility))])
    np.testing.assert_array_equal(chosen[0], samples[0, 1])
    np.testing.assert_array_equal(M.mbr_select(samples[:, :1]), samples[:, 0])


def test_mbr_picks_the_typical_line():
    # four lines share a held root; one odd line jumps around: MBR never picks the odd one
    base = line({0: 40, 16: 40, 32: 40, 48: 40}, length=8)
    variants = [base.copy() for _ in range(4)]
    for v, step in zip(variants, (4, 20, 36, 52)):
        v[step] = onset(43)
    odd = line({s: 40 + s % 12 for s in range(0, 64, 2)}, length=1)
    samples = np.stack([odd, *variants])[None]
    assert not np.array_equal(M.mbr_select(samples)[0], odd)


def test_note_f1_mbr_picks_the_line_closest_to_the_others():
    # A shares 3 of 4 notes with B and with D, B and D share 2, C shares none:
    # mean note F1 against the others: C 0, B (0.75 + 0.5) / 3, A (0.75 + 0.75) / 3, D as B
    a = line({0: 40, 16: 40, 32: 40, 48: 40})
    b = line({0: 40, 16: 40, 32: 40, 48: 43})
    d = line({0: 45, 16: 40, 32: 40, 48: 40})
    c = line({8: 45, 24: 45})
    samples = np.stack([c, b, a, d])[None]
    np.testing.assert_array_equal(M.mbr_select(samples, utility="note_f1")[0], a)
    np.testing.assert_allclose(M.pair_f1(a[None], b[None]), [0.75])
    # brute force on random loops: the argmax of the mean pairwise note F1, earliest on ties
    pool = random_lines(5 * 6, 3).reshape(5, 6, 64)
    chosen = M.mbr_select(pool, utility="note_f1")
    for n in range(5):
        utility = [np.mean([M.pair_f1(pool[n, i][None], pool[n, j][None])[0] for j in range(6) if j != i])
                   for i in range(6)]
        np.testing.assert_array_equal(chosen[n], pool[n, int(np.argmax(utility))])
    with pytest.raises(ValueError, match="unknown MBR utility"):
        M.mbr_select(pool, utility="rouge")


def test_paired_difference_sees_what_separate_intervals_miss():
    # 60 songs of very different difficulty; system a beats b by 0.03 on every song.
    rng = np.random.default_rng(0)
    rate = rng.uniform(0.1, 0.9, 60)
    a = np.stack([(rate + 0.03) * 100, np.full(60, 100.0)], 1)
    b = np.stack([rate * 100, np.full(60, 100.0)], 1)
    song = np.arange(60)
    sa, sb = (M.summarise(x, M.RATIO, song, 500, 0) for x in (a, b))
    assert sa["lo"] < sb["hi"]  # the separate intervals overlap
    diff = M.paired_difference(a, b, M.RATIO, song, 500, 0)
    assert diff["value"] == pytest.approx(0.03)
    assert 0 < diff["lo"] <= 0.03 <= diff["hi"] and diff["share_positive"] == 1.0
    same = M.paired_difference(a, a, M.RATIO, song, 500, 0)
    assert same == {"value": 0.0, "lo": 0.0, "hi": 0.0, "share_positive": 0.0}
    noisy = M.paired_difference(a, b[rng.permutation(60)], M.RATIO, song, 500, 0)  # unpaired songs
    assert noisy["lo"] < 0 < noisy["hi"]
