"""Shared machinery of the left-to-right token models (lstm, transformer, cvae decoder).

A model factorises p(tokens | drums, cond) = prod_t p(token_t | token_<t, drums, cond)
and exposes two views of the same distribution:

* ``logits(batch) -> [B, 64, 38]`` by teacher forcing (training, exact NLL);
* ``init_state(batch)`` + ``step(state, prev, t) -> (logits [B, 38], state)``, one
  step at a time (sampling, beam search). ``state`` is a dict of batch-first
  tensors, so that one ``index_select`` reorders it for beams or repeated samples.

The token before step 0 is ``BOS`` (index 38, one past the vocabulary), so token
embeddings have ``VOCAB_SIZE + 1`` rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnb import representation as rep
from models.base import NeuralBassModel, Temperature, inference, is_greedy, optimizer_step, tempered_logits

BOS = rep.VOCAB_SIZE  # 38
State = dict[str, torch.Tensor]


def shift_right(tokens: torch.Tensor) -> torch.Tensor:
    """Decoder inputs for teacher forcing: BOS followed by tokens[:, :-1]."""
    bos = torch.full_like(tokens[:, :1], BOS)
    return torch.cat([bos, tokens[:, :-1]], dim=1)


def reorder(state: State, index: torch.Tensor) -> State:
    return {k: v.index_select(0, index) for k, v in state.items()}


def repeat_batch(batch: dict, k: int) -> dict:
    """Each example repeated k times in a row (example-major: [b0, b0, ..., b1, ...])."""
    return {key: value.repeat_interleave(k, dim=0) for key, value in batch.items()}


def token_nll_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-step NLL [B, 64] in nats of the true tokens."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -logp.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


def onset_probs_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Onset roll probabilities [B, 64, 36] from teacher-forced logits.

    Approximation: step t's distribution is conditioned on the TRUE previous
    tokens, not marginalised over the model's own earlier choices (that marginal
    has no closed form). It is what a roll BCE on an autoregressive model can use.
    """
    return F.softmax(logits.float(), dim=-1)[..., rep.ONSET_OFFSET :]


def sample_loop(
    step, state: State, size: int, temperature: Temperature = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Ancestral sampling of ``size`` sequences of 64 tokens; temperature <= 0 is greedy, a pair
    (T_rhythm, T_pitch) is ``models.base.tempered_logits``'s split temperature.
    Tokens live on the device of ``state`` (``generator`` must be on it too)."""
    device = next(iter(state.values())).device
    prev = torch.full((size,), BOS, dtype=torch.long, device=device)
    out = torch.empty(size, rep.BASS_STEPS, dtype=torch.long, device=device)
    for t in range(rep.BASS_STEPS):
        logits, state = step(state, prev, t)
        if is_greedy(temperature):
            prev = logits.argmax(-1)
        else:
            probs = F.softmax(tempered_logits(logits, temperature), dim=-1)
            prev = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        out[:, t] = prev
    return out


def beam_loop(step, state: State, size: int, beam: int) -> torch.Tensor:
    """Beam search for the most likely sequence; ``state`` holds ``size * beam`` rows
    (example-major). No end token: every hypothesis has 64 steps. Returns [size, 64]."""
    vocab = rep.VOCAB_SIZE
    device = next(iter(state.values())).device
    scores = torch.full((size, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep only one alive
    prev = torch.full((size * beam,), BOS, dtype=torch.long, device=device)
    history = torch.empty(size, beam, 0, dtype=torch.long, device=device)
    base = torch.arange(size, device=device).unsqueeze(1) * beam
    for t in range(rep.BASS_STEPS):
        logits, state = step(state, prev, t)
        logp = F.log_softmax(logits.float(), dim=-1).view(size, beam, vocab)
        total = (scores.unsqueeze(-1) + logp).view(size, beam * vocab)
        scores, flat = total.topk(beam, dim=-1)
        parent, token = flat // vocab, flat % vocab
        history = torch.cat([history.gather(1, parent.unsqueeze(-1).expand(-1, -1, t)), token.unsqueeze(-1)], dim=-1)
        state = reorder(state, (base + parent).view(-1))
        prev = token.view(-1)
    return history[:, 0]


class Autoregressive(NeuralBassModel):
    """Base class: subclasses implement ``logits``, ``init_state`` and ``step``."""

    def logits(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, batch: dict) -> State:
        raise NotImplementedError

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        (opt,) = optimizers
        self.train()
        loss = token_nll_from_logits(self.logits(batch), batch["tokens"]).mean()
        optimizer_step(loss, opt, max_grad_norm=1.0)
        return {"loss": float(loss.detach())}

    def token_nll(self, batch: dict) -> torch.Tensor:
        with inference(self):
            return token_nll_from_logits(self.logits(batch), batch["tokens"])

    def onset_probs(self, batch: dict) -> torch.Tensor:
        with inference(self):
            return onset_probs_from_logits(self.logits(batch))

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        size = int(batch["drums"].shape[0])
        with inference(self):
            state = self.init_state(repeat_batch(batch, k))
            return sample_loop(self.step, state, size * k, temperature, generator).view(size, k, rep.BASS_STEPS)

    def greedy(self, batch: dict) -> torch.Tensor:
        return self.sample(batch, 1, temperature=0.0)[:, 0]

    def beam_search(self, batch: dict, beam_size: int = 4) -> torch.Tensor:
        size = int(batch["drums"].shape[0])
        with inference(self):
            state = self.init_state(repeat_batch(batch, beam_size))
            return beam_loop(self.step, state, size, beam_size)
