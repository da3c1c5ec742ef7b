"""Feed-forward network: flattened drums + conditioning -> 64 independent token distributions.

Also home of ``StepwiseTokenModel``, the shared head of every model that predicts the
64 bass steps independently given the drums (ffnn, cnn, lstm_fcnn): cross-entropy over
the 38-token alphabet, so the >99%-silent onset grid that sank the 2019 MSE loss is
never regressed directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnb import representation as rep
from models import DataInfo, NeuralBassModel
from models.conditioning import Conditioning

COND_DIM = 32


class StepwiseTokenModel(NeuralBassModel):
    """Subclasses implement ``logits(batch) -> [B, 64, 38]``; steps are independent
    given the drums and conditioning, so NLL and onset probabilities are exact."""

    max_grad_norm = 1.0

    def logits(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        (opt,) = optimizers
        self.train()
        logits = self.logits(batch)
        loss = F.cross_entropy(logits.reshape(-1, rep.VOCAB_SIZE), batch["tokens"].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
        opt.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def _eval_logits(self, batch: dict) -> torch.Tensor:
        was_training = self.training
        self.eval()
        logits = self.logits(batch)
        self.train(was_training)
        return logits

    def token_nll(self, batch: dict) -> torch.Tensor:
        logp = F.log_softmax(self._eval_logits(batch), dim=-1)
        return -logp.gather(-1, batch["tokens"].long().unsqueeze(-1)).squeeze(-1)

    def onset_probs(self, batch: dict) -> torch.Tensor:
        return F.softmax(self._eval_logits(batch), dim=-1)[..., rep.ONSET_OFFSET :]

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """Each step drawn independently; ``temperature <= 0`` is the argmax."""
        logits = self._eval_logits(batch)
        size = logits.shape[0]
        if temperature <= 0:
            return logits.argmax(-1).unsqueeze(1).expand(size, k, rep.BASS_STEPS).clone()
        probs = F.softmax(logits / temperature, dim=-1).reshape(-1, rep.VOCAB_SIZE)
        draws = torch.multinomial(probs, k, replacement=True, generator=generator)
        return draws.view(size, rep.BASS_STEPS, k).permute(0, 2, 1).contiguous()


class Ffnn(StepwiseTokenModel):
    """Two hidden ReLU layers over the 448 drum cells plus a 32-d conditioning vector."""

    name = "ffnn"

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        hidden, dropout = int(params.get("hidden", 512)), float(params.get("dropout", 0.2))
        self.cond = Conditioning(params.get("conditioning", []), info, COND_DIM)
        self.net = nn.Sequential(
            nn.Linear(rep.DRUM_STEPS * rep.DRUM_CLASSES + COND_DIM, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, rep.BASS_STEPS * rep.VOCAB_SIZE),
        )

    def logits(self, batch: dict) -> torch.Tensor:
        x = torch.cat([batch["drums"].float().flatten(1), self.cond(batch)], dim=1)
        return self.net(x).view(-1, rep.BASS_STEPS, rep.VOCAB_SIZE)
