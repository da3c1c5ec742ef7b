"""Seq2seq LSTM: a bidirectional LSTM reads the 32 drum steps, an autoregressive LSTM
writes the 64 bass tokens.

The 2019 project's LSTM regressed an onset roll and collapsed to silence. Here the
decoder is trained with cross-entropy on tokens (teacher forcing) and, at each bass
step t, sees the encoder output of the drum step it sits on (t // 2) next to the
previous token: the alignment is given, not left to be learned. ``Seq2Seq`` takes
an optional extra vector (the cvae's latent z) fed to the initial state and to
every decoder step.
"""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.autoregressive import BOS, Autoregressive, State, shift_right
from models.conditioning import Conditioning

ALIGN = torch.arange(rep.BASS_STEPS) * rep.DRUM_STEPS // rep.BASS_STEPS  # bass step -> drum step


class Seq2Seq(nn.Module):
    """Drum encoder + token decoder; ``extra`` is a per-example vector or None."""

    def __init__(
        self, cond_dim: int, hidden: int, layers: int = 1, dropout: float = 0.1, extra: int = 0, emb: int = 64
    ):
        super().__init__()
        self.hidden, self.layers, self.extra = hidden, layers, extra
        self.encoder = nn.LSTM(rep.DRUM_CLASSES + cond_dim, hidden // 2, batch_first=True, bidirectional=True)
        self.init = nn.Linear(hidden + cond_dim + extra, 2 * layers * hidden)
        self.tok = nn.Embedding(rep.VOCAB_SIZE + 1, emb)
        self.pos = nn.Embedding(rep.BASS_STEPS, emb)
        self.decoder = nn.LSTM(
            emb + hidden + extra, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, rep.VOCAB_SIZE)

    def encode(self, drums: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """[B, 32, 14] drums + [B, C] cond -> [B, 32, hidden]."""
        x = torch.cat([drums, cond.unsqueeze(1).expand(-1, drums.shape[1], -1)], dim=-1)
        return self.encoder(x)[0]

    def initial(self, enc: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor | None) -> tuple:
        parts = [enc.mean(1), cond] + ([extra] if self.extra else [])
        h, c = torch.tanh(self.init(torch.cat(parts, -1))).view(-1, 2, self.layers, self.hidden).unbind(1)
        return h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()  # [layers, B, hidden]

    def _inputs(self, prev: torch.Tensor, steps: torch.Tensor, aligned: torch.Tensor, extra) -> torch.Tensor:
        parts = [self.tok(prev) + self.pos(steps), aligned]
        if self.extra:
            parts.append(extra.unsqueeze(1).expand(-1, prev.shape[1], -1))
        return self.drop(torch.cat(parts, -1))

    def forward(self, enc, cond, extra, prev_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: decoder inputs [B, 64] (BOS-shifted) -> logits [B, 64, 38]."""
        aligned = enc[:, ALIGN]
        x = self._inputs(prev_tokens, torch.arange(rep.BASS_STEPS, device=prev_tokens.device), aligned, extra)
        out = self.decoder(x, self.initial(enc, cond, extra))[0]
        return self.head(self.drop(torch.cat([out, aligned], -1)))

    def state(self, enc, cond, extra) -> State:
        h, c = self.initial(enc, cond, extra)
        state = {"enc": enc, "h": h.transpose(0, 1), "c": c.transpose(0, 1)}  # batch-first for reorder
        if self.extra:
            state["extra"] = extra
        return state

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        aligned = state["enc"][:, int(ALIGN[t]) : int(ALIGN[t]) + 1]
        steps = torch.full((1,), t, dtype=torch.long, device=prev.device)
        x = self._inputs(prev.unsqueeze(1), steps, aligned, state.get("extra"))
        hc = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.decoder(x, hc)
        logits = self.head(self.drop(torch.cat([out, aligned], -1)))[:, 0]
        return logits, {**state, "h": h.transpose(0, 1), "c": c.transpose(0, 1)}


class Lstm(Autoregressive):
    """Seq2seq LSTM with greedy / sampling / beam-search decoding."""

    name = "lstm"

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        cond_dim = int(params.get("cond_dim", 64))
        self.cond = Conditioning.from_params(params, info, cond_dim)
        self.net = Seq2Seq(
            cond_dim, int(params.get("hidden", 256)), int(params.get("layers", 1)), float(params.get("dropout", 0.1))
        )

    def logits(self, batch: dict) -> torch.Tensor:
        cond = self.cond(batch)
        return self.net(self.net.encode(batch["drums"], cond), cond, None, shift_right(batch["tokens"]))

    def init_state(self, batch: dict) -> State:
        cond = self.cond(batch)
        return self.net.state(self.net.encode(batch["drums"], cond), cond, None)

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        return self.net.step(state, prev, t)


__all__ = ["BOS", "Lstm", "Seq2Seq"]
