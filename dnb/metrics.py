"""The one metrics module every model and baseline goes through.

Every metric is a *ratio of sums*: each test pair contributes a small vector of
sufficient statistics (``[N, D]``), a song contributes the sum over its pairs, and
the metric is a ``statistic`` of the summed vector. That makes corpus-level values
(corpus BLEU, micro-averaged onset F1, perplexity) and song-level bootstrap
intervals the same computation: resample songs, sum their statistics, apply the
statistic. Raw cell accuracy is deliberately absent (silence scores ~99% on it).

Token conventions come from ``dnb.representation`` (REST=0, SUSTAIN=1, onset=2+p).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dnb import representation as rep
from dnb.chords import chord_tone_hits

EPS_PROB = 1e-7
BLEU_SMOOTH_EPS = 0.1  # nltk SmoothingFunction().method1 epsilon
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor
BAR_STEPS = rep.BASS_STEPS // 2

Statistic = Callable[[np.ndarray], np.ndarray]


def _ratio(s: np.ndarray) -> np.ndarray:
    """s[..., 0] / s[..., 1]; NaN where the denominator is 0 (metric undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s[..., 1] > 0, s[..., 0] / np.where(s[..., 1] > 0, s[..., 1], 1), np.nan)


def _exp_ratio(s: np.ndarray) -> np.ndarray:
    """Perplexity from (summed NLL in nats, number of steps)."""
    return np.exp(_ratio(s))


def _f1(s: np.ndarray) -> np.ndarray:
    """F1 from (true positives, predicted, actual): 2TP / (P + T)."""
    return _ratio(np.stack([2 * s[..., 0], s[..., 1] + s[..., 2]], axis=-1))


RATIO: Statistic = _ratio
PERPLEXITY: Statistic = _exp_ratio
F1: Statistic = _f1


# --------------------------------------------------------------------------- likelihoods


def bce_stats(probs: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """``[N, 2]`` = (BCE in nats summed over the 64x36 onset roll, 1): the mean is
    the per-example reconstruction loss of the 2019 project. Probabilities are
    clipped to [1e-7, 1-1e-7] so one confident miss costs 16.1 nats, not inf."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS_PROB, 1 - EPS_PROB)
    y = np.asarray(roll, dtype=np.float64)
    bce = -(y * np.log(p) + (1 - y) * np.log1p(-p)).reshape(len(p), -1).sum(axis=1)
    return np.stack([bce, np.ones_like(bce)], axis=1)


def nll_stats(token_nll: np.ndarray) -> np.ndarray:
    """``[N, 2]`` = (NLL in nats summed over the steps, number of steps): RATIO
    gives the mean NLL per step, PERPLEXITY gives exp of it (over 38 symbols)."""
    nll = np.asarray(token_nll, dtype=np.float64)
    return np.stack([nll.sum(axis=1), np.full(len(nll), nll.shape[1], dtype=np.float64)], axis=1)


def perplexity(mean_nll_per_step: float | None) -> float | None:
    """exp(mean per-step NLL); None (reported "n/a") for models without token likelihood."""
    return None if mean_nll_per_step is None else float(np.exp(mean_nll_per_step))


# --------------------------------------------------------------------------- BLEU


def _ngram_keys(seqs: np.ndarray, n: int, base: int) -> np.ndarray:
    """``[N, L-n+1]`` integer code of every n-gram (base-``base`` digits)."""
    seqs = seqs.astype(np.int64)
    length = seqs.shape[-1] - n + 1
    code = np.zeros(seqs.shape[:-1] + (max(length, 0),), dtype=np.int64)
    for i in range(n):
        code = code * base + seqs[..., i : i + length]
    return code


def _occurrences(keys: np.ndarray) -> np.ndarray:
    """Sort each row of n-gram codes and tag the j-th repeat of a code: code * width + j.
    Clipped matches are then the tagged hypothesis n-grams that occur in any reference."""
    width = keys.shape[-1]
    srt = np.sort(keys, axis=-1)
    pos = np.broadcast_to(np.arange(width), srt.shape)
    new_run = np.ones(srt.shape, dtype=bool)
    new_run[..., 1:] = srt[..., 1:] != srt[..., :-1]
    rank = pos - np.maximum.accumulate(np.where(new_run, pos, 0), axis=-1)
    return srt * width + rank


def _clipped_matches(hyps: np.ndarray, refs: np.ndarray, n: int, base: int) -> np.ndarray:
    """Per row: sum over hypothesis n-grams of min(count in hyp, max count in any ref).
    Only row-wise sorts; a row offset makes the flattened rows one sorted array."""
    rows = len(hyps)
    hk = _ngram_keys(hyps, n, base)
    width = hk.shape[1]
    if width == 0:
        return np.zeros(rows)
    hyp = _occurrences(hk)  # [rows, width]
    ref = np.sort(_occurrences(_ngram_keys(refs, n, base)).reshape(rows, -1), axis=1)  # [rows, R * width]
    offset = np.arange(rows, dtype=np.int64)[:, None] * (base**n * width)
    hyp, ref = (hyp + offset).ravel(), (ref + offset).ravel()
    pos = np.minimum(np.searchsorted(ref, hyp), len(ref) - 1)
    return (ref[pos] == hyp).reshape(rows, width).sum(1).astype(np.float64)


def bleu_stats(hyps: np.ndarray, refs: np.ndarray, max_n: int = 4, chunk: int = 4096) -> np.ndarray:
    """Per-sentence BLEU sufficient statistics ``[N, 2*max_n + 2]``:
    (clipped n-gram matches for n=1..max_n, hypothesis n-gram counts, hyp length,
    closest reference length), exactly what nltk's ``corpus_bleu`` sums.

    ``hyps`` ``[N, L]`` int tokens; ``refs`` ``[N, L]`` (one reference) or
    ``[N, R, L]`` (several, clipped by the max count, as nltk). All sequences have
    the same length L, so the closest reference length is L.
    """
    hyps = np.asarray(hyps, dtype=np.int64)
    refs = np.asarray(refs, dtype=np.int64)
    if refs.ndim == 2:
        refs = refs[:, None, :]
    base = int(max(hyps.max(initial=0), refs.max(initial=0))) + 1
    n_rows, length = hyps.shape
    out = np.zeros((n_rows, 2 * max_n + 2))
    for start in range(0, n_rows, chunk):
        sl = slice(start, start + chunk)
        for n in range(1, max_n + 1):
            out[sl, n - 1] = _clipped_matches(hyps[sl], refs[sl], n, base)
    for n in range(1, max_n + 1):
        out[:, max_n + n - 1] = max(1, length - n + 1)  # nltk: denominator = max(1, count)
    out[:, 2 * max_n] = length
    out[:, 2 * max_n + 1] = length
    return out


def self_bleu_stats(samples: np.ndarray, max_n: int = 4) -> np.ndarray:
    """``bleu_stats`` of every sample against the other K-1 samples of its loop,
    ``[N, K, 2*max_n + 2]``, equal to ``bleu_stats(samples[:, i], others)`` but with one
    sort per loop: an n-gram occurrence is in another sample iff it occurs at least
    twice in the pooled occurrences of all K samples (once is its own)."""
    samples = np.asarray(samples, dtype=np.int64)
    n_loops, k, length = samples.shape
    base = int(samples.max(initial=0)) + 1
    out = np.zeros((n_loops, k, 2 * max_n + 2))
    for n in range(1, max_n + 1):
        width = max(length - n + 1, 0)
        out[:, :, max_n + n - 1] = max(1, width)
        if width == 0:
            continue
        occ = _occurrences(_ngram_keys(samples, n, base)).reshape(n_loops, k * width)
        order = np.argsort(occ, axis=1)
        pool = np.take_along_axis(occ, order, axis=1)
        same_prev = np.zeros(pool.shape, dtype=bool)
        same_prev[:, 1:] = pool[:, 1:] == pool[:, :-1]
        same_next = np.zeros(pool.shape, dtype=bool)
        same_next[:, :-1] = same_prev[:, 1:]
        shared = same_prev | same_next  # occurs at least twice in the pool
        owner = order // width + (np.arange(n_loops) * k)[:, None]
        out[:, :, n - 1] = np.bincount(owner.ravel(), weights=shared.ravel(), minlength=n_loops * k).reshape(n_loops, k)
    out[:, :, 2 * max_n] = length
    out[:, :, 2 * max_n + 1] = length
    return out


def bleu_statistic(order: int, max_n: int = 4) -> Statistic:
    """BLEU-``order`` (uniform weights 1/order) of summed ``bleu_stats``, matching
    nltk ``corpus_bleu(..., smoothing_function=SmoothingFunction().method1)``:
    zero-match orders get (0.1 / denominator); no unigram match at all gives 0."""

    def statistic(s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        num, den = s[..., :order], s[..., max_n : max_n + order]
        hyp_len, ref_len = s[..., 2 * max_n], s[..., 2 * max_n + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(num > 0, num, BLEU_SMOOTH_EPS) / den
            log_p = np.where(p > 0, np.log(p), 0.0).sum(axis=-1) / order
            bp = np.where(hyp_len > ref_len, 1.0, np.where(hyp_len > 0, np.exp(1 - ref_len / hyp_len), 0.0))
            return np.where(s[..., 0] > 0, bp * np.exp(log_p), 0.0)

    return statistic


def sentence_bleu(stats: np.ndarray, order: int = 4) -> np.ndarray:
    """Smoothed sentence BLEU per row of ``bleu_stats`` (= nltk sentence_bleu, method1)."""
    return bleu_statistic(order)(stats)


def mbr_select(samples: np.ndarray, order: int = 4, utility: str = "bleu") -> np.ndarray:
    """Minimum-Bayes-risk decoding: of each loop's K samples ``[N, K, L]``, the one with the
    highest mean utility against the other K-1 (the consensus line of the model's own
    distribution; Kumar & Byrne 2004). ``utility`` is the metric the choice targets:
    ``"bleu"`` = smoothed sentence BLEU-``order``, ``"note_f1"`` = onset+pitch F1
    (``pair_f1``). Ties go to the earliest sample; K = 1 returns the sample. Returns ``[N, L]``."""
    if utility not in MBR_UTILITIES:
        raise ValueError(f"unknown MBR utility {utility!r}; known: {', '.join(MBR_UTILITIES)}")
    samples = np.asarray(samples, dtype=np.int64)
    n, k, length = samples.shape
    if k == 1:
        return samples[:, 0]
    hyp, ref = np.where(~np.eye(k, dtype=bool))  # every ordered pair i != j
    a, b = samples[:, hyp].reshape(-1, length), samples[:, ref].reshape(-1, length)
    score = sentence_bleu(bleu_stats(a, b, max_n=order), order) if utility == "bleu" else pair_f1(a, b)
    return samples[np.arange(n), score.reshape(n, k, k - 1).mean(-1).argmax(1)]


MBR_UTILITIES = ("bleu", "note_f1")


# --------------------------------------------------------------------------- onsets


def onset_stats(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``[N, 5]`` = (timing matches, timing+pitch matches, pitch-class matches
    among timing matches, predicted onsets, true onsets) between token sequences.
    Onset F1 (timing) = F1 of columns (0, 3, 4); with pitch = (1, 3, 4);
    pitch-class accuracy = RATIO of (2, 0)."""
    pred, true = np.asarray(pred), np.asarray(true)
    po, to = pred >= rep.ONSET_OFFSET, true >= rep.ONSET_OFFSET
    both = po & to
    same_pitch = both & (pred == true)
    same_pc = both & (rep.token_pitch_classes(pred) == rep.token_pitch_classes(true))
    return np.stack([both.sum(1), same_pitch.sum(1), same_pc.sum(1), po.sum(1), to.sum(1)], axis=1).astype(float)


def pair_f1(a: np.ndarray, b: np.ndarray, pitch: bool = True) -> np.ndarray:
    """Per-row onset F1 between two token arrays ``[N, L]``; 1.0 when neither has an onset."""
    s = onset_stats(a, b)
    tp = s[:, 1] if pitch else s[:, 0]
    denom = s[:, 3] + s[:, 4]
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)


# --------------------------------------------------------------------------- musical metrics


def scale_mask(key: np.ndarray) -> np.ndarray:
    """``[N, 12]`` bool: pitch classes of the major (key < 12) or natural-minor
    (key >= 12) scale whose tonic is ``key % 12``."""
    key = np.asarray(key, dtype=np.int64)
    steps = np.where((key >= 12)[:, None], MINOR[None, :], MAJOR[None, :])
    mask = np.zeros((len(key), 12), dtype=bool)
    mask[np.arange(len(key))[:, None], (key[:, None] % 12 + steps) % 12] = True
    return mask


def polyphony_stats(roll: np.ndarray) -> np.ndarray:
    """``[N, 2]`` = (steps with more than one onset, steps) of a binary onset roll ``[N, 64, 36]``
    (for a roll model: its onset probabilities thresholded at 0.5)."""
    roll = np.asarray(roll)
    poly = (roll.reshape(len(roll), roll.shape[1], -1).sum(-1) > 1).sum(1).astype(float)
    return np.stack([poly, np.full(len(roll), float(roll.shape[1]))], 1)


def musical_stats(tokens: np.ndarray, drums: np.ndarray, key: np.ndarray, roll: np.ndarray | None = None) -> dict:
    """Per-pair sufficient statistics ``{metric: [N, 2]}`` (numerator, denominator)
    of the musical metrics, all aggregated with RATIO; apply to model output and
    to the real bass alike:

    * key_consistency: onsets whose pitch class is in the annotated key's scale / onsets;
    * kick_lock: onsets at 32nd step 2s where the drums have a kick at 16th s / onsets;
    * empty_bar_rate: bars (2 per pair) without an onset / bars (MuseGAN EB);
    * upc: distinct pitch classes with an onset, summed over bars / bars (MuseGAN UPC);
    * qualified_note_rate: notes lasting >= 2 steps (a 16th) inside the window / notes
      (MuseGAN QN adapted; a note cut by the window end counts as its in-window length);
    * polyphony_rate: steps with > 1 onset / steps, counted on ``roll`` (a thresholded
      onset roll) when given; a token sequence is monophonic, so 0 by construction.
    """
    tokens = np.asarray(tokens)
    n = len(tokens)
    onset = tokens >= rep.ONSET_OFFSET
    n_on = onset.sum(1).astype(float)
    pc = rep.token_pitch_classes(tokens)
    in_scale = np.take_along_axis(scale_mask(key), np.where(onset, pc, 0), axis=1) & onset
    kick = np.repeat(np.asarray(drums)[:, :, rep.KICK] > 0, 2, axis=1)
    kick[:, 1::2] = False  # odd 32nd steps fall between 16ths: never on a kick
    bars = onset.reshape(n, 2, BAR_STEPS)
    pc_hot = np.zeros((n, 2, 12), dtype=bool)
    idx = np.nonzero(onset)
    pc_hot[idx[0], idx[1] // BAR_STEPS, pc[idx]] = True
    held = np.zeros_like(onset)
    held[:, :-1] = onset[:, :-1] & (tokens[:, 1:] == rep.SUSTAIN)
    poly = np.zeros((n, 2)) if roll is None else polyphony_stats(roll)
    poly[:, 1] = rep.BASS_STEPS
    two = np.full(n, 2.0)
    return {
        "key_consistency": np.stack([in_scale.sum(1), n_on], 1).astype(float),
        "kick_lock": np.stack([(onset & kick).sum(1), n_on], 1).astype(float),
        "empty_bar_rate": np.stack([(~bars.any(-1)).sum(1), two], 1).astype(float),
        "upc": np.stack([pc_hot.sum((1, 2)), two], 1).astype(float),
        "qualified_note_rate": np.stack([held.sum(1), n_on], 1).astype(float),
        "polyphony_rate": poly,
    }


def harmony_stats(tokens: np.ndarray, chords: np.ndarray) -> dict:
    """Per-pair ``{metric: [N, 2]}`` against the annotated chords (RATIO): bass onsets whose
    pitch class is a tone / the root of the chord of their half bar, over onsets under a
    chord (onsets under N are not counted)."""
    tone, root, under = chord_tone_hits(np.asarray(tokens), np.asarray(chords))
    under = under.astype(float)
    return {"chord_tone_rate": np.stack([tone, under], 1).astype(float),
            "chord_root_rate": np.stack([root, under], 1).astype(float)}


# --------------------------------------------------------------------------- diversity


def diversity_stats(samples: np.ndarray) -> dict:
    """Diversity of K samples per drum loop ``[N, K, L]`` as per-loop statistics:

    * distinct_samples: number of distinct outputs per loop (RATIO of (count, 1));
    * self_bleu4: BLEU-4 of each sample against the other K-1 samples of its loop,
      corpus-level over all samples (statistic ``bleu_statistic(4)``); 1 = no diversity;
    * pairwise_f1_distance: mean over sample pairs of 1 - onset F1 (timing+pitch).
    """
    samples = np.asarray(samples)
    n, k, length = samples.shape
    distinct = np.array([len({s.tobytes() for s in loop}) for loop in samples], dtype=float)
    out = {"distinct_samples": np.stack([distinct, np.ones(n)], 1)}
    if k < 2:
        return out
    out["self_bleu4"] = self_bleu_stats(samples).sum(1)
    dist, pairs = np.zeros(n), 0
    for i in range(k):
        for j in range(i + 1, k):
            dist += 1 - pair_f1(samples[:, i], samples[:, j])
            pairs += 1
    out["pairwise_f1_distance"] = np.stack([dist, np.full(n, float(pairs))], 1)
    return out


# --------------------------------------------------------------------------- bootstrap


def per_song(stats: np.ndarray, song: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(song ids, ``[S, D]`` sums of the per-pair statistics of each song)."""
    songs, inv = np.unique(np.asarray(song), return_inverse=True)
    summed = np.zeros((len(songs), stats.shape[1]))
    np.add.at(summed, inv, stats)
    return songs, summed


@lru_cache(maxsize=8)
def _resample_counts(n_songs: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n_songs]``: how often each song is drawn in each bootstrap replicate."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_songs, size=(n_boot, n_songs))
    flat = draws + (np.arange(n_boot) * n_songs)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_songs).reshape(n_boot, n_songs).astype(np.float64)


def bootstrap_ci(
    per_song_stats: np.ndarray, statistic: Statistic, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``statistic`` under resampling of test SONGS with
    replacement (pairs of one song are not independent). Ratio metrics are
    recomputed on the summed statistics of each replicate (corpus BLEU, micro F1).
    The same seed draws the same replicates for every metric and model."""
    per_song_stats = np.asarray(per_song_stats, dtype=np.float64)
    if len(per_song_stats) == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    return _interval(_replicates(per_song_stats, statistic, n_boot, seed))


def _replicates(per_song_stats: np.ndarray, statistic: Statistic, n_boot: int, seed: int) -> np.ndarray:
    """``statistic`` of every bootstrap replicate ``[n_boot]`` (songs resampled by the seed)."""
    return statistic(_resample_counts(len(per_song_stats), int(n_boot), int(seed)) @ per_song_stats)


def _interval(values: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the finite replicate values (nan, nan when there are none)."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def summarise(stats: np.ndarray, statistic: Statistic, song: np.ndarray, n_boot: int, seed: int) -> dict | None:
    """``{"value", "lo", "hi"}`` of one metric over all pairs, interval by song bootstrap;
    None when the metric is undefined (e.g. no onset anywhere)."""
    _, summed = per_song(stats, song)
    value = float(statistic(summed.sum(0)))
    if not np.isfinite(value):
        return None
    lo, hi = bootstrap_ci(summed, statistic, n_boot, seed)
    finite = np.isfinite(lo) and np.isfinite(hi)
    return {"value": value, "lo": lo if finite else None, "hi": hi if finite else None}


def paired_difference(
    stats_a: np.ndarray, stats_b: np.ndarray, statistic: Statistic, song: np.ndarray, n_boot: int, seed: int
) -> dict | None:
    """``statistic(a) - statistic(b)`` of two systems scored on the SAME pairs, with the 95%
    interval of the paired song bootstrap (both recomputed on each replicate's songs;
    Koehn 2004). Narrower than comparing two separate intervals, which ignores that
    both systems face the same hard and easy songs. ``share_positive``: fraction of
    replicates with a positive difference. None when either value is undefined."""
    _, sum_a = per_song(np.asarray(stats_a, dtype=np.float64), song)
    _, sum_b = per_song(np.asarray(stats_b, dtype=np.float64), song)
    value = float(statistic(sum_a.sum(0)) - statistic(sum_b.sum(0)))
    if not np.isfinite(value) or n_boot <= 0:
        return None
    diffs = _replicates(sum_a, statistic, n_boot, seed) - _replicates(sum_b, statistic, n_boot, seed)
    lo, hi = _interval(diffs)
    return {"value": value, "lo": lo, "hi": hi, "share_positive": float(np.mean(diffs[np.isfinite(diffs)] > 0))}


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Metric:
    """One reported metric: how the evaluation computes it and how a table shows it.

    ``better``: "min", "max", "ref" (closest to the real bass is best) or None;
    ``statistic`` turns summed per-pair statistics into the value (see the module docstring)."""

    name: str
    label: str
    digits: int
    better: str | None
    statistic: Statistic
    prose: str = ""  # how a sentence names it (default: the label)

    @property
    def lower_is_better(self) -> bool:
        return self.better == "min"

    @property
    def words(self) -> str:
        return self.prose or self.label


def _registry(*metrics: Metric) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


# Every metric of metrics/<system>.json, in file order; the tables and the evaluation both read this.
METRICS: dict[str, Metric] = _registry(
    Metric("bce", "BCE", 2, "min", RATIO, "roll BCE"),
    Metric("nll_per_step", "NLL", 3, "min", RATIO),
    Metric("perplexity", "PPL", 2, "min", PERPLEXITY, "perplexity"),
    *(Metric(f"bleu{n}", f"BLEU-{n}", 3, "max", bleu_statistic(n)) for n in range(1, 5)),
    Metric("bleu4_mbr", "BLEU-4 MBR", 3, "max", bleu_statistic(4)),
    Metric("onset_precision", "Onset P", 3, "max", RATIO),
    Metric("onset_recall", "Onset R", 3, "max", RATIO),
    Metric("onset_f1", "Onset F1", 3, "max", F1, "onset F1"),
    Metric("onset_pitch_precision", "Note P", 3, "max", RATIO),
    Metric("onset_pitch_recall", "Note R", 3, "max", RATIO),
    Metric("onset_pitch_f1", "Note F1", 3, "max", F1),
    Metric("onset_pitch_f1_mbr", "Note F1 MBR", 3, "max", F1, "note F1 of the F1-MBR choice"),
    Metric("bleu4_tuned", "BLEU-4 T*", 3, "max", bleu_statistic(4), "BLEU-4 at the tuned temperature"),
    Metric("onset_pitch_f1_tuned", "Note F1 T*", 3, "max", F1, "note F1 at the tuned temperature"),
    Metric("pitch_class_accuracy", "PC acc.", 3, "max", RATIO),
    Metric("key_consistency", "In key", 3, "ref", RATIO),
    Metric("kick_lock", "Kick lock", 3, "ref", RATIO),
    Metric("empty_bar_rate", "Empty bars", 3, "ref", RATIO),
    Metric("upc", "UPC/bar", 2, "ref", RATIO),
    Metric("qualified_note_rate", "Qual. notes", 3, "ref", RATIO),
    Metric("polyphony_rate", "Polyphony", 3, "ref", RATIO),
    Metric("chord_tone_rate", "Chord tone", 3, "ref", RATIO, "chord-tone rate"),
    Metric("chord_root_rate", "Chord root", 3, "ref", RATIO, "chord-root rate"),
    Metric("distinct_samples", "Distinct", 2, "max", RATIO),
    Metric("self_bleu4", "Self-BLEU", 3, "min", bleu_statistic(4)),
    Metric("pairwise_f1_distance", "Onset dist.", 3, "ref", RATIO),
)
MUSICAL = ("key_consistency", "kick_lock", "empty_bar_rate", "upc", "qualified_note_rate", "polyphony_rate")
HARMONY = ("chord_tone_rate", "chord_root_rate")
DIVERSITY = ("distinct_samples", "self_bleu4", "pairwise_f1_distance")


# --------------------------------------------------------------------------- whole songs


def song_stats(tokens: np.ndarray, previous_row: np.ndarray, song: np.ndarray) -> dict[str, tuple]:
    """Consecutive-window statistics of songs written window by window: ``tokens [W, 64]``,
    ``previous_row [W]`` (the row of a window's previous window, -1 where it has none),
    ``song [W]``. ``{metric: (stats [n, D], song [n])}`` (statistics of ``SONG_METRICS``):

    * identical_line_rate: window i+1 is window i note for note (RATIO of (same, 1) per pair);
    * identical_rhythm_rate: the same onset steps, whatever the pitches;
    * consecutive_bleu4: corpus BLEU-4 of window i+1 against window i (how much of a line
      the next one reuses: 1 = a loop, near 0 = a new line every two bars);
    * distinct_line_rate: distinct lines over windows, per song (1 = never a repeat).
    """
    tokens, previous_row, song = np.asarray(tokens), np.asarray(previous_row), np.asarray(song)
    follows = np.flatnonzero(previous_row >= 0)
    before, after = tokens[previous_row[follows]], tokens[follows]
    ones = np.ones(len(follows))
    same_line = (before == after).all(1).astype(float)
    same_rhythm = ((before >= rep.ONSET_OFFSET) == (after >= rep.ONSET_OFFSET)).all(1).astype(float)
    songs, first = np.unique(song, return_index=True)
    distinct = np.array([len({row.tobytes() for row in tokens[song == s]}) for s in songs], dtype=float)
    windows = np.bincount(np.searchsorted(songs, song), minlength=len(songs)).astype(float)
    return {
        "identical_line_rate": (np.stack([same_line, ones], 1), song[follows]),
        "identical_rhythm_rate": (np.stack([same_rhythm, ones], 1), song[follows]),
        "consecutive_bleu4": (bleu_stats(after, before), song[follows]),
        "distinct_line_rate": (np.stack([distinct, windows], 1), songs),
    }


# Song-level metrics (songs/<system>.json), beside the pair metrics of the free-running output.
SONG_METRICS: dict[str, Metric] = _registry(
    Metric("identical_line_rate", "Same line", 3, "ref", RATIO, "identical-line rate"),
    Metric("identical_rhythm_rate", "Same rhythm", 3, "ref", RATIO, "identical-rhythm rate"),
    Metric("distinct_line_rate", "Distinct/window", 3, "ref", RATIO, "distinct lines per window"),
    Metric("consecutive_bleu4", "BLEU-4 i+1|i", 3, "ref", bleu_statistic(4),
           "BLEU-4 of a window against the one before"),
    Metric("critic_accuracy", "Critic acc.", 3, "min", RATIO, "critic's accuracy"),
)
# How a song repeats, and how close to the real bass's value each should come: the whole-songs
# issue's tolerances. A decoding is as far from the real bass as its worst target relative to its
# tolerance (``song_target_gap``); a plain sum of the gaps let one target's overshoot (a rhythm
# repeated far more often than the real bass repeats it) pay for small gains on the other two.
SONG_TARGETS: dict[str, float] = {"identical_line_rate": 0.10, "identical_rhythm_rate": 0.10,
                                  "distinct_line_rate": 0.15}


def song_target_gaps(mine: dict[str, float], real: dict[str, float]) -> list[float]:
    """|mine - real| / tolerance of every ``SONG_TARGETS`` entry, in order: <= 1 where the target is reached."""
    return [abs(float(mine[name]) - float(real[name])) / tolerance for name, tolerance in SONG_TARGETS.items()]


def song_target_gap(mine: dict[str, float], real: dict[str, float]) -> float:
    """max over ``SONG_TARGETS`` of |mine - real| / tolerance: <= 1 when every target is within its tolerance."""
    return max(song_target_gaps(mine, real))

REPORTED: dict[str, Metric] = METRICS | SONG_METRICS  # every metric a table may show
SONG_PAIR_METRICS = ("bleu4", "onset_f1", "onset_pitch_f1", "chord_tone_rate", "kick_lock")  # free running vs real
