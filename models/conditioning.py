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
from dnb.schema import LABELS, SOURCES, DataInfo

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
        """The model hears some window of the song's past (the previous or the recalled one)."""
        return any(label in self.use for label in SOURCES)

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
    """One window of the song's past as an architecture sees it (``source``: a label of
    ``dnb.schema.SOURCES``, "previous" or "recall"; only built when that label is used).

    * ``present(batch) -> [B]`` bool: the window exists, after the training-time
      ``context_dropout`` (a draw per call: call once per forward and pass it on);
    * ``tokens(batch, present) -> [B, 64, dim]``: one embedding per bass token of that window at
      its own step (a learned "none" row where there is no context), so that copying step t
      of that line is a lookup, not a memory feat;
    * ``drums(batch, present) -> [B, 32, 17]``: its drum grid (zeros without one), a
      presence flag, and how it agrees with the current drum grid: per step, whether the two
      steps are the same, and per window, the Jaccard overlap of the two onset grids (as
      ``CopyHead``'s), to concatenate with the current drum grid. The agreement is spelled out
      because "the drums changed" is the cue to change the line: with the two grids alone the
      large-corpus recall run repeated its own rhythm across drum changes in 0.43 of validation
      windows, against the real bass's 0.32.
    """

    NONE = rep.VOCAB_SIZE  # embedding row of "no such window"
    DRUM_FEATURES = rep.DRUM_CLASSES + 3  # grid, presence flag, step agreement, window agreement

    def __init__(self, dim: int, context_dropout: float = 0.0, source: str = "previous"):
        super().__init__()
        self.context_dropout = float(context_dropout)
        self.source = SOURCES[source]
        self.tok = nn.Embedding(rep.VOCAB_SIZE + 1, dim)

    @classmethod
    def from_params(cls, params: dict, dim: int, source: str = "previous") -> Previous | None:
        """The module when ``source`` is among ``params["conditioning"]``, else None."""
        if source not in params.get("conditioning", []):
            return None
        return cls(dim, float(params.get("context_dropout", 0.0)), source)

    @staticmethod
    def all_from_params(params: dict, dim: int) -> nn.ModuleDict | None:
        """One module per past window the conditioning asks for (None when it asks for none);
        an architecture keeps them under one attribute, built last."""
        parts = {label: Previous.from_params(params, dim, label) for label in SOURCES}
        parts = {label: part for label, part in parts.items() if part is not None}
        return nn.ModuleDict(parts) if parts else None

    @staticmethod
    def drum_features(params: dict) -> int:
        """Width of the past windows' drum features beside the current drum grid."""
        return Previous.DRUM_FEATURES * sum(label in params.get("conditioning", []) for label in SOURCES)

    def present(self, batch: dict) -> torch.Tensor:
        has = batch[self.source.present] > 0
        if self.training and self.context_dropout > 0:
            has = has & (torch.rand(has.shape, device=has.device) >= self.context_dropout)
        return has

    def tokens(self, batch: dict, present: torch.Tensor) -> torch.Tensor:
        tokens = torch.where(present[:, None], batch[self.source.tokens].long(), self.NONE)
        return self.tok(tokens)

    def drums(self, batch: dict, present: torch.Tensor) -> torch.Tensor:
        grid = batch[self.source.drums].float() * present[:, None, None]  # [B, 32, 14]
        flag = present.float()[:, None, None].expand(-1, grid.shape[1], 1)  # [B, 32, 1]
        return torch.cat([grid, flag, *drum_agreement(batch["drums"], grid, flag)], -1)

    @staticmethod
    def inputs(past: nn.ModuleDict | None, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(past windows' drums [B, 32, 17 * S], the sum of their aligned tokens [B, 64, dim]) of
        one forward pass (one context-dropout draw per window, shared by its drums and tokens),
        or (None, None) without any past window."""
        if past is None:
            return None, None
        drums, tokens = [], None
        for part in past.values():
            present = part.present(batch)
            drums.append(part.drums(batch, present))
            aligned = part.tokens(batch, present)
            tokens = aligned if tokens is None else tokens + aligned
        return torch.cat(drums, -1), tokens


def onset_overlap(now: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """[B] Jaccard overlap of two windows' drum onset grids ([B, 32, 14] each; 0 when both are empty)."""
    now, before = now > 0, before > 0
    union = (now | before).flatten(1).sum(1).clamp(min=1)
    return (now & before).flatten(1).sum(1) / union


def drum_agreement(now: torch.Tensor, before: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, 32, 1] the drum step equals the past window's, [B, 32, 1] the windows' ``onset_overlap``
    repeated over the steps), both 0 where ``present`` ([B, 32, 1]) is 0."""
    same_step = ((now > 0) == (before > 0)).all(-1, keepdim=True).float() * present
    return same_step, onset_overlap(now, before)[:, None, None] * present


class CopyHead(nn.Module):
    """The song's past for the models that write the 64 steps independently (ffnn, cnn,
    lstm_fcnn): for each past window (previous, recalled), logits added at step t from that
    line's token at step t, scaled up by how much its drums agree with the current window's
    (Jaccard of their onset grids), so that "the drums repeat" can turn into "repeat the
    line" without an autoregressive decoder."""

    def __init__(self, sources: list[str] | tuple[str, ...] = ("previous",), context_dropout: float = 0.0):
        super().__init__()
        self.past, self.agreeing = nn.ModuleDict(), nn.ModuleDict()
        for label in sources:
            self.past[label] = Previous(rep.VOCAB_SIZE, context_dropout, label)  # its embedding is a row of logits
            self.agreeing[label] = nn.Embedding(rep.VOCAB_SIZE + 1, rep.VOCAB_SIZE)
            nn.init.zeros_(self.agreeing[label].weight)

    @classmethod
    def from_params(cls, params: dict) -> CopyHead | None:
        sources = [label for label in SOURCES if label in params.get("conditioning", [])]
        if not sources:
            return None
        return cls(sources, float(params.get("context_dropout", 0.0)))

    def forward(self, batch: dict) -> torch.Tensor:
        """``[B, 64, 38]`` logits to add to a stepwise model's own."""
        out = 0.0
        for label, part in self.past.items():
            present = part.present(batch)
            tokens = torch.where(present[:, None], batch[part.source.tokens].long(), Previous.NONE)
            agree = onset_overlap(batch["drums"].float(), batch[part.source.drums].float()) * present  # [B]
            out = out + part.tok(tokens) + agree[:, None, None] * self.agreeing[label](tokens)
        return out
