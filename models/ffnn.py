"""Feed-forward network: flattened drums + conditioning -> 64 independent token distributions
(the head and loss are ``models.base.StepwiseTokenModel``)."""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.base import Dropout, StepwiseTokenModel
from models.conditioning import COND_DIM, Conditioning, CopyHead


class Ffnn(StepwiseTokenModel):
    """Two hidden ReLU layers over the 448 drum cells plus a 32-d conditioning vector."""

    name = "ffnn"
    can_take_previous = True  # through ``CopyHead``: logits from the previous line's token of each step

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        hidden, dropout = int(params.get("hidden", 512)), float(params.get("dropout", 0.2))
        self.cond = Conditioning.from_params(params, info, COND_DIM)
        self.net = nn.Sequential(
            nn.Linear(rep.DRUM_STEPS * rep.DRUM_CLASSES + COND_DIM, hidden),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(hidden, rep.BASS_STEPS * rep.VOCAB_SIZE),
        )
        self.copy = CopyHead.from_params(params)  # built last: a model without it is initialised as before
        self.takes_previous = self.copy is not None

    def logits(self, batch: dict) -> torch.Tensor:
        x = torch.cat([batch["drums"].float().flatten(1), self.cond(batch)], dim=1)
        out = self.net(x).view(-1, rep.BASS_STEPS, rep.VOCAB_SIZE)
        return out if self.copy is None else out + self.copy(batch)
