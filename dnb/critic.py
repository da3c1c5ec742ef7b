"""The critic's test: can a classifier tell a real 8-bar bass line from a generated one?

A classifier two-sample test (Lopez-Paz & Oquab 2017) on whole lines rather than on
single 2-bar windows: the per-window metrics cannot see a model that plays a good
window and then forgets it, or one that loops one window forever where the real
bass varies every fourth bar. A critic listening to 8 bars over the same drums can.

* ``segments``: cut each song's contiguous windows into non-overlapping runs of
  ``SEGMENT_WINDOWS`` (4 windows = 8 bars).
* ``features``: ``[S, F]`` per-segment features a listener would use (``FEATURE_NAMES``,
  documented there): repetition across windows, density and its variation, timing
  against the drums, pitch range / intervals / pitch-class entropy, harmony.
* ``critic_test``: train a classifier on real vs generated segments of the validation
  songs, score it on balanced real vs generated segments of the test songs. Accuracy
  0.5 = the critic cannot tell them apart; 1.0 = every generated line is caught. The
  interval is a song bootstrap (``metrics.summarise``), a song contributing its real
  and its generated segments.
* ``control_rows``: the critic's scale. Real lines played where they do not belong (another
  8 bars of the same song, another song) are scored as a system is: a generated line that
  fools the critic must fit its drums and chords better than those do.

Everything is numpy; the classifier is scikit-learn, single-threaded and seeded.
"""

from __future__ import annotations

import numpy as np

from dnb import metrics
from dnb import representation as rep
from dnb.chords import chord_tone_hits

SEGMENT_WINDOWS = 4  # 4 consecutive 2-bar windows = an 8-bar line
MIN_ROWS = 4  # critic_test returns None with fewer rows of either class in train or test
N_BOOT = 1000
STEPS = rep.BASS_STEPS  # 64 32nd steps per window
BAR = STEPS // 2
CHANCE = 0.5  # the accuracy of a critic that cannot tell real from generated
TOLERANCE = 0.15  # the whole-song goal: accuracy at most CHANCE + TOLERANCE (0.65) on the best model's songs
INTERVAL_BINS = 13  # 0 = repeated pitch, 1..11 = |interval| mod 12, 12 = whole octaves

# One name per feature column, in order. "next" = window i vs i+1 (3 pairs per segment),
# "skip" = window i vs i+2 (2 pairs); shares are over those pairs. Ratios with an
# empty denominator (no onset, no kick, no interval, no chord) are 0.
FEATURE_NAMES: tuple[str, ...] = (
    # repetition across the 4 windows
    "same_line_next",  # windows with identical tokens
    "same_line_skip",
    "same_rhythm_next",  # identical onset positions (pitches may differ)
    "same_rhythm_skip",
    "token_agree_next",  # share of the 64 steps with equal tokens
    "token_agree_skip",
    "onset_f1_next",  # onset-timing F1 between the two windows (1 when both are empty)
    "same_pitch_set_next",  # same set of pitch classes with an onset
    "distinct_lines",  # number of distinct windows, 1..4
    "distinct_rhythms",  # number of distinct onset patterns, 1..4
    "bar_repeat",  # share of windows whose second bar repeats the first
    # density
    "onset_density",  # onsets / 256 steps
    "onsets_std",  # std over the 4 windows of the onsets per window
    "onsets_range",  # max - min over the windows of the onsets per window
    "empty_window_share",  # windows without an onset / 4
    "empty_bar_share",  # bars without an onset / 8
    "sustain_share",  # SUSTAIN tokens / 256
    "rest_share",  # REST tokens / 256
    "longest_rest",  # longest run of REST inside one window / 64
    "mean_note_length",  # (onsets + sustains) / onsets, in 32nd steps
    # timing against the drums and the grid
    "on_kick",  # onsets on a kick (even 32nd step 2s, kick at 16th s) / onsets
    "on_snare",  # same for the snare
    "kick_covered",  # kicks with a bass onset / kicks
    "off_grid",  # onsets on odd 32nd steps (between 16ths) / onsets
    "on_beat",  # onsets on a quarter-note beat / onsets
    "on_offbeat_eighth",  # onsets on the "and" of a beat / onsets
    "downbeat_onset",  # bars with an onset on their first step / 8
    # pitch
    "pitch_range",  # (highest - lowest onset pitch) / 35
    "pitch_mean",  # mean folded pitch index / 35
    "pitch_std",  # std of the onset pitch / 35
    "distinct_pitch_classes",  # pitch classes with an onset, 0..12
    "pc_entropy",  # entropy (bits) of the onset pitch-class histogram
    "top_pc_share",  # onsets on the most frequent pitch class / onsets
    "interval_up",  # rising intervals / non-zero intervals (consecutive onsets, across windows)
    "mean_abs_interval",  # mean |interval| in semitones / 12
    *(f"interval_{k}" for k in range(INTERVAL_BINS - 1)),  # share of intervals with |d| mod 12 = k (d=0: k=0)
    "interval_octave",  # share of non-zero whole-octave intervals
    # harmony (all 0 when no chords are given, so F does not depend on it)
    "chord_root",  # onsets on the chord root / onsets under a chord
    "chord_tone",  # onsets on a chord tone / onsets under a chord
    "under_chord",  # onsets under a chord (not N) / onsets
)
N_FEATURES = len(FEATURE_NAMES)

# The critic's controls (``control_rows``): real 8-bar lines put over drums and chords they were not played with.
CONTROLS: dict[str, str] = {
    "same_song": "the real bass of the same song from other 8 bars",
    "other_song": "the real bass of another song",
}


# --------------------------------------------------------------------------- segments


def segments(follows: np.ndarray, song: np.ndarray) -> np.ndarray:
    """``[S, SEGMENT_WINDOWS]`` int64 row indices of non-overlapping runs of consecutive
    windows of one song. ``follows[j]`` is True when row ``j`` is the window right after
    row ``j - 1`` of the same song (rows are in song order; ``follows[0]`` is ignored, and
    a change of ``song`` always breaks a run). Each contiguous run is cut greedily from
    its start: a run of 9 windows gives rows 0-3 and 4-7, a run of 3 gives nothing."""
    follows = np.asarray(follows, dtype=bool).reshape(-1)
    song = np.asarray(song).reshape(-1)
    n = len(follows)
    if len(song) != n:
        raise ValueError(f"follows has {n} rows, song {len(song)}")
    if n == 0:
        return np.zeros((0, SEGMENT_WINDOWS), dtype=np.int64)
    start = ~follows.copy()
    start[0] = True
    start[1:] |= song[1:] != song[:-1]
    idx = np.arange(n)
    run_start = np.maximum.accumulate(np.where(start, idx, 0))
    run_end = np.append(np.flatnonzero(start)[1:], n)[np.cumsum(start) - 1]  # one past each row's run
    pos = idx - run_start
    first = idx[(pos % SEGMENT_WINDOWS == 0) & (idx + SEGMENT_WINDOWS <= run_end)]
    return (first[:, None] + np.arange(SEGMENT_WINDOWS)[None, :]).astype(np.int64)


def control_rows(song: np.ndarray, control: str, seed: int = 0) -> np.ndarray:
    """``[S]`` for every segment (``song [S]``: its song, segments in song order as ``segments``
    gives them) the segment whose real line a ``CONTROLS`` entry plays over its drums and chords,
    -1 where it has none:

    * ``same_song``: the next segment of the same song, the one before for a song's last; -1 for a
      song with one segment.
    * ``other_song``: a segment of another song. Segments are grouped by song in a seeded song
      order and each takes the segment ``m`` places later (cyclically), ``m`` the most segments
      of any song: never its own song. All -1 when one song has more than half the segments."""
    song = np.asarray(song).reshape(-1)
    n = len(song)
    if control == "same_song":
        idx, same = np.arange(n), song[1:] == song[:-1]
        after, before = np.append(same, False), np.insert(same, 0, False)
        return np.where(after, idx + 1, np.where(before, idx - 1, -1)).astype(np.int64)
    if control == "other_song":
        names, inverse, counts = np.unique(song, return_inverse=True, return_counts=True)
        if n == 0 or 2 * counts.max() > n:
            return np.full(n, -1, dtype=np.int64)
        rank = np.random.default_rng(seed).permutation(len(names))[inverse]
        order = np.lexsort((np.arange(n), rank))  # segments grouped by song, songs in seeded order
        out = np.empty(n, dtype=np.int64)
        out[order] = order[(np.arange(n) + counts.max()) % n]
        return out
    raise ValueError(f"unknown critic control {control!r}; known: {', '.join(CONTROLS)}")


# --------------------------------------------------------------------------- features


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _pairs(x: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows i and i + ``gap`` of every segment, ``[S, 4 - gap, ...]`` each."""
    return x[:, : SEGMENT_WINDOWS - gap], x[:, gap:]


def _distinct(x: np.ndarray) -> np.ndarray:
    """Number of distinct rows among the ``SEGMENT_WINDOWS`` of each segment ``[S, 4, L]``."""
    count = np.ones(len(x))
    for j in range(1, x.shape[1]):
        seen = np.zeros(len(x), dtype=bool)
        for i in range(j):
            seen |= (x[:, i] == x[:, j]).all(-1)
        count += ~seen
    return count


def features(
    tokens: np.ndarray, drums: np.ndarray, chords: np.ndarray | None = None, chunk: int = 8192
) -> np.ndarray:
    """``[S, N_FEATURES]`` float64 features of 8-bar lines: ``tokens`` ``[S, 4, 64]``,
    ``drums`` ``[S, 4, 32, 14]`` (the drums the line plays over), ``chords`` ``[S, 4, 4]``
    half-bar labels or None (harmony features 0). Columns as ``FEATURE_NAMES``.
    Vectorised over segments, in chunks of ``chunk`` segments so that memory stays
    bounded (100k segments: a few seconds)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 3 or tokens.shape[1:] != (SEGMENT_WINDOWS, STEPS):
        raise ValueError(f"tokens must be [S, {SEGMENT_WINDOWS}, {STEPS}], got {tokens.shape}")
    drums = np.asarray(drums)
    if drums.shape[:3] != (len(tokens), SEGMENT_WINDOWS, rep.DRUM_STEPS):
        raise ValueError(f"drums must be [S, {SEGMENT_WINDOWS}, {rep.DRUM_STEPS}, classes], got {drums.shape}")
    if chords is not None:
        chords = np.asarray(chords)
        if chords.shape[:2] != (len(tokens), SEGMENT_WINDOWS):
            raise ValueError(f"chords must be [S, {SEGMENT_WINDOWS}, 4], got {chords.shape}")
    out = np.zeros((len(tokens), N_FEATURES), dtype=np.float64)
    for start in range(0, len(tokens), chunk):
        sl = slice(start, start + chunk)
        out[sl] = _features(tokens[sl], drums[sl], None if chords is None else chords[sl])
    return out


def _features(tokens: np.ndarray, drums: np.ndarray, chords: np.ndarray | None) -> np.ndarray:
    """``features`` of one chunk."""
    s = len(tokens)
    tokens = tokens.astype(np.int16)
    onset = tokens >= rep.ONSET_OFFSET  # [S, 4, 64]
    pitch = np.where(onset, tokens - rep.ONSET_OFFSET, 0)
    pc = (rep.BASS_LOW + pitch) % 12
    n_win = onset.sum(-1)  # [S, 4]
    n_on = n_win.sum(1).astype(np.float64)

    # pitch-class histograms per window (bincount on the onsets only: no [S, 256, 12] one-hot)
    r, w, t = np.nonzero(onset)
    pc_win = np.bincount((r * SEGMENT_WINDOWS + w) * 12 + pc[r, w, t], minlength=s * SEGMENT_WINDOWS * 12)
    pc_win = pc_win.reshape(s, SEGMENT_WINDOWS, 12)
    pc_set = pc_win > 0
    pc_hist = pc_win.sum(1).astype(np.float64)  # [S, 12]

    cols: list[np.ndarray] = []  # in FEATURE_NAMES order
    same_line = {g: np.equal(*_pairs(tokens, g)).all(-1).mean(1) for g in (1, 2)}
    same_rhythm = {g: np.equal(*_pairs(onset, g)).all(-1).mean(1) for g in (1, 2)}
    agree = {g: np.equal(*_pairs(tokens, g)).mean((1, 2)) for g in (1, 2)}
    on_a, on_b = _pairs(onset, 1)
    both, either = (on_a & on_b).sum(-1), on_a.sum(-1) + on_b.sum(-1)
    cols += [same_line[1], same_line[2], same_rhythm[1], same_rhythm[2], agree[1], agree[2]]
    cols.append(np.where(either > 0, 2 * both / np.maximum(either, 1), 1.0).mean(1))
    cols.append(np.equal(*_pairs(pc_set, 1)).all(-1).mean(1))
    cols.append(_distinct(tokens))
    cols.append(_distinct(onset))
    cols.append((tokens[:, :, :BAR] == tokens[:, :, BAR:]).all(-1).mean(1))

    # density
    total = SEGMENT_WINDOWS * STEPS
    bars = onset.reshape(s, SEGMENT_WINDOWS, 2, BAR).any(-1)
    sustain = (tokens == rep.SUSTAIN).sum((1, 2))
    rest = tokens == rep.REST
    idx = np.arange(STEPS)
    last_other = np.maximum.accumulate(np.where(rest, -1, idx), axis=-1)
    longest = (idx - last_other).max(-1).max(-1)  # longest REST run inside one window
    cols += [
        n_on / total,
        n_win.std(1),
        (n_win.max(1) - n_win.min(1)).astype(np.float64),
        (n_win == 0).mean(1),
        1.0 - bars.mean((1, 2)),
        sustain / total,
        rest.sum((1, 2)) / total,
        longest / STEPS,
        _safe_div(n_on + sustain, n_on),
    ]

    # timing
    def on_drum(cls: int) -> tuple[np.ndarray, np.ndarray]:
        hit = drums[..., cls] > 0  # [S, 4, 32]
        bass_hit = onset[:, :, ::2]  # the 32nd steps that fall on 16ths
        return (bass_hit & hit).sum((1, 2)), hit.sum((1, 2))

    on_kick, kicks = on_drum(rep.KICK)
    on_snare, _ = on_drum(rep.SNARE)
    step = idx[None, None, :]
    cols += [
        _safe_div(on_kick, n_on),
        _safe_div(on_snare, n_on),
        _safe_div(on_kick, kicks),
        _safe_div((onset & (step % 2 == 1)).sum((1, 2)), n_on),
        _safe_div((onset & (step % 8 == 0)).sum((1, 2)), n_on),
        _safe_div((onset & (step % 8 == 4)).sum((1, 2)), n_on),
        onset[:, :, ::BAR].mean((1, 2)),
    ]

    # pitch
    p = pitch.reshape(s, -1).astype(np.float64)
    flat_on = onset.reshape(s, -1)
    hi = np.where(flat_on, p, -1).max(1)
    lo = np.where(flat_on, p, rep.BASS_PITCHES).min(1)
    mean = _safe_div((p * flat_on).sum(1), n_on)
    var = np.maximum(_safe_div((p**2 * flat_on).sum(1), n_on) - mean**2, 0.0)
    share = pc_hist / np.maximum(n_on, 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(share > 0, share * np.log2(np.where(share > 0, share, 1)), 0.0).sum(1)
    span = rep.BASS_PITCHES - 1
    cols += [
        np.where(n_on > 0, hi - lo, 0) / span,
        mean / span,
        np.sqrt(var) / span,
        (pc_hist > 0).sum(1).astype(np.float64),
        entropy,
        share.max(1),
    ]

    # intervals between consecutive onsets of the whole line (across window boundaries)
    rr, cc = np.nonzero(flat_on)
    pp = p[rr, cc].astype(np.int64)
    same = rr[1:] == rr[:-1]
    row = rr[1:][same]
    d = (pp[1:] - pp[:-1])[same]
    a = np.abs(d)
    k = np.where(a == 0, 0, np.where(a % 12 == 0, INTERVAL_BINS - 1, a % 12))
    hist = np.bincount(row * INTERVAL_BINS + k, minlength=s * INTERVAL_BINS).reshape(s, INTERVAL_BINS)
    n_int = hist.sum(1)
    up = np.bincount(row, weights=(d > 0), minlength=s)
    moved = np.bincount(row, weights=(d != 0), minlength=s)
    abs_sum = np.bincount(row, weights=a, minlength=s)
    cols += [_safe_div(up, moved), _safe_div(abs_sum, n_int) / 12]
    cols += list((hist / np.maximum(n_int, 1)[:, None]).T)

    # harmony
    if chords is None:
        cols += [np.zeros(s)] * 3
    else:
        chords = np.asarray(chords).reshape(s * SEGMENT_WINDOWS, -1)
        tone, root, under = (x.reshape(s, SEGMENT_WINDOWS).sum(1) for x in
                             chord_tone_hits(tokens.reshape(-1, STEPS), chords))
        cols += [_safe_div(root, under), _safe_div(tone, under), _safe_div(under, n_on)]

    out = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
    assert out.shape[1] == N_FEATURES, (out.shape, N_FEATURES)
    return out


# --------------------------------------------------------------------------- the test


def _classifier(seed: int, n_train: int):
    """The critic: small, regularised gradient-boosted trees (see ``critic_test`` for why);
    deterministic: no early stopping (no random validation split), fixed seed. A leaf holds at
    least 40 rows, or a twentieth of a small training set (at least 5): with the 9 validation
    songs of the embedded corpus (about 70 rows) a 40-row leaf cannot split and every critic
    would guess one class (0.5 by construction, not by indistinguishability)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=max(5, min(40, n_train // 20)),
        l2_regularization=1.0,
        early_stopping=False, random_state=seed,
    )


def _balanced(n_a: int, n_b: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices of both classes, the larger one subsampled (without replacement)
    to the size of the smaller."""
    m = min(n_a, n_b)
    pick = [np.arange(n) if n == m else np.sort(rng.choice(n, size=m, replace=False)) for n in (n_a, n_b)]
    return pick[0], pick[1]


def _fit_predict(train_real: np.ndarray, train_fake: np.ndarray, test_real: np.ndarray, test_fake: np.ndarray,
                 rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(correct ``[N]`` 0/1, is_real ``[N]``, real rows, fake rows) of the critic trained on the
    balanced ``train_*`` rows and scored on the balanced ``test_*`` rows (real first, then generated)."""
    from threadpoolctl import threadpool_limits

    ir, jf = _balanced(len(train_real), len(train_fake), rng)
    x_train = np.concatenate([train_real[ir], train_fake[jf]])
    y_train = np.concatenate([np.ones(len(ir), dtype=np.int64), np.zeros(len(jf), dtype=np.int64)])
    ir, jf = _balanced(len(test_real), len(test_fake), rng)
    x_test = np.concatenate([test_real[ir], test_fake[jf]])
    y_test = np.concatenate([np.ones(len(ir), dtype=np.int64), np.zeros(len(jf), dtype=np.int64)])
    with threadpool_limits(limits=1):
        pred = _classifier(seed, len(x_train)).fit(x_train, y_train).predict(x_test)
    return (pred == y_test).astype(np.float64), y_test.astype(bool), ir, jf


def critic_test(
    train_real: np.ndarray,
    train_fake: np.ndarray,
    test_real: np.ndarray,
    test_fake: np.ndarray,
    test_song_real: np.ndarray,
    test_song_fake: np.ndarray,
    seed: int = 0,
    n_boot: int = N_BOOT,
) -> dict | None:
    """Classifier two-sample test of real vs generated 8-bar lines.

    Inputs are ``features`` rows: ``train_*`` from the validation songs, ``test_*`` from
    the test songs, with the song id of every test row (a generated segment carries the
    id of the song whose drums it was written for). Both the training and the test set
    are balanced by subsampling the larger class with ``seed``, so 0.5 means the critic
    cannot tell real from generated and a majority-class guess scores 0.5 too.

    Returns ``{"accuracy": {"value", "lo", "hi"}, "n_real", "n_fake", "n_train",
    "stats": [N, 2] (correct, 1) per test row, "song": [N], "is_real": [N]}`` with
    ``n_real == n_fake`` test rows (real first, then generated) and the 95% song-bootstrap
    interval of ``metrics.summarise`` (a song contributes its real and its generated
    segments). None when train or test has fewer than ``MIN_ROWS`` rows of either
    class: too few to train or score a critic.

    Classifier: ``HistGradientBoostingClassifier`` (100 trees of 8 leaves, learning rate
    0.05, at least 40 rows a leaf (fewer on a small set), no early stopping, seeded), chosen over a logistic
    regression on standardised features on synthetic lines (1500 training and 1000
    test segments a class): where real and generated differ in one feature's level
    (more note noise, weaker kick lock, more looping) both score alike (0.79 / 0.81,
    0.70 / 0.69, 0.59 / 0.60 trees / logistic), but where they differ in how two features
    go together (real: kick-locked lines low, loose lines an octave up; generated: the
    reverse, every marginal equal) the trees score 0.94 and the logistic regression
    0.5 (0.96 / 0.52 in ``test_critic_finds_interactions``). A two-sample test should miss no kind of
    difference, so the trees. Two samples of one distribution score 0.5 with both. Run
    single-threaded (threadpoolctl): deterministic and light beside a training job.
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in (train_real, train_fake, test_real, test_fake)]
    if min(len(x) for x in arrays) < MIN_ROWS:  # before the reshape: numpy cannot infer -1 for 0 rows
        return None
    tr_real, tr_fake, te_real, te_fake = (x.reshape(len(x), -1) for x in arrays)
    song_real, song_fake = np.asarray(test_song_real).reshape(-1), np.asarray(test_song_fake).reshape(-1)
    if len(song_real) != len(te_real) or len(song_fake) != len(te_fake):
        raise ValueError("one song id per test row")
    correct, is_real, ir, jf = _fit_predict(tr_real, tr_fake, te_real, te_fake, np.random.default_rng(seed), seed)
    song = np.concatenate([song_real[ir], song_fake[jf]])
    stats = np.stack([correct, np.ones_like(correct)], axis=1)
    return {
        "accuracy": metrics.summarise(stats, metrics.RATIO, song, n_boot, seed),
        "n_real": int(len(ir)),
        "n_fake": int(len(jf)),
        "n_train": int(2 * min(len(tr_real), len(tr_fake))),
        "stats": stats,
        "song": song,
        "is_real": is_real,
    }


def cross_fitted_accuracy(real: np.ndarray, real_song: np.ndarray, fake: np.ndarray, fake_song: np.ndarray,
                          seed: int = 0) -> float | None:
    """The critic's accuracy estimated on ONE split's songs (the validation songs, to choose a decoding
    without the test songs): the songs are dealt into two seeded halves, a critic trained on the lines
    of each half is scored on the other's, and the two accuracies are averaged (every line is scored
    once, by a critic that never saw its song). Each half-critic trains on half the rows the real test
    uses, so it is a little weaker. None when a half has fewer than ``MIN_ROWS`` rows of either class."""
    real, fake = (np.asarray(x, dtype=np.float64).reshape(len(x), -1) for x in (real, fake))
    real_song, fake_song = np.asarray(real_song).reshape(-1), np.asarray(fake_song).reshape(-1)
    songs = np.unique(np.concatenate([real_song, fake_song]))
    half = np.random.default_rng(seed).permutation(len(songs)) % 2  # song songs[i] is in half half[i]
    in_real, in_fake = (half[np.searchsorted(songs, s)] for s in (real_song, fake_song))
    rng, correct = np.random.default_rng(seed), []
    for h in (0, 1):
        parts = real[in_real == h], fake[in_fake == h], real[in_real != h], fake[in_fake != h]
        if min(len(x) for x in parts) < MIN_ROWS:
            return None
        correct.append(_fit_predict(*parts, rng, seed)[0])
    return float(np.mean([c.mean() for c in correct]))


def goal_gap(accuracy: float | None) -> float:
    """How far a critic's accuracy is from the whole-song goal (at most ``CHANCE + TOLERANCE``), over its
    tolerance, as ``dnb.metrics.song_target_gap`` measures the repetition targets: <= 1 when the goal
    is reached, 0 at chance or below. 0 when there is no accuracy (too few lines to train a critic)."""
    return 0.0 if accuracy is None else max(float(accuracy) - CHANCE, 0.0) / TOLERANCE


def giveaways(real: np.ndarray, fake: np.ndarray, top: int = 3) -> list[dict]:
    """The ``top`` features on which generated lines differ most from real ones: the standardised
    mean difference d = (mean fake - mean real) / pooled sd over ``features`` rows ``[S, F]``,
    largest |d| first, as ``{"feature", "real", "fake", "d"}``. The critic's accuracy says how
    well it tells the two apart, this says by what a listener would hear it (one feature at a
    time; the trees also use how features go together). Constant features get d = 0."""
    if min(len(real), len(fake)) < MIN_ROWS:  # before the reshape: numpy cannot infer -1 for 0 rows
        return []
    real, fake = (np.asarray(x, dtype=np.float64).reshape(len(x), -1) for x in (real, fake))
    pooled = np.sqrt((real.var(0) + fake.var(0)) / 2)
    d = _safe_div(fake.mean(0) - real.mean(0), pooled)
    order = np.argsort(-np.abs(d), kind="stable")[:top]
    return [{"feature": FEATURE_NAMES[j], "real": round(float(real[:, j].mean()), 4),
             "fake": round(float(fake[:, j].mean()), 4), "d": round(float(d[j]), 3)} for j in order]
