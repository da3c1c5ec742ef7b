"""Conditioning (tempo, bass program, key, drum style, chords) as one vector, switchable per run.

The 2019 project fed raw tempo and program numbers into its layers, which
saturated them. Here tempo arrives as log2(bpm/120) (about -1..1) and the
categorical labels are learned embeddings. A label left out of ``use`` contributes
zeros, so the same architecture runs the ablation none / tempo+program / +key / +style / +chords.

Chords: the 4 half-bar labels enter as the sum of one embedding per (half bar, chord), i.e. a
linear map of the concatenated one-hot chords, so every architecture sees the whole
progression of its window. ``chord_dropout`` (training only) replaces a pair's chords by
all-N with that probability, so one model also serves users who give no chords. The chord
embedding exists only when ``chords`` is used: a model without chords is built, and
initialised, exactly as before chords existed.

``previous`` (the previous window of the song) is not a vector: ``Previous`` hands an
architecture that takes it the previous bass line aligned step by step and the previous
drum grid beside the current one, so that "the drums repeat" and "so repeat the line" are
one step apart. ``context_dropout`` (training only) hides it with that probability, so one
model also starts a song.
"""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.chords import HALF_BARS, N
from dnb.schema import LABELS, DataInfo

COND_DIM = 32  # conditioning width of the models that do not set their own


class Conditioning(nn.Module):
    """``forward(batch) -> [B, dim]``; ``dim`` is fixed whatever ``use`` is."""

    def __init__(self, use: list[str] | tuple[str, ...], info: DataInfo, dim: int = 32, chord_dropout: float = 0.0):
        super().__init__()
        unknown = set(use) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown conditioning {sorted(unknown)}; choose from {LABELS}")
        self.use = tuple(use)
        self.dim = dim
        self.tempo = nn.Linear(1, dim)
        self.program = nn.Embedding(info.n_programs, dim)
        self.key = nn.Embedding(info.n_keys, dim)
        self.style = nn.Embedding(max(1, info.n_styles), dim)
        self.n_chords, self.chord_dropout = info.n_chords, float(chord_dropout)
        if "chords" in self.use:  # (half bar, chord) -> vector, summed over the 4 half bars
            self.chords = nn.Embedding(HALF_BARS * info.n_chords, dim)

    @classmethod
    def from_params(cls, params: dict, info: DataInfo, dim: int) -> Conditioning:
        """The labels of ``params["conditioning"]`` with ``params["chord_dropout"]``."""
        return cls(params.get("conditioning", []), info, dim, float(params.get("chord_dropout", 0.0)))

    @property
    def uses_chords(self) -> bool:
        return "chords" in self.use

    @property
    def uses_previous(self) -> bool:
        return "previous" in self.use

    def chord_labels(self, batch: dict) -> torch.Tensor:
        """``[B, 4]`` chord labels, with the training-time chord dropout applied (a draw per call)."""
        chords = batch["chords"].long()
        if self.training and self.chord_dropout > 0:
            dropped = torch.rand(chords.shape[0], 1, device=chords.device) < self.chord_dropout
            chords = chords.masked_fill(dropped, N)
        return chords

    def forward(self, batch: dict, chords: torch.Tensor | None = None) -> torch.Tensor:
        """``chords``: labels already drawn by ``chord_labels`` (a model that also uses them
        elsewhere passes them, so both uses see the same dropout)."""
        size = batch["drums"].shape[0]
        out = torch.zeros(size, self.dim, device=batch["drums"].device)
        if "tempo" in self.use:
            out = out + self.tempo(batch["tempo"].float().unsqueeze(-1))
        if "program" in self.use:
            out = out + self.program(batch["program"])
        if "key" in self.use:
            out = out + self.key(batch["key"])
        if "style" in self.use:
            out = out + self.style(batch["style"].clamp(max=self.style.num_embeddings - 1))
        if "chords" in self.use:
            chords = self.chord_labels(batch) if chords is None else chords
            offset = torch.arange(HALF_BARS, device=chords.device) * self.n_chords
            out = out + self.chords(chords + offset).sum(1)
        return out


class Previous(nn.Module):
    """The previous window as an architecture sees it (only built when ``previous`` is used).

    * ``present(batch) -> [B]`` bool: the window has a previous one, after the training-time
      ``context_dropout`` (a draw per call: call once per forward and pass it on);
    * ``tokens(batch, present) -> [B, 64, dim]``: one embedding per previous bass token at
      its own step (a learned "none" row where there is no context), so that copying step t
      of the previous line is a lookup, not a memory feat;
    * ``drums(batch, present) -> [B, 32, 15]``: the previous drum grid (zeros without one)
      and a presence flag, to concatenate with the current drum grid.
    """

    NONE = rep.VOCAB_SIZE  # embedding row of "no previous window"
    DRUM_FEATURES = rep.DRUM_CLASSES + 1

    def __init__(self, dim: int, context_dropout: float = 0.0):
        super().__init__()
        self.context_dropout = float(context_dropout)
        self.tok = nn.Embedding(rep.VOCAB_SIZE + 1, dim)

    @classmethod
    def from_params(cls, params: dict, dim: int) -> Previous | None:
        """The module when ``previous`` is among ``params["conditioning"]``, else None."""
        if "previous" not in params.get("conditioning", []):
            return None
        return cls(dim, float(params.get("context_dropout", 0.0)))

    def present(self, batch: dict) -> torch.Tensor:
        has = batch["has_prev"] > 0
        if self.training and self.context_dropout > 0:
            has = has & (torch.rand(has.shape, device=has.device) >= self.context_dropout)
        return has

    def tokens(self, batch: dict, present: torch.Tensor) -> torch.Tensor:
        tokens = torch.where(present[:, None], batch["prev_tokens"].long(), self.NONE)
        return self.tok(tokens)

    def drums(self, batch: dict, present: torch.Tensor) -> torch.Tensor:
        grid = batch["prev_drums"].float() * present[:, None, None]
        flag = present.float()[:, None, None].expand(-1, grid.shape[1], 1)
        return torch.cat([grid, flag], -1)

    @staticmethod
    def inputs(previous: Previous | None, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(previous drums [B, 32, 15], aligned previous tokens [B, 64, dim]) of one forward pass
        (one context-dropout draw, shared by both), or (None, None) without a previous window."""
        if previous is None:
            return None, None
        present = previous.present(batch)
        return previous.drums(batch, present), previous.tokens(batch, present)


class CopyHead(nn.Module):
    """The previous window for the models that write the 64 steps independently (ffnn, cnn,
    lstm_fcnn): logits added at step t from the previous line's token at step t, scaled up by
    how much the two windows' drums agree (Jaccard of their onset grids), so that "the drums
    repeat" can turn into "repeat the line" without an autoregressive decoder."""

    def __init__(self, context_dropout: float = 0.0):
        super().__init__()
        self.previous = Previous(rep.VOCAB_SIZE, context_dropout)  # its token embedding is a row of logits
        self.agreeing = nn.Embedding(rep.VOCAB_SIZE + 1, rep.VOCAB_SIZE)
        nn.init.zeros_(self.agreeing.weight)

    @classmethod
    def from_params(cls, params: dict) -> CopyHead | None:
        if "previous" not in params.get("conditioning", []):
            return None
        return cls(float(params.get("context_dropout", 0.0)))

    def forward(self, batch: dict) -> torch.Tensor:
        """``[B, 64, 38]`` logits to add to a stepwise model's own."""
        present = self.previous.present(batch)
        tokens = torch.where(present[:, None], batch["prev_tokens"].long(), Previous.NONE)
        now, before = batch["drums"].float() > 0, batch["prev_drums"].float() > 0
        union = (now | before).flatten(1).sum(1).clamp(min=1)
        agree = ((now & before).flatten(1).sum(1) / union) * present  # [B]
        return self.previous.tok(tokens) + agree[:, None, None] * self.agreeing(tokens)
