"""The baselines behind the ``BassGenerator`` interface, fitted on the training split.

They bracket every model: ``silence`` and ``constant_density`` are the floors the
2019 project's reconstruction loss never beat, ``repaired`` (MuseGAN's "shuffled")
is real bass with no relation to the drums, ``knn`` copies the bass of the most
similar training drums, ``root_on_kick`` is the one-line rule a bassist would
start from, ``bigram`` is a Markov chain over bass tokens given the drum step. Each
kind of information a model may get has a baseline that uses it: ``chord_knn`` and
``chord_root_on_kick`` the chords, ``repeat_previous`` the previous window, ``context_knn``
the chords and the previous window together.

Each is built as ``Class(params, info)`` with ``params`` = the ``evaluate`` section of
params.yaml, then ``fit(train_batch)``. ``DEFAULTS`` are the values used where a key is
absent (``dnb generate`` outside the repository); a test holds them equal to params.yaml.
"""

from __future__ import annotations

import numpy as np
import torch

from dnb import chords as ch
from dnb import representation as rep
from dnb.schema import DataInfo, drum_agreement
from models.base import BassGenerator, Temperature, tempered_logits

DEFAULTS = {"knn_k": 5, "knn_metric": "jaccard", "knn_add_k": 0.1, "knn_max_train": 20000, "bigram_add_k": 0.1,
            "context_knn_candidates": 64, "context_knn_max_train": 0, "seed": 0}
HATS = (4, 5)  # closed / open hi-hat classes of rep.DRUM_CLASS_NAMES
# quality index of every chord label (``ch.QUALITIES`` order; -1 for N), from ``ch.chord_quality``
QUALITY_INDEX = torch.tensor([-1 if (q := ch.chord_quality(label)) is None else ch.QUALITIES.index(q)
                              for label in range(ch.N_CHORDS)])


def _tempered(probs: torch.Tensor, temperature: Temperature) -> torch.Tensor:
    """``probs`` [..., 38] at ``temperature`` (``models.base.tempered_logits``), renormalised."""
    if temperature == 1.0:
        return probs
    return torch.softmax(tempered_logits(torch.log(probs.clamp_min(1e-30)), temperature), dim=-1)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probs`` ``[..., V]`` by inverse CDF (torch.multinomial is
    ~100x slower on many small rows)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, dtype=cdf.dtype) * cdf[..., -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp(max=probs.shape[-1] - 1)


class Baseline(BassGenerator):
    def __init__(self, params: dict | None = None, info: DataInfo | None = None):
        self.params = {**DEFAULTS, **(params or {})}
        self.info = info or DataInfo()
        self.seed = int(self.params["seed"])

    def fit(self, train_batch: dict) -> Baseline:
        return self


class Silence(Baseline):
    """All REST: scores perfectly on empty bars and terribly on everything else.
    Defines no distribution (a point mass on REST has infinite NLL), so NLL is n/a."""

    name = "silence"
    deterministic = True

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        return torch.zeros(batch["drums"].shape[0], k, rep.BASS_STEPS, dtype=torch.int64)


class ConstantDensity(Baseline):
    """The training mean onset rate at every roll cell: the BCE floor that the 2019
    reconstruction losses equal. Tokens: the training unigram distribution (add-k
    smoothed with ``bigram_add_k``), sampled i.i.d. per step."""

    name = "constant_density"

    def fit(self, train_batch):
        self.rate = float(train_batch["roll"].float().mean())
        counts = torch.bincount(train_batch["tokens"].reshape(-1), minlength=rep.VOCAB_SIZE).double()
        counts = counts + float(self.params["bigram_add_k"])
        self.unigram = (counts / counts.sum()).float()
        return self

    def onset_probs(self, batch):
        return torch.full((batch["drums"].shape[0], rep.BASS_STEPS, rep.BASS_PITCHES), self.rate)

    def token_nll(self, batch):
        return -torch.log(self.unigram)[batch["tokens"]]

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        b = batch["drums"].shape[0]
        probs = _tempered(self.unigram, temperature).expand(b, k, rep.BASS_STEPS, -1)
        return _draw(probs.contiguous(), generator)


class Repaired(Baseline):
    """A random training bass line re-paired with the test drums (MuseGAN's
    "shuffled" reference): real bass, no relation to the drums."""

    name = "repaired"

    def fit(self, train_batch):
        self.tokens = train_batch["tokens"].clone()
        return self

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        b = batch["drums"].shape[0]
        idx = torch.randint(0, len(self.tokens), (b, k), generator=generator)
        return self.tokens[idx]


class Knn(Baseline):
    """Bass of the k nearest training drum grids (``knn_metric``: jaccard or hamming
    over the 32x14 binary grid). Identical training grids are deduplicated and the
    distances computed as chunked matrix products, so a 50k-pair test split against
    a large training split stays a few matrix multiplications. Sample 1 is the
    nearest pair's bass, samples 2..K are drawn among the k nearest. The token
    distribution per step is the neighbours' token frequency, add-``knn_add_k``
    smoothed so that the NLL is finite. Ties are broken by a seeded shuffle. Exact
    search costs N_test x N_train x 448 multiply-adds (~1e13 on the large corpus), so
    ``knn_max_train`` > 0 searches a seeded random subset of that many training pairs.
    ``temperature`` is not used: a retrieved line has no distribution to sharpen, so the
    tuned-temperature sample of a kNN is its first sample at every temperature."""

    name = "knn"
    chunk = 1024

    def fit(self, train_batch):
        self.k = int(self.params["knn_k"])
        self.metric = str(self.params["knn_metric"])
        if self.metric not in ("jaccard", "hamming"):
            raise ValueError(f"knn_metric must be jaccard or hamming, not {self.metric!r}")
        self.add_k = float(self.params["knn_add_k"])
        drums = train_batch["drums"].reshape(len(train_batch["drums"]), -1).numpy() > 0
        order = np.random.default_rng(self.seed).permutation(len(drums))
        max_train = int(self.params["knn_max_train"])
        if max_train > 0:
            order = order[:max_train]
        packed = np.packbits(drums[order], axis=1)
        _, first, inv = np.unique(packed, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        self.grids = torch.as_tensor(drums[order][first], dtype=torch.float32)  # [U, 448]
        self.sizes = self.grids.sum(1)
        self.k = min(self.k, len(order))
        members = np.full((len(first), self.k), -1, dtype=np.int64)
        by_grid = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[by_grid], np.arange(len(first)))
        rank = np.arange(len(by_grid)) - starts[inv[by_grid]]
        keep = rank < self.k
        members[inv[by_grid][keep], rank[keep]] = order[by_grid][keep]
        self.members = torch.as_tensor(members)
        self.tokens = train_batch["tokens"].clone()
        self._cache = (None, None)
        return self

    def similarity(self, query: torch.Tensor) -> torch.Tensor:
        """``[B, U]`` similarity (larger = nearer) of each query grid ``[B, 448]`` to each
        unique training grid: Jaccard index, or minus the Hamming distance. In place: the
        ``[B, U]`` products dominate memory traffic."""
        dot = query @ self.grids.T
        union = self.sizes[None, :] + query.sum(1, keepdim=True)
        if self.metric == "hamming":
            return dot.mul_(2).sub_(union)
        union.sub_(dot)  # |A u B| = |A| + |B| - |A n B|
        empty = union == 0  # two empty grids are identical
        return dot.div_(union.clamp_min_(1)).masked_fill_(empty, 1.0)

    def neighbours(self, batch) -> torch.Tensor:
        """``[B, k]`` training pair indices, nearest first (cached for the last batch)."""
        if self._cache[0] is batch["drums"]:
            return self._cache[1]
        flat = batch["drums"].reshape(len(batch["drums"]), -1).numpy() > 0
        _, first, back = np.unique(np.packbits(flat, axis=1), axis=0, return_index=True, return_inverse=True)
        query = torch.as_tensor(flat[first], dtype=torch.float32)  # identical test grids searched once
        out = []
        for start in range(0, len(query), self.chunk):
            score = self.similarity(query[start : start + self.chunk])
            k_unique = min(self.k, score.shape[1])
            nearest = torch.topk(score, k_unique, dim=1, largest=True, sorted=True).indices
            cand = self.members[nearest].reshape(len(nearest), -1)  # nearest grids first
            valid_first = torch.argsort((cand < 0).to(torch.int8), dim=1, stable=True)[:, : self.k]
            out.append(torch.gather(cand, 1, valid_first))
        result = torch.cat(out)[torch.as_tensor(back.reshape(-1))]
        self._cache = (batch["drums"], result)
        return result

    def _neighbour_tokens(self, batch, index: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, k, 64]`` of the training pairs ``index [B, k]`` (as they are: chord_knn moves them)."""
        return self.tokens[index]

    def _token_probs(self, batch) -> torch.Tensor:
        nb_tokens = self._neighbour_tokens(batch, self.neighbours(batch))  # [B, k, 64]
        counts = torch.nn.functional.one_hot(nb_tokens, rep.VOCAB_SIZE).sum(1).double() + self.add_k
        return (counts / counts.sum(-1, keepdim=True)).float()

    def token_nll(self, batch):
        probs = self._token_probs(batch)
        return -torch.log(torch.gather(probs, 2, batch["tokens"].unsqueeze(-1)).squeeze(-1))

    def onset_probs(self, batch):
        return self._token_probs(batch)[..., rep.ONSET_OFFSET :]

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        nb = self.neighbours(batch)
        pick = torch.randint(0, nb.shape[1], (len(nb), k), generator=generator)
        pick[:, 0] = 0
        return self._neighbour_tokens(batch, torch.gather(nb, 1, pick))


class ChordKnn(Knn):
    """``knn`` told the chords: the bass of the k nearest training drum grids, each half bar
    transposed by the smallest shift (-6..+5 semitones) from the neighbour's chord root to
    the query's (no shift where either is N; pitches folded back into the bass range). The
    chord-aware retrieval a chord-conditioned model must beat."""

    name = "chord_knn"

    def fit(self, train_batch):
        super().fit(train_batch)
        self.roots = torch.as_tensor(ch.chord_roots(train_batch["chords"].numpy()))  # [N, 4]
        return self

    def _neighbour_tokens(self, batch, index: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, k, 64]`` of training pairs ``index [B, k]`` moved onto the query's chords."""
        query = torch.as_tensor(ch.chord_roots(batch["chords"].numpy()))[:, None, :]  # [B, 1, 4]
        theirs = self.roots[index]  # [B, k, 4]
        shift = torch.where((query >= 0) & (theirs >= 0), (query - theirs + 6) % 12 - 6, 0)
        halves = self.tokens[index].reshape(*index.shape, ch.HALF_BARS, -1).numpy()
        moved = rep.transpose_tokens(halves, shift.numpy())
        return torch.as_tensor(moved.reshape(*index.shape, rep.BASS_STEPS).astype(np.int64))


def first_onsets(tokens: torch.Tensor) -> torch.Tensor:
    """``[...]`` token of the first onset of every line ``[..., 64]`` (``rep.REST`` where there is none)."""
    onset = tokens >= rep.ONSET_OFFSET
    first = torch.argmax(onset.to(torch.int8), dim=-1, keepdim=True)
    return torch.where(onset.any(-1), torch.gather(tokens, -1, first).squeeze(-1), rep.REST)


def moved_agreement(line: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` share of the 64 steps on which ``candidates [B, C, 64]``, each moved so that its first
    onset takes the pitch of the first onset of ``line [B, 64]``, equals ``line``: 1 for the same riff
    in another key."""
    mine, theirs = first_onsets(line)[:, None], first_onsets(candidates)
    shift = torch.where((mine >= rep.ONSET_OFFSET) & (theirs >= rep.ONSET_OFFSET), mine - theirs, 0)
    moved = torch.as_tensor(rep.transpose_tokens(candidates.numpy(), shift.numpy()).astype(np.int64))
    return (moved == line[:, None, :]).float().mean(-1)


def chord_motion_agreement(query: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` how well the chords ``candidates [B, C, 4]`` move like ``query [B, 4]``: the mean of the
    share of half bars with the same quality (N with N) and whether one root shift fits every half bar
    where both have a chord (so that ``chord_knn``'s move keeps the line's own intervals)."""
    query = query[:, None, :].expand_as(candidates)
    quality = (QUALITY_INDEX[query] == QUALITY_INDEX[candidates]).float().mean(-1)
    roots_q, roots_c = (torch.as_tensor(ch.chord_roots(x.numpy())) for x in (query, candidates))
    both = (roots_q >= 0) & (roots_c >= 0)
    shift = torch.where(both, (roots_q - roots_c) % 12, -1)
    one = (~both | (shift == shift.max(-1, keepdim=True).values)).all(-1).float()
    return (quality + one) / 2


class ContextKnn(ChordKnn):
    """``chord_knn`` told the previous window: of the ``context_knn_candidates`` training pairs with the
    nearest drums, the ``knn_k`` that score best on drum Jaccard + how much their own previous window
    sounds like this window's (``moved_agreement``: the same riff in any key scores 1) + how their chords
    move like this window's (``chord_motion_agreement``), each term in [0, 1] and weighted alike. Their
    lines are moved onto the query's chords as ``chord_knn`` moves them, then by whole octaves toward the
    previous line's mean pitch (a song keeps its register). Where there is no previous window, drums and
    chords alone. So a retrieved line is what some training song played after a line like the previous
    one, over drums and chords like these: the retrieval a model given the chords and the previous
    window must beat. Searches ``context_knn_max_train`` training pairs (0 = all)."""

    name = "context_knn"
    takes_previous = True

    def fit(self, train_batch):
        self.keep = int(self.params["knn_k"])
        self.params = {**self.params, "knn_k": max(self.keep, int(self.params["context_knn_candidates"])),
                       "knn_max_train": int(self.params["context_knn_max_train"])}
        super().fit(train_batch)
        self.keep = min(self.keep, self.k)
        self.train_drums = train_batch["drums"].numpy()  # [N, 32, 14]
        self.train_chords = train_batch["chords"].long()
        self.prev_tokens, self.has_prev = train_batch["prev_tokens"].long(), train_batch["has_prev"] > 0
        self._ranked = (None, None)
        return self

    def neighbours(self, batch) -> torch.Tensor:
        """``[B, knn_k]`` training pair indices, best first, of the drum-nearest candidates reranked."""
        if self._ranked[0] is batch["drums"]:
            return self._ranked[1]
        pool = super().neighbours(batch)  # [B, C] nearest drums first
        query = np.repeat(batch["drums"].numpy(), pool.shape[1], axis=0)  # [B * C, 32, 14]
        drums = drum_agreement(query, self.train_drums[pool.reshape(-1).numpy()]).reshape(pool.shape)
        chords = chord_motion_agreement(batch["chords"].long(), self.train_chords[pool])
        score = torch.as_tensor(drums, dtype=torch.float32) + chords
        has = batch["has_prev"] > 0 if "has_prev" in batch else torch.zeros(len(pool), dtype=torch.bool)
        if has.any():
            line = batch["prev_tokens"].long()[has]
            score[has] += moved_agreement(line, self.prev_tokens[pool[has]]) * self.has_prev[pool[has]]
        order = torch.argsort(-score, dim=1, stable=True)[:, : self.keep]  # ties: the nearer drums first
        result = torch.gather(pool, 1, order)
        self._ranked = (batch["drums"], result)
        return result

    def _neighbour_tokens(self, batch, index: torch.Tensor) -> torch.Tensor:
        """``chord_knn``'s lines, each moved by whole octaves toward the previous line's mean pitch."""
        lines = super()._neighbour_tokens(batch, index)  # [B, k, 64]
        if "has_prev" not in batch:
            return lines

        def mean_pitch(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            onset = tokens >= rep.ONSET_OFFSET
            return torch.where(onset, tokens, 0).sum(-1) / onset.sum(-1).clamp_min(1), onset.any(-1)

        mine, ok_mine = mean_pitch(batch["prev_tokens"].long())
        theirs, ok_theirs = mean_pitch(lines)
        octaves = torch.round((mine[:, None] - theirs) / 12).long()
        octaves = torch.where((batch["has_prev"] > 0)[:, None] & ok_mine[:, None] & ok_theirs, octaves, 0)
        return torch.as_tensor(rep.transpose_tokens(lines.numpy(), 12 * octaves.numpy()).astype(np.int64))


class RootOnKick(Baseline):
    """The annotated key's tonic on every kick, held to the next onset. The octave is
    the training bass's most common octave (0: E1..D#2, 1: E2..D#3, 2: E3..D#4)."""

    name = "root_on_kick"
    deterministic = True

    def fit(self, train_batch):
        tokens = train_batch["tokens"]
        onsets = tokens[tokens >= rep.ONSET_OFFSET] - rep.ONSET_OFFSET
        self.octave = int(torch.bincount(onsets // 12, minlength=3).argmax()) if len(onsets) else 0
        return self

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        kick = batch["drums"][:, :, rep.KICK] > 0  # [B, 32]
        onset = torch.zeros(len(kick), rep.BASS_STEPS, dtype=torch.bool)
        onset[:, ::2] = kick
        pitch = (batch["key"] % 12 - rep.BASS_LOW % 12) % 12 + 12 * self.octave
        started = torch.cumsum(onset.long(), dim=1) > 0
        tokens = torch.where(started, rep.SUSTAIN, rep.REST)
        tokens = torch.where(onset, (rep.ONSET_OFFSET + pitch)[:, None].expand_as(tokens), tokens)
        return tokens.long().unsqueeze(1).expand(-1, k, -1).clone()


class ChordRootOnKick(RootOnKick):
    """``root_on_kick`` told the chords: the annotated chord's root of the half bar on every
    kick (the key's tonic where the half bar is N), in root_on_kick's octave. The honest
    rule for a chord-conditioned model to beat."""

    name = "chord_root_on_kick"

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        tokens = super().sample(batch, 1)[:, 0]  # [B, 64]: the tonic on every kick
        roots = torch.as_tensor(ch.chord_roots(batch["chords"].numpy()))  # [B, 4], -1 for N
        step_root = roots.repeat_interleave(rep.BASS_STEPS // ch.HALF_BARS, dim=1)  # [B, 64]
        pitch = (step_root - rep.BASS_LOW % 12) % 12 + 12 * self.octave
        onset = tokens >= rep.ONSET_OFFSET
        chorded = onset & (step_root >= 0)
        tokens = torch.where(chorded, rep.ONSET_OFFSET + pitch, tokens)
        return tokens.long().unsqueeze(1).expand(-1, k, -1).clone()


class Bigram(Baseline):
    """P(token_t | token_{t-1}, drum context_t), add-``bigram_add_k`` smoothed. The
    context is the kick/snare/hi-hat bits of the drum 16th at 32nd step t (zero on odd
    steps, which fall between 16ths) plus the step parity: 16 contexts. The step
    before the window is REST. Exact onset marginals come from the forward recursion."""

    name = "bigram"
    n_contexts = 16

    @staticmethod
    def contexts(drums: torch.Tensor) -> torch.Tensor:
        """``[B, 64]`` context index per 32nd step."""
        bits = (drums[:, :, rep.KICK] > 0).long() + 2 * (drums[:, :, rep.SNARE] > 0).long()
        bits = bits + 4 * (drums[:, :, list(HATS)] > 0).any(-1).long()
        ctx = torch.repeat_interleave(bits, 2, dim=1)
        ctx[:, 1::2] = 8
        return ctx

    @staticmethod
    def previous(tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.full_like(tokens[:, :1], rep.REST), tokens[:, :-1]], dim=1)

    def fit(self, train_batch):
        tokens = train_batch["tokens"]
        ctx = self.contexts(train_batch["drums"])
        v = rep.VOCAB_SIZE
        flat = (ctx * v + self.previous(tokens)) * v + tokens
        counts = torch.bincount(flat.reshape(-1), minlength=self.n_contexts * v * v).double()
        counts = counts.reshape(self.n_contexts, v, v) + float(self.params["bigram_add_k"])
        self.probs = (counts / counts.sum(-1, keepdim=True)).float()  # [ctx, prev, next]
        return self

    def token_nll(self, batch):
        tokens = batch["tokens"]
        return -torch.log(self.probs[self.contexts(batch["drums"]), self.previous(tokens), tokens])

    def onset_probs(self, batch):
        ctx = self.contexts(batch["drums"])
        state = torch.zeros(len(ctx), rep.VOCAB_SIZE)
        state[:, rep.REST] = 1.0
        out = []
        for t in range(rep.BASS_STEPS):
            new = torch.empty_like(state)
            for c in torch.unique(ctx[:, t]).tolist():  # <= 16 contexts: one small matmul each
                rows = ctx[:, t] == c
                new[rows] = state[rows] @ self.probs[c]
            state = new
            out.append(state[:, rep.ONSET_OFFSET :])
        return torch.stack(out, dim=1)

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        ctx = self.contexts(batch["drums"]).repeat_interleave(k, dim=0)
        cdf = _tempered(self.probs, temperature).cumsum(-1)  # [ctx, prev, next], built once
        cdf[..., -1] = 1.0
        prev = torch.full((len(ctx),), rep.REST, dtype=torch.int64)
        out = torch.empty(len(ctx), rep.BASS_STEPS, dtype=torch.int64)
        u = torch.rand(rep.BASS_STEPS, len(ctx), 1, generator=generator)
        for t in range(rep.BASS_STEPS):
            prev = torch.searchsorted(cdf[ctx[:, t], prev], u[t]).squeeze(1).clamp(max=rep.VOCAB_SIZE - 1)
            out[:, t] = prev
        return out.reshape(-1, k, rep.BASS_STEPS)


class RepeatPrevious(Bigram):
    """The previous window's bass line again, note for note (``root_on_kick`` where the
    window has no previous one): the riff a bass player repeats, and the bar every model
    given the previous window must clear. Its distribution, for perplexity and the roll BCE,
    mixes "copy the previous token" with the bigram: ``copy_weight * [token == previous
    line's token] + (1 - copy_weight) * bigram`` where there is a previous window, the bigram
    alone elsewhere; ``copy_weight`` is the maximum-likelihood weight on the training pairs
    (a grid of 0.01..0.99)."""

    name = "repeat_previous"
    deterministic = True
    takes_previous = True
    GRID = np.round(np.linspace(0.01, 0.99, 99), 2)
    FIT_PAIRS = 20000

    def copied(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(the line to copy [B, 64], whether there is one [B] bool)."""
        return batch["prev_tokens"].long(), batch["has_prev"] > 0

    def fit(self, train_batch):
        super().fit(train_batch)
        self.rule = RootOnKick(self.params, self.info).fit(train_batch)
        rows = torch.nonzero(self.copied(train_batch)[1]).squeeze(1)
        if len(rows) > self.FIT_PAIRS:  # a seeded subset: the weight is one number
            rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(self.seed))[: self.FIT_PAIRS]]
        self.copy_weight = 0.0
        if len(rows):
            part = {name: value[rows] for name, value in train_batch.items()}
            bigram = super().token_nll(part).neg().exp().double()
            same = (part["tokens"] == self.copied(part)[0]).double()
            nll = [float(-torch.log(w * same + (1 - w) * bigram).mean()) for w in self.GRID]
            self.copy_weight = float(self.GRID[int(np.argmin(nll))])
        return self

    def token_nll(self, batch):
        bigram = super().token_nll(batch).neg().exp()
        line, has = self.copied(batch)
        same = (batch["tokens"] == line).float()
        w = self.copy_weight * has.float()[:, None]
        return -torch.log(w * same + (1 - w) * bigram)

    def onset_probs(self, batch):
        line, has = self.copied(batch)
        w = self.copy_weight * has.float()[:, None, None]
        copied = torch.as_tensor(rep.tokens_to_roll(line.numpy().astype(np.uint8))).float()
        return w * copied + (1 - w) * super().onset_probs(batch)

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        rule = self.rule.sample(batch, 1)[:, 0]
        line, has = self.copied(batch)
        tokens = torch.where(has[:, None], line, rule)
        return tokens.unsqueeze(1).expand(-1, k, -1).clone()


class RepeatMatching(RepeatPrevious):
    """The bar of the models that also hear the recalled window: the line of whichever of the
    previous and the recalled window has drums more like this window's (the previous one on
    a tie), note for note; ``root_on_kick`` at a song's start. Its distribution mixes the copy
    with the bigram as ``repeat_previous`` does, with its own fitted weight."""

    name = "repeat_matching"

    def copied(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        has_prev, has_recall = batch["has_prev"] > 0, batch["has_recall"] > 0
        drums = batch["drums"].numpy()
        recall_better = has_recall & torch.as_tensor(
            drum_agreement(drums, batch["recall_drums"].numpy()) > drum_agreement(drums, batch["prev_drums"].numpy()))
        line = torch.where(recall_better[:, None], batch["recall_tokens"].long(), batch["prev_tokens"].long())
        return line, has_prev | has_recall
