"""Convolutional encoder-decoder: drum grid (time x drum classes) -> 64 x 38 token logits.

The 14 drum classes are the input channels of 1-D convolutions over time (a drum
grid has no meaningful "vertical" neighbourhood between classes, so a 2-D kernel
over the class axis would only add an arbitrary ordering). Two stride-2 convolutions
go from 32 sixteenths to 8 beats-ish positions where the conditioning is added;
transposed convolutions go back up to 64 thirty-seconds, with skip connections at
16 and 32 steps so that exact onset timing survives the bottleneck. Same head and
loss as ``ffnn`` (per-step cross-entropy).
"""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.base import Dropout, StepwiseTokenModel
from models.conditioning import COND_DIM, Conditioning, CopyHead


class Cnn(StepwiseTokenModel):
    name = "cnn"
    can_take_previous = True  # through ``CopyHead``: logits from the previous line's token of each step

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        c, dropout = int(params.get("channels", 64)), float(params.get("dropout", 0.2))
        self.cond = Conditioning.from_params(params, info, COND_DIM)
        self.enc1 = nn.Sequential(nn.Conv1d(rep.DRUM_CLASSES, c, 5, padding=2), nn.ReLU())  # 32 steps
        self.enc2 = nn.Sequential(nn.Conv1d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU())  # 16
        self.enc3 = nn.Sequential(nn.Conv1d(2 * c, 2 * c, 4, stride=2, padding=1), nn.ReLU())  # 8
        self.cond_proj = nn.Linear(COND_DIM, 2 * c)
        self.mid = nn.Sequential(nn.Conv1d(2 * c, 2 * c, 3, padding=1), nn.ReLU(), Dropout(dropout))
        self.dec3 = nn.Sequential(nn.ConvTranspose1d(2 * c, 2 * c, 4, stride=2, padding=1), nn.ReLU())  # 16
        self.dec2 = nn.Sequential(nn.ConvTranspose1d(4 * c, c, 4, stride=2, padding=1), nn.ReLU())  # 32
        self.dec1 = nn.Sequential(
            nn.ConvTranspose1d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(), Dropout(dropout)
        )  # 64
        self.head = nn.Conv1d(c, rep.VOCAB_SIZE, 1)
        self.copy = CopyHead.from_params(params)  # built last: a model without it is initialised as before
        self.takes_previous = self.copy is not None

    def logits(self, batch: dict) -> torch.Tensor:
        x = batch["drums"].float().transpose(1, 2)  # [B, 14, 32]
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        z = self.enc3(e2) + self.cond_proj(self.cond(batch)).unsqueeze(-1)
        z = self.mid(z)
        d = self.dec3(z)
        d = self.dec2(torch.cat([d, e2], dim=1))
        d = self.dec1(torch.cat([d, e1], dim=1))
        out = self.head(d).transpose(1, 2)  # [B, 64, 38]
        return out if self.copy is None else out + self.copy(batch)
