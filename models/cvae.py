"""Conditional VAE: a latent z picks one of the many bass lines that fit a drum loop.

* posterior q(z | drums, bass, cond): a bidirectional LSTM over the 64 bass tokens
  (each step also sees its aligned drum encoding) -> mu, logvar. The log-variance
  is a plain linear output: the 2019 project squashed it through a sigmoid, which
  bounds the variance to [1, e] and made the KL unusable.
* prior p(z | drums, cond): learned (Sohn et al., 2015) rather than N(0, I). The
  decoder already sees the drums, so z should only carry what the drums leave
  open, and how much they leave open depends on the loop (a bare kick pattern
  admits more lines than a busy funk groove); a learned prior lets the KL price
  exactly that, and samples are drawn where the posteriors of similar loops live.
* decoder p(bass | z, drums, cond): the lstm's seq2seq decoder with z fed to its
  initial state and to every step. It is autoregressive, so that a sampled line is
  coherent, but deliberately weakened by word dropout (Bowman et al., 2016): in
  training a fraction of the previous-token inputs are replaced by BOS, so that z
  has to carry the line's identity.

Posterior collapse guards: linear KL annealing over ``kl_anneal_epochs`` and free
bits (``free_bits`` nats per latent dimension, averaged over the batch, below
which the KL is not penalised). ``token_nll`` is the negative ELBO per step, or
with ``iw_samples`` > 1 the tighter importance-weighted bound (Burda et al.),
both upper bounds on the true NLL (``nll_is_bound``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.autoregressive import (
    BOS,
    State,
    beam_loop,
    onset_probs_from_logits,
    repeat_batch,
    sample_loop,
    shift_right,
    token_nll_from_logits,
)
from models.base import NeuralBassModel, inference, optimizer_step
from models.conditioning import Conditioning, Previous
from models.lstm import ALIGN, Seq2Seq


def gaussian_kl(mu_q, lv_q, mu_p, lv_p) -> torch.Tensor:
    """KL(N(mu_q, e^lv_q) || N(mu_p, e^lv_p)) per dimension."""
    return 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1.0)


def gaussian_logpdf(z, mu, lv) -> torch.Tensor:
    """log N(z; mu, e^lv) summed over the last dimension."""
    return (-0.5 * (math.log(2 * math.pi) + lv + (z - mu) ** 2 / lv.exp())).sum(-1)


class Cvae(NeuralBassModel):
    """Conditional VAE with a learned prior and a word-dropout LSTM decoder."""

    name = "cvae"
    nll_is_bound = True
    can_take_previous = True  # the decoder's (models.lstm.Seq2Seq); the posterior sees it through the encoder

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        self.seed = int(params.get("seed", 0))  # of the generator of token_nll's noise, not the global RNG
        hidden, cond_dim = int(params.get("hidden", 256)), int(params.get("cond_dim", 64))
        self.latent = int(params.get("latent", 16))
        self.kl_anneal_epochs = int(params.get("kl_anneal_epochs", 5))
        self.free_bits = float(params.get("free_bits", 0.1))
        self.word_dropout = float(params.get("word_dropout", 0.3))
        self.iw_samples = int(params.get("iw_samples", 1))
        self.cond = Conditioning.from_params(params, info, cond_dim)
        previous = int(params.get("previous_dim", 32)) if self.cond.uses_previous else 0
        self.net = Seq2Seq(
            cond_dim, hidden, int(params.get("layers", 1)), float(params.get("dropout", 0.1)), extra=self.latent,
            previous=previous, past_drums=Previous.drum_features(params),
        )
        self.post_tok = nn.Embedding(rep.VOCAB_SIZE, 64)
        self.post_rnn = nn.LSTM(64 + hidden + cond_dim, hidden // 2, batch_first=True, bidirectional=True)
        self.post_out = nn.Linear(2 * hidden, 2 * self.latent)
        self.prior_net = nn.Sequential(
            nn.Linear(2 * hidden + cond_dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * self.latent)
        )
        self.previous = Previous.all_from_params(params, previous)  # built last: a model without it is as before
        self.takes_previous = self.previous is not None

    # ------------------------------------------------------------------ pieces
    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(drum encoding, conditioning, the previous window's aligned tokens or None): one
        context-dropout draw shared by the encoder and the decoder."""
        cond = self.cond(batch)
        prev_drums, ctx = Previous.inputs(self.previous, batch)
        return self.net.encode(batch["drums"], cond, prev_drums), cond, ctx

    def posterior(self, tokens, enc, cond) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.post_tok(tokens), enc[:, ALIGN], cond.unsqueeze(1).expand(-1, tokens.shape[1], -1)], -1)
        out = self.post_rnn(x)[0]
        return self.post_out(torch.cat([out.mean(1), out.max(1).values], -1)).chunk(2, -1)

    def prior(self, enc, cond) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prior_net(torch.cat([enc.mean(1), enc.max(1).values, cond], -1)).chunk(2, -1)

    def kl_weight(self, epoch: int) -> float:
        """Linear warm-up: 1/(n+1), 2/(n+1), ... reaching 1 after ``kl_anneal_epochs``
        epochs (never exactly 0, whether the trainer counts epochs from 0 or 1)."""
        if self.kl_anneal_epochs <= 0:
            return 1.0
        return min(1.0, (epoch + 1) / (self.kl_anneal_epochs + 1))

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        (opt,) = optimizers
        self.train()
        tokens = batch["tokens"]
        enc, cond, ctx = self.encode(batch)
        mu_q, lv_q = self.posterior(tokens, enc, cond)
        mu_p, lv_p = self.prior(enc, cond)
        z = mu_q + (0.5 * lv_q).exp() * torch.randn_like(mu_q)
        prev = shift_right(tokens)
        if self.word_dropout > 0:
            prev = prev.masked_fill(torch.rand(prev.shape, device=prev.device) < self.word_dropout, BOS)
        recon = token_nll_from_logits(self.net(enc, cond, z, prev, ctx), tokens).sum(1).mean()
        kl_dim = gaussian_kl(mu_q, lv_q, mu_p, lv_p)
        kl = kl_dim.sum(1).mean()
        beta = self.kl_weight(epoch)
        penalty = kl_dim.mean(0).clamp(min=self.free_bits).sum()
        loss = (recon + beta * penalty) / rep.BASS_STEPS
        optimizer_step(loss, opt, max_grad_norm=1.0)
        steps = rep.BASS_STEPS
        recon, kl = float(recon.detach()), float(kl.detach())
        return {"loss": (recon + kl) / steps, "recon": recon / steps, "kl": kl, "beta": beta}

    # ------------------------------------------------------------------ likelihood
    def token_nll(self, batch: dict) -> torch.Tensor:
        """Negative ELBO (or IWAE bound) per step [B, 64]: the mean over samples of the
        per-step reconstruction NLL plus the rest of the bound spread evenly over
        the 64 steps, so that a row sums to the sequence's bound. The noise comes
        from a generator seeded with ``seed``: same model, same numbers."""
        gen = torch.Generator().manual_seed(self.seed)
        tokens = batch["tokens"]
        with inference(self):
            enc, cond, ctx = self.encode(batch)
            mu_q, lv_q = self.posterior(tokens, enc, cond)
            mu_p, lv_p = self.prior(enc, cond)
            prev = shift_right(tokens)
            samples = max(1, self.iw_samples)
            recon_steps, log_w = [], []
            for _ in range(samples):
                z = mu_q + (0.5 * lv_q).exp() * torch.randn(mu_q.shape, generator=gen).to(mu_q.device)
                nll = token_nll_from_logits(self.net(enc, cond, z, prev, ctx), tokens)
                recon_steps.append(nll)
                log_w.append(-nll.sum(1) + gaussian_logpdf(z, mu_p, lv_p) - gaussian_logpdf(z, mu_q, lv_q))
            recon = torch.stack(recon_steps).mean(0)
            if samples == 1:
                bound = recon.sum(1) + gaussian_kl(mu_q, lv_q, mu_p, lv_p).sum(1)
            else:
                bound = -(torch.logsumexp(torch.stack(log_w), 0) - math.log(samples))
            return recon + ((bound - recon.sum(1)) / rep.BASS_STEPS).unsqueeze(1)

    def validation_loss(self, batch: dict) -> torch.Tensor:
        return self.token_nll(batch).mean()

    def kl(self, batch: dict) -> torch.Tensor:
        """KL(q(z | x) || p(z | drums)) per example, nats [B]."""
        with inference(self):
            enc, cond, ctx = self.encode(batch)
            return gaussian_kl(*self.posterior(batch["tokens"], enc, cond), *self.prior(enc, cond)).sum(1)

    # ------------------------------------------------------------------ generation
    def init_state(self, batch: dict, generator: torch.Generator | None = None, mean: bool = False) -> State:
        """Decoder state with z drawn from the prior (or its mean)."""
        enc, cond, ctx = self.encode(batch)
        mu_p, lv_p = self.prior(enc, cond)
        if mean:
            return self.net.state(enc, cond, mu_p, ctx)
        z = mu_p + (0.5 * lv_p).exp() * torch.randn(mu_p.shape, generator=generator, device=mu_p.device)
        return self.net.state(enc, cond, z, ctx)

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """K lines per drum loop, each from its own z ~ p(z | drums); temperature
        scales the token distributions only (0: greedy given z)."""
        size = int(batch["drums"].shape[0])
        with inference(self):
            state = self.init_state(repeat_batch(batch, k), generator)
            return sample_loop(self.net.step, state, size * k, temperature, generator).view(size, k, rep.BASS_STEPS)

    def beam_search(self, batch: dict, beam_size: int = 4) -> torch.Tensor:
        """Most likely line given the prior mean z."""
        size = int(batch["drums"].shape[0])
        with inference(self):
            state = self.init_state(repeat_batch(batch, beam_size), mean=True)
            return beam_loop(self.net.step, state, size, beam_size)

    def onset_probs(self, batch: dict) -> torch.Tensor:
        """Teacher-forced onset probabilities averaged over z drawn from the PRIOR
        (max(4, iw_samples) draws, fixed seed): the true line's z is not used."""
        gen = torch.Generator().manual_seed(self.seed)
        with inference(self):
            enc, cond, ctx = self.encode(batch)
            mu_p, lv_p = self.prior(enc, cond)
            prev = shift_right(batch["tokens"])
            probs = []
            for _ in range(max(4, self.iw_samples)):
                z = mu_p + (0.5 * lv_p).exp() * torch.randn(mu_p.shape, generator=gen).to(mu_p.device)
                probs.append(onset_probs_from_logits(self.net(enc, cond, z, prev, ctx)))
            return torch.stack(probs).mean(0)
