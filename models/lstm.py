"""Seq2seq LSTM: a bidirectional LSTM reads the 32 drum steps, an autoregressive LSTM
writes the 64 bass tokens.

The 2019 project's LSTM regressed an onset roll and collapsed to silence. Here the
decoder is trained with cross-entropy on tokens (teacher forcing) and, at each bass
step t, sees the encoder output of the drum step it sits on (t // 2) next to the
previous token: the alignment is given, not left to be learned. ``Seq2Seq`` takes
an optional extra vector (the cvae's latent z) fed to the initial state and to
every decoder step, and an optional previous window (``models.conditioning.Previous``):
its drum grid beside the current one in the encoder, and its bass token of step t beside
the decoder input and the output head of step t (the line to copy or to vary is one
lookup away).
"""

from __future__ import annotations

import torch
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.autoregressive import BOS, Autoregressive, State, shift_right
from models.base import Dropout
from models.conditioning import Conditioning, Previous

ALIGN = torch.arange(rep.BASS_STEPS) * rep.DRUM_STEPS // rep.BASS_STEPS  # bass step -> drum step


class Seq2Seq(nn.Module):
    """Drum encoder + token decoder; ``extra`` is a per-example vector or None; ``previous``
    the width of the past windows' aligned token embeddings (0: no past), ``past_drums`` the
    width of their drum features beside the drum grid (``Previous.drum_features``)."""

    def __init__(
        self, cond_dim: int, hidden: int, layers: int = 1, dropout: float = 0.1, extra: int = 0, emb: int = 64,
        previous: int = 0, past_drums: int = 0,
    ):
        super().__init__()
        self.hidden, self.layers, self.extra, self.previous = hidden, layers, extra, previous
        enc_in = rep.DRUM_CLASSES + cond_dim + past_drums
        self.encoder = nn.LSTM(enc_in, hidden // 2, batch_first=True, bidirectional=True)
        self.init = nn.Linear(hidden + cond_dim + extra, 2 * layers * hidden)
        self.tok = nn.Embedding(rep.VOCAB_SIZE + 1, emb)
        self.pos = nn.Embedding(rep.BASS_STEPS, emb)
        self.decoder = nn.LSTM(
            emb + hidden + extra + previous, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.drop = Dropout(dropout)
        self.head = nn.Linear(2 * hidden + previous, rep.VOCAB_SIZE)

    def encode(self, drums: torch.Tensor, cond: torch.Tensor, prev_drums: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 32, 14] drums + [B, C] cond (+ [B, 32, 17 * S] past drums) -> [B, 32, hidden]."""
        parts = [drums, cond.unsqueeze(1).expand(-1, drums.shape[1], -1)]
        x = torch.cat(parts + ([prev_drums] if self.previous else []), dim=-1)
        return self.encoder(x)[0]

    def initial(self, enc: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor | None) -> tuple:
        parts = [enc.mean(1), cond] + ([extra] if self.extra else [])
        h, c = torch.tanh(self.init(torch.cat(parts, -1))).view(-1, 2, self.layers, self.hidden).unbind(1)
        return h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()  # [layers, B, hidden]

    def _inputs(self, prev: torch.Tensor, steps: torch.Tensor, aligned: torch.Tensor, extra, ctx) -> torch.Tensor:
        parts = [self.tok(prev) + self.pos(steps), aligned]
        if self.extra:
            parts.append(extra.unsqueeze(1).expand(-1, prev.shape[1], -1))
        if self.previous:
            parts.append(ctx)
        return self.drop(torch.cat(parts, -1))

    def _head(self, out: torch.Tensor, aligned: torch.Tensor, ctx) -> torch.Tensor:
        return self.head(self.drop(torch.cat([out, aligned] + ([ctx] if self.previous else []), -1)))

    def forward(self, enc, cond, extra, prev_tokens: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: decoder inputs [B, 64] (BOS-shifted) (+ previous window's aligned
        token embeddings ``ctx`` [B, 64, previous]) -> logits [B, 64, 38]."""
        aligned = enc[:, ALIGN]
        steps = torch.arange(rep.BASS_STEPS, device=prev_tokens.device)
        x = self._inputs(prev_tokens, steps, aligned, extra, ctx)
        out = self.decoder(x, self.initial(enc, cond, extra))[0]
        return self._head(out, aligned, ctx)

    def state(self, enc, cond, extra, ctx: torch.Tensor | None = None) -> State:
        h, c = self.initial(enc, cond, extra)
        state = {"enc": enc, "h": h.transpose(0, 1), "c": c.transpose(0, 1)}  # batch-first for reorder
        if self.extra:
            state["extra"] = extra
        if self.previous:
            state["ctx"] = ctx
        return state

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        aligned = state["enc"][:, int(ALIGN[t]) : int(ALIGN[t]) + 1]
        steps = torch.full((1,), t, dtype=torch.long, device=prev.device)
        ctx = state["ctx"][:, t : t + 1] if self.previous else None
        x = self._inputs(prev.unsqueeze(1), steps, aligned, state.get("extra"), ctx)
        hc = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.decoder(x, hc)
        logits = self._head(out, aligned, ctx)[:, 0]
        return logits, {**state, "h": h.transpose(0, 1), "c": c.transpose(0, 1)}



class Lstm(Autoregressive):
    """Seq2seq LSTM with greedy / sampling / beam-search decoding."""

    name = "lstm"
    can_take_previous = True

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        cond_dim = int(params.get("cond_dim", 64))
        self.cond = Conditioning.from_params(params, info, cond_dim)
        previous = int(params.get("previous_dim", 32)) if self.cond.uses_previous else 0
        self.net = Seq2Seq(
            cond_dim, int(params.get("hidden", 256)), int(params.get("layers", 1)), float(params.get("dropout", 0.1)),
            previous=previous, past_drums=Previous.drum_features(params),
        )
        self.previous = Previous.all_from_params(params, previous)
        self.takes_previous = self.previous is not None

    def logits(self, batch: dict) -> torch.Tensor:
        cond = self.cond(batch)
        prev_drums, ctx = Previous.inputs(self.previous, batch)
        enc = self.net.encode(batch["drums"], cond, prev_drums)
        return self.net(enc, cond, None, shift_right(batch["tokens"]), ctx)

    def init_state(self, batch: dict) -> State:
        cond = self.cond(batch)
        prev_drums, ctx = Previous.inputs(self.previous, batch)
        return self.net.state(self.net.encode(batch["drums"], cond, prev_drums), cond, None, ctx)

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        return self.net.step(state, prev, t)


__all__ = ["BOS", "Lstm", "Seq2Seq"]
