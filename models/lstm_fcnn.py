"""The 2019 design done right: LSTM encoder over the 32 drum steps, a five-layer
fully connected decoder, conditioning concatenated to the encoder output and mixed
in again at the third layer.

Differences from 2019, and why: the conditioning is normalised (log2 tempo, learned
embeddings instead of raw program numbers that saturated the layers), and the output
is 64 x 38 token logits trained with cross-entropy instead of MSE on the onset grid.
"""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.base import Dropout, StepwiseTokenModel
from models.conditioning import COND_DIM, Conditioning, CopyHead


class LstmFcnn(StepwiseTokenModel):
    name = "lstm_fcnn"
    can_take_previous = True  # through ``CopyHead``: logits from the previous line's token of each step

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        hidden, fc = int(params.get("hidden", 256)), int(params.get("fc", 512))
        dropout = float(params.get("dropout", 0.2))
        self.cond = Conditioning.from_params(params, info, COND_DIM)
        self.encoder = nn.LSTM(rep.DRUM_CLASSES, hidden, batch_first=True)
        self.fc12 = nn.Sequential(
            nn.Linear(hidden + COND_DIM, fc), nn.ReLU(), Dropout(dropout), nn.Linear(fc, fc), nn.ReLU()
        )
        self.fc345 = nn.Sequential(
            nn.Linear(fc + COND_DIM, fc),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(fc, fc),
            nn.ReLU(),
            nn.Linear(fc, rep.BASS_STEPS * rep.VOCAB_SIZE),
        )
        self.copy = CopyHead.from_params(params)  # built last: a model without it is initialised as before
        self.takes_previous = self.copy is not None

    def logits(self, batch: dict) -> torch.Tensor:
        cond = self.cond(batch)
        _, (h, _) = self.encoder(batch["drums"].float())
        x = self.fc12(torch.cat([h[-1], cond], dim=1))
        x = self.fc345(torch.cat([x, cond], dim=1))
        out = x.view(-1, rep.BASS_STEPS, rep.VOCAB_SIZE)
        return out if self.copy is None else out + self.copy(batch)
