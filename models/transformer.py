"""Encoder-decoder transformer, small and hand-written (nanoGPT style, pre-LayerNorm).

Encoder: a conditioning token followed by the 32 drum steps (linear embedding +
learned positions), full self-attention. Decoder: causal self-attention over the 64
bass tokens (BOS first), cross-attention to the encoder, and, as in the lstm, the
encoder output of the aligned drum step (t // 2) added to the input of bass step t.
With the song's past (``previous``, ``recall`` among the conditioning labels): each drum
step's memory row also reads the previous (and recalled) window's drum step
(``prev_drum_in``), and bass step t's input adds the embedding of their lines' tokens at
step t, so that the decoder compares the windows' drums where it decides to repeat, return
to an earlier riff or vary the line.
Decoding keeps a key/value cache, so sampling 64 steps costs 64 single-token
passes (1-2 s of one CPU core for 512 sequences).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.autoregressive import Autoregressive, State, shift_right
from models.base import Dropout, keep_factor, keep_scale
from models.conditioning import Conditioning, Previous

ALIGN = 1 + torch.arange(rep.BASS_STEPS) * rep.DRUM_STEPS // rep.BASS_STEPS  # bass step -> memory row (0 = cond)


@functools.cache
def causal_bias(queries: int, keys: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[queries, keys] additive mask: -inf above the diagonal (a query never sees a later key), in
    the scores' dtype: 0 and -inf are exact in bfloat16, and adding an fp32 mask to bf16 scores (bf16
    autocast) takes torch's mixed-dtype path, ~18x slower on the CPU."""
    return torch.full((queries, keys), float("-inf"), dtype=dtype).triu(1)


class Attention(nn.Module):
    """Multi-head attention. Training with attention-weight dropout on the CPU (``dropout_kernel``
    "fast"), the weights are computed here and dropped with ``models.base.keep_factor``: torch's
    ``scaled_dot_product_attention`` would take its unfused path with torch's slower Bernoulli.
    Otherwise (no dropout, a GPU, or "torch") torch's kernel."""

    dropout_kernel = "fast"

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, -1)
        return self.split(k), self.split(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        q = self.split(self.q(x))  # [B, heads, Tq, d/heads]
        p = self.dropout if self.training else 0.0
        if p > 0 and self.dropout_kernel == "fast" and q.device.type == "cpu":
            scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, heads, Tq, Tk]
            if causal:
                scores = scores + causal_bias(q.shape[-2], k.shape[-2], scores.dtype)
            weights = scores.softmax(-1)  # fp32 under bf16 autocast
            # the mask as 0/1 in the weights' dtype (exact): a bool factor takes a ~10x slower mixed-dtype
            # multiply, forward and backward; the 1/keep scale goes on the output
            weights = weights * keep_factor(scores.shape, p, weights.dtype)
            y = (weights @ v) * keep_scale(p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(x.shape))


class Block(nn.Module):
    """Pre-LN block: self-attention, optional cross-attention, MLP."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float, attn_dropout: float, cross: bool):
        super().__init__()
        self.ln1, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, attn_dropout)
        self.ln2 = nn.LayerNorm(d) if cross else None
        self.cross = Attention(d, heads, attn_dropout) if cross else None
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d), Dropout(dropout))
        self.drop = Dropout(dropout)

    def forward(self, x, mem_kv=None, causal: bool = False) -> torch.Tensor:
        """Whole sequence (encoder, or decoder under teacher forcing)."""
        h = self.ln1(x)
        x = x + self.drop(self.attn.attend(h, *self.attn.keys_values(h), causal=causal))
        if self.cross is not None:
            x = x + self.drop(self.cross.attend(self.ln2(x), *mem_kv))
        return x + self.mlp(self.ln3(x))

    def step(self, x, mem_kv, cache: tuple[torch.Tensor, torch.Tensor], t: int) -> torch.Tensor:
        """One decoder position: writes its key/value at row t of the preallocated
        ``cache`` [B, heads, 64, d/heads] in place and attends to rows 0..t."""
        h = self.ln1(x)
        k, v = self.attn.keys_values(h)
        cache[0][:, :, t : t + 1], cache[1][:, :, t : t + 1] = k, v
        x = x + self.attn.attend(h, cache[0][:, :, : t + 1], cache[1][:, :, : t + 1])
        x = x + self.cross.attend(self.ln2(x), *mem_kv)
        return x + self.mlp(self.ln3(x))


class Transformer(Autoregressive):
    """Encoder-decoder transformer over drum steps -> bass tokens."""

    name = "transformer"
    can_take_previous = True

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        d, heads, ff = int(params.get("d_model", 128)), int(params.get("heads", 4)), int(params.get("ff", 256))
        layers, enc_layers = int(params.get("layers", 2)), int(params.get("enc_layers", params.get("layers", 2)))
        dropout = float(params.get("dropout", 0.1))
        # attention-weight dropout: on the CPU, 0 lets scaled_dot_product_attention take its fused
        # kernel instead of materialising and masking every [B, heads, T, T] weight matrix
        attn_dropout = float(params.get("attn_dropout", dropout))
        self.heads = heads
        self.cond = Conditioning.from_params(params, info, d)
        self.drum_in = nn.Linear(rep.DRUM_CLASSES, d)
        self.enc_pos = nn.Parameter(torch.zeros(1 + rep.DRUM_STEPS, d))
        self.enc = nn.ModuleList(Block(d, heads, ff, dropout, attn_dropout, False) for _ in range(enc_layers))
        self.enc_ln = nn.LayerNorm(d)
        self.tok = nn.Embedding(rep.VOCAB_SIZE + 1, d)
        self.dec_pos = nn.Parameter(torch.zeros(rep.BASS_STEPS, d))
        self.dec = nn.ModuleList(Block(d, heads, ff, dropout, attn_dropout, True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, rep.VOCAB_SIZE)
        self.drop = Dropout(dropout)
        nn.init.normal_(self.enc_pos, std=0.02)
        nn.init.normal_(self.dec_pos, std=0.02)
        # chords aligned in time: drum step s hears the chord of half bar s // 8 (built last, and only
        # when chords are used, so a model without chords is initialised as before)
        self.chord_steps = nn.Embedding(info.n_chords, d) if self.cond.uses_chords else None
        self.previous = Previous.all_from_params(params, d)  # the song's past, also built only when used
        self.prev_drum_in = nn.Linear(Previous.drum_features(params), d) if self.previous is not None else None
        self.takes_previous = self.previous is not None

    def memory(self, batch: dict, prev_drums: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 33, d]: the conditioning token then the 32 drum steps (each plus its half bar's
        chord and the previous window's drum step)."""
        chords = self.cond.chord_labels(batch) if self.chord_steps is not None else None
        drums = self.drum_in(batch["drums"])
        if prev_drums is not None:
            drums = drums + self.prev_drum_in(prev_drums)
        if chords is not None:
            drums = drums + self.chord_steps(chords.repeat_interleave(rep.DRUM_STEPS // chords.shape[1], dim=1))
        x = torch.cat([self.cond(batch, chords).unsqueeze(1), drums], 1) + self.enc_pos
        x = self.drop(x)
        for block in self.enc:
            x = block(x)
        return self.enc_ln(x)

    def _embed(self, prev: torch.Tensor, mem: torch.Tensor, steps: slice, ctx: torch.Tensor | None) -> torch.Tensor:
        x = self.tok(prev) + self.dec_pos[steps] + mem[:, ALIGN[steps]]
        return self.drop(x if ctx is None else x + ctx[:, steps])

    def logits(self, batch: dict) -> torch.Tensor:
        prev_drums, ctx = Previous.inputs(self.previous, batch)
        mem = self.memory(batch, prev_drums)
        x = self._embed(shift_right(batch["tokens"]), mem, slice(0, rep.BASS_STEPS), ctx)
        for block in self.dec:
            x = block(x, block.cross.keys_values(mem), causal=True)
        return self.head(self.ln_f(x))

    def init_state(self, batch: dict) -> State:
        prev_drums, ctx = Previous.inputs(self.previous, batch)
        mem = self.memory(batch, prev_drums)
        size, d = mem.shape[0], mem.shape[-1]
        state = {"mem": mem} | ({"ctx": ctx} if ctx is not None else {})
        for i, block in enumerate(self.dec):
            state[f"mk{i}"], state[f"mv{i}"] = block.cross.keys_values(mem)
            for name in ("k", "v"):
                state[f"{name}{i}"] = mem.new_zeros(size, self.heads, rep.BASS_STEPS, d // self.heads)
        return state

    def step(self, state: State, prev: torch.Tensor, t: int) -> tuple[torch.Tensor, State]:
        x = self._embed(prev.unsqueeze(1), state["mem"], slice(t, t + 1), state.get("ctx"))
        for i, block in enumerate(self.dec):
            x = block.step(x, (state[f"mk{i}"], state[f"mv{i}"]), (state[f"k{i}"], state[f"v{i}"]), t)
        return self.head(self.ln_f(x))[:, 0], state
