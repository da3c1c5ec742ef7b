"""The one interface every model and baseline implements, and the machinery they share.

Everything downstream (training, evaluation, ``dnb generate``) talks to models only
through ``BassGenerator``; a batch is the dict of ``dnb.schema.FIELDS``.

``optimizer_step`` is the one optimiser step of every ``training_step``, data-parallel
aware: zero_grad, backward, [average the gradients over the ranks], clip, step. On one
process it is exactly zero_grad, backward, clip, step, so single-process numerics do not
change. In a data-parallel run (``pipeline/train.py`` under ``torchrun``) each rank holds a
slice of the global batch and its loss is a mean over that slice; the trainer declares the
slice's share of the global batch with ``gradient_share``, and the gradients are
all-reduced as ``sum_r share_r * grad_r``, the gradient of the global-batch mean, BEFORE
clipping (the norm clipped is the global one) and before the step, so every rank takes the
same step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import distributed as dist
from torch import nn

from dnb import representation as rep
from dnb.schema import SOURCES, recall_rows


@dataclass(frozen=True)
class Nucleus:
    """Nucleus (top-p) sampling at a temperature: each step draws only from the likeliest tokens
    whose tempered probabilities sum to ``top_p`` (renormalised). A line that mostly copies a
    riff still drifts at any temperature, one unlikely token per window; cutting the tail lets a
    copy stay exact while every likely choice keeps its odds."""

    temperature: float | tuple[float, float]
    top_p: float


Temperature = float | tuple[float, float] | Nucleus  # one T, (T_rhythm, T_pitch) (see tempered_logits), or top-p


def with_top_p(temperature: float | tuple[float, float], top_p: float) -> Temperature:
    """``temperature`` cut at ``top_p``: a ``Nucleus`` below 1, the plain temperature at 1 (no cut)."""
    return temperature if top_p == 1 else Nucleus(temperature, top_p)


def parse_temperature(value) -> Temperature:
    """A temperature as params write it: a number, a pair ``[T_rhythm, T_pitch]``, or
    ``{temperature: T or [T_rhythm, T_pitch], top_p: p}`` (0 < p <= 1; 1 is no cut)."""
    if isinstance(value, dict):
        if set(value) != {"temperature", "top_p"}:
            raise ValueError(f"a top-p entry needs exactly the keys temperature and top_p, got {sorted(value)}")
        inner, top_p = parse_temperature(value["temperature"]), float(value["top_p"])
        if isinstance(inner, Nucleus) or is_greedy(inner) or not 0 < top_p <= 1:
            raise ValueError(f"a top-p entry needs a temperature > 0 and 0 < top_p <= 1, got {value}")
        return with_top_p(inner, top_p)
    if isinstance(value, (list, tuple)):
        rhythm, pitch = (float(x) for x in value)
        if rhythm <= 0 or pitch <= 0:
            raise ValueError(f"a split temperature needs two positive numbers, got {list(value)}")
        return (rhythm, pitch)
    return float(value)


def temperature_label(temperature: Temperature) -> str:
    """``0.8``, ``1/0.4`` (rhythm / pitch) or ``1 top-p 0.9``: the name of a temperature in reports and tables."""
    if isinstance(temperature, Nucleus):
        return f"{temperature_label(temperature.temperature)} top-p {temperature.top_p:g}"
    if isinstance(temperature, tuple):
        return "/".join(f"{t:g}" for t in temperature)
    return f"{temperature:g}"


def is_greedy(temperature: Temperature) -> bool:
    """A single temperature <= 0 means the argmax; a split or top-p one is always sampled."""
    return isinstance(temperature, float | int) and temperature <= 0


def top_p_logits(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits [..., V]`` with every token outside the nucleus at -inf: the smallest set of the
    likeliest tokens whose probabilities reach ``top_p`` (the likeliest token always stays)."""
    probs = F.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p  # the mass before a token already reaches p
    outside = torch.zeros_like(outside).scatter(-1, order, outside)
    return logits.masked_fill(outside, float("-inf"))


def tempered_logits(logits: torch.Tensor, temperature: Temperature) -> torch.Tensor:
    """Logits ``[..., 38]`` whose softmax samples at ``temperature``.

    One number T divides every logit. A pair (T_rhythm, T_pitch) tempers the two choices a
    token makes apart: WHETHER a note starts (rest / sustain / onset, at T_rhythm) and WHICH
    pitch it has (given an onset, at T_pitch). One temperature couples them, so a line cooled
    until it keeps a riff's notes also freezes its rhythm; split, a line can repeat its notes
    while its rhythm still breathes. (1, 1) equals T = 1. A ``Nucleus`` tempers first, then
    cuts the tail (``top_p_logits``)."""
    if isinstance(temperature, Nucleus):
        return top_p_logits(tempered_logits(logits, temperature.temperature), temperature.top_p)
    if not isinstance(temperature, tuple):
        return logits.float() / max(float(temperature), 1e-6)
    rhythm, pitch = temperature
    logp = F.log_softmax(logits.float(), dim=-1)
    onset = torch.logsumexp(logp[..., rep.ONSET_OFFSET :], dim=-1, keepdim=True)
    within = F.log_softmax((logp[..., rep.ONSET_OFFSET :] - onset) / pitch, dim=-1)
    return torch.cat([logp[..., : rep.ONSET_OFFSET] / rhythm, onset / rhythm + within], dim=-1)


class BassGenerator:
    """Interface shared by neural models and baselines.

    * ``sample``: K bass lines per drum loop -> int64 tokens ``[B, K, 64]``.
    * ``token_nll``: per-step negative log-likelihood of the true tokens
      ``[B, 64]`` in nats, or ``None`` when the model defines no distribution over
      tokens (pix2pix). ``nll_is_bound`` says whether it is an upper bound (VAE).
    * ``onset_probs``: onset probabilities ``[B, 64, 36]`` for the roll BCE, or
      ``None``.

    ``takes_previous``: the system reads the song's past (the fields of ``dnb.schema.SOURCES``:
    the previous window, the recalled one); ``sample_song`` then feeds it its own earlier
    output. An architecture that can take it sets ``can_take_previous`` and takes it when
    ``previous`` or ``recall`` is among its conditioning labels.
    """

    name: str = "base"
    deterministic: bool = False  # True: all K samples are identical by design
    nll_is_bound: bool = False
    can_take_previous: bool = False
    takes_previous: bool = False

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
        return [adam(self.parameters(), lr)]

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


_share: float | None = None  # this rank's share of the global batch (None: 1 / world size)


@contextlib.contextmanager
def gradient_share(share: float):
    """Inside: ``optimizer_step`` weights this rank's gradients by ``share`` (its pairs /
    the global batch's) in the all-reduce. No effect on one process."""
    global _share
    previous, _share = _share, float(share)
    try:
        yield
    finally:
        _share = previous


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce the gradients of ``params`` over the ranks as ``sum_r share_r * grad_r``
    (one flat buffer per dtype and device). No-op outside a process group of > 1 ranks.
    Whether a parameter has a gradient must not depend on the rank's data (it does not in
    ``models/``: an unused conditioning label is unused on every rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    share = 1.0 / dist.get_world_size() if _share is None else _share
    buckets: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            buckets.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(share)
        dist.all_reduce(flat)
        for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(part.view_as(g))


def adam(params, lr: float, **options) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one pass over all parameters instead of a dozen element-wise
    ops per tensor: the same update up to float rounding; measured 1.07x the transformer's
    training step on one CPU thread, 589 against 549 pairs/s)."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)  # elsewhere (meta, mps): the plain loop
    return torch.optim.Adam(params, lr=lr, fused=fused, **options)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None) -> None:
    """zero_grad, backward, average the gradients over the ranks (data-parallel runs only),
    optional gradient-norm clipping, step; averaged and clipped are the optimizer's parameters."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params)
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


# ----------------------------------------------------------------- dropout

DROPOUT_KERNELS = ("fast", "torch")
KEEP_BITS = 15  # resolution of the drop probability: 1 / 2**15


def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool mask of ``shape``, each element True with probability 1 - p (p rounded to a multiple of
    2**-15): four 15-bit draws from every 64-bit random word. torch's CPU Bernoulli draws one word
    per element; this is about 3x faster on the CPU (a quarter of the transformer's step was its
    dropout's random numbers, ``benchmarks/train_speed.py``)."""
    if p >= 1:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    n = int(np.prod(shape))
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(generator=generator)
    draws = words.view(torch.int16)[:n].view(shape) & (2**KEEP_BITS - 1)  # uniform on [0, 2**15)
    return draws >= _dropped_draws(p)


def keep_factor(shape: tuple[int, ...], p: float, dtype: torch.dtype, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """``keep_mask`` as 0/1 in ``dtype``, the factor a dropout multiplies by. Cast through its uint8
    view (the same bytes): torch's CPU cast from bool takes a slow path, ~9x slower than from uint8
    (0.53 against 0.06 ms for the transformer's [32, 4, 64, 64] attention weights)."""
    return keep_mask(shape, p, generator, device).view(torch.uint8).to(dtype)


def _dropped_draws(p: float) -> int:
    """How many of the 2**15 draw values drop an element: p rounded to the draws' resolution."""
    return round(p * 2**KEEP_BITS)


def keep_scale(p: float) -> float:
    """1 / the keep probability of ``keep_mask`` at drop probability ``p``."""
    return 1.0 / (1.0 - _dropped_draws(p) / 2**KEEP_BITS)


def dropout(x: torch.Tensor, p: float, training: bool = True, kernel: str = "fast",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout. ``kernel`` "fast": the mask of ``keep_mask`` (CPU; on a GPU torch's fused
    kernel is the fast one and is used); "torch": ``F.dropout``, the reference configuration. A
    ``generator`` (pix2pix's seeded sampling noise) always draws through ``keep_mask``."""
    if not training or p <= 0:
        return x
    if p >= 1:
        return x * 0.0
    if generator is None and (kernel == "torch" or x.device.type != "cpu"):
        return F.dropout(x, p, training=True)
    return x * (keep_factor(x.shape, p, x.dtype, generator, x.device) * keep_scale(p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` through ``dropout``; ``dropout_kernel`` is set by ``use_dropout_kernel``."""

    dropout_kernel = "fast"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.dropout_kernel)


def use_dropout_kernel(model: nn.Module, kernel: str) -> None:
    """Every module of ``model`` with a ``dropout_kernel`` attribute draws its masks with ``kernel``."""
    if kernel not in DROPOUT_KERNELS:
        raise ValueError(f"dropout_kernel must be one of {', '.join(DROPOUT_KERNELS)}, not {kernel!r}")
    for module in model.modules():
        if hasattr(module, "dropout_kernel"):
            module.dropout_kernel = kernel


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

    def sample(self, batch: dict, k: int = 1, temperature: Temperature = 1.0, generator=None) -> torch.Tensor:
        """Each step drawn independently; ``temperature <= 0`` is the argmax."""
        logits = self._eval_logits(batch)
        size = logits.shape[0]
        if is_greedy(temperature):
            return logits.argmax(-1).unsqueeze(1).expand(size, k, rep.BASS_STEPS).clone()
        probs = F.softmax(tempered_logits(logits, temperature), dim=-1).reshape(-1, rep.VOCAB_SIZE)
        draws = torch.multinomial(probs, k, replacement=True, generator=generator)
        return draws.view(size, rep.BASS_STEPS, k).permute(0, 2, 1).contiguous()


def chain_depths(previous_row) -> np.ndarray:
    """``[W]`` place of each window in its chain (0: it starts a song or a 4/4 stretch) from
    ``previous_row`` (``dnb.schema.previous_rows``); windows of equal depth are written together."""
    previous_row = np.asarray(previous_row, dtype=np.int64)
    depth = np.zeros(len(previous_row), dtype=np.int64)
    for row, parent in enumerate(previous_row):  # chains point backwards: one pass in row order
        if parent >= row:
            raise ValueError("previous_row must point to an earlier row (windows in song order)")
        depth[row] = depth[parent] + 1 if parent >= 0 else 0
    return depth


def sample_song(
    model: BassGenerator, batch: dict, previous_row, k: int = 1, temperature: Temperature = 1.0, generator=None,
    context: bool = True,
) -> torch.Tensor:
    """Free running: K lines ``[W, K, 64]`` for the W windows of ``batch``, each window
    conditioned on the lines the model itself wrote for the windows before it, as a song is
    written. ``previous_row [W]`` (``dnb.schema.previous_rows``): the row whose output is a
    window's previous window, -1 where a window starts a song or a stretch; the recalled
    window (``dnb.schema.recall_rows``) follows from it and the drums. Several songs may share
    one batch (rows of equal depth in their chains are sampled together). The real past
    windows of ``batch`` are never read. A system that does not take the song's past, or
    ``context=False``, samples every window independently (no context at all)."""
    previous_row = torch.as_tensor(previous_row, dtype=torch.long).cpu()
    size = int(batch["drums"].shape[0])
    if not (context and model.takes_previous):
        cleared = {**batch, **{s.present: torch.zeros_like(batch[s.present]) for s in SOURCES.values()}}
        return model.sample(cleared, k=k, temperature=temperature, generator=generator)
    drums = batch["drums"]
    rows = {"previous": previous_row,
            "recall": torch.as_tensor(recall_rows(previous_row.numpy(), drums.cpu().numpy() > 0))}
    depth = torch.as_tensor(chain_depths(previous_row.numpy()))
    device = drums.device
    out = torch.zeros(size, k, rep.BASS_STEPS, dtype=torch.long, device=device)
    for level in range(int(depth.max()) + 1 if size else 0):
        now = torch.nonzero(depth == level).squeeze(1)
        part = {name: value[now.to(value.device)].repeat_interleave(k, dim=0) for name, value in batch.items()}
        for label, source in SOURCES.items():  # every past window is at a lower depth: written already
            parents = rows[label][now]
            has = (parents >= 0).repeat_interleave(k).to(device)
            safe = parents.clamp(min=0).to(device)
            part[source.tokens] = torch.where(has[:, None], out[safe].reshape(-1, rep.BASS_STEPS), 0).to(
                batch[source.tokens].dtype)
            part[source.drums] = torch.where(has[:, None, None], drums[safe].repeat_interleave(k, dim=0), 0).to(
                batch[source.drums].dtype)
            part[source.present] = has.to(batch[source.present].dtype)
        lines = model.sample(part, k=1, temperature=temperature, generator=generator)[:, 0]  # [R * k, 64]
        out[now.to(device)] = lines.view(len(now), k, rep.BASS_STEPS).to(out.dtype)
    return out
