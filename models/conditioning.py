"""Conditioning (tempo, bass program, key, drum style) as one vector, switchable per run.

The 2019 project fed raw tempo and program numbers into its layers, which
saturated them. Here tempo arrives as log2(bpm/120) (about -1..1) and the
categorical labels are learned embeddings. A label left out of ``use`` contributes
zeros, so the same architecture runs the ablation none / tempo+program / +key / +style.
"""

from __future__ import annotations

import torch
from torch import nn

from dnb.schema import LABELS, DataInfo

COND_DIM = 32  # conditioning width of the models that do not set their own


class Conditioning(nn.Module):
    """``forward(batch) -> [B, dim]``; ``dim`` is fixed whatever ``use`` is."""

    def __init__(self, use: list[str] | tuple[str, ...], info: DataInfo, dim: int = 32):
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

    def forward(self, batch: dict) -> torch.Tensor:
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
        return out
