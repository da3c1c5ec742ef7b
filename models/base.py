"""The one interface every model and baseline implements, and the machinery they share.

Everything downstream (training, evaluation, ``dnb generate``) talks to models only
through ``BassGenerator``; a batch is the dict of ``dnb.schema.FIELDS``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from dnb import representation as rep


class BassGenerator:
    """Interface shared by neural models and baselines.

    * ``sample``: K bass lines per drum loop -> int64 tokens ``[B, K, 64]``.
    * ``token_nll``: per-step negative log-likelihood of the true tokens
      ``[B, 64]`` in nats, or ``None`` when the model defines no distribution over
      tokens (pix2pix). ``nll_is_bound`` says whether it is an upper bound (VAE).
    * ``onset_probs``: onset probabilities ``[B, 64, 36]`` for the roll BCE, or
      ``None``.
    """

    name: str = "base"
    deterministic: bool = False  # True: all K samples are identical by design
    nll_is_bound: bool = False

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def token_nll(self, batch: dict) -> torch.Tensor | None:
        return None

    def onset_probs(self, batch: dict) -> torch.Tensor | None:
        return None


class NeuralBassModel(nn.Module, BassGenerator):
    """A trainable model. ``pipeline/train.py`` drives it through:

    * ``__init__(params: dict, info: DataInfo)`` where ``params`` is the merge of
      ``train.common`` and ``train.<name>`` from params.yaml (the trainer seeds the
      global RNG before building, so a constructor never seeds);
    * ``configure_optimizers(lr) -> list[torch.optim.Optimizer]``;
    * ``training_step(batch, optimizers, epoch) -> dict[str, float]`` (does
      backward and steps through ``optimizer_step``; the first key, ``loss``, is logged);
    * ``validation_loss(batch) -> torch.Tensor`` scalar mean token NLL per step
      (early stopping criterion; models without a token distribution return
      their own reconstruction loss and say so in their docstring).
    """

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        raise NotImplementedError

    def validation_loss(self, batch: dict) -> torch.Tensor:
        nll = self.token_nll(batch)
        if nll is None:
            raise NotImplementedError
        return nll.mean()


@contextlib.contextmanager
def inference(model: nn.Module):
    """Eval mode and no grad for the duration, restoring the training flag after:
    sampling with dropout on would silently change every output."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None) -> None:
    """zero_grad, backward, optional gradient-norm clipping over the optimizer's parameters, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], max_grad_norm)
    optimizer.step()


class StepwiseTokenModel(NeuralBassModel):
    """The shared head of every model that predicts the 64 bass steps independently given
    the drums (ffnn, cnn, lstm_fcnn): cross-entropy over the 38-token alphabet, so the
    >99%-silent onset grid that sank the 2019 MSE loss is never regressed directly.
    Subclasses implement ``logits(batch) -> [B, 64, 38]``; NLL and onset probabilities are exact."""

    max_grad_norm = 1.0

    def logits(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        (opt,) = optimizers
        self.train()
        logits = self.logits(batch)
        loss = F.cross_entropy(logits.reshape(-1, rep.VOCAB_SIZE), batch["tokens"].reshape(-1))
        optimizer_step(loss, opt, self.max_grad_norm)
        return {"loss": float(loss.detach())}

    def _eval_logits(self, batch: dict) -> torch.Tensor:
        with inference(self):
            return self.logits(batch)

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
