"""pix2pix (Isola et al. 2017): a U-Net turns the drum image into a bass onset image.

Drum image: the [32, 14] grid placed on the bass image grid [64, 36] (padded to 40
pitch columns so that stride-2 levels divide evenly): drum class c is channel c, its
onsets on the even 32nd steps, broadcast along the pitch axis. Because that canvas
is constant along pitch, the first layer of each network is computed separably and
exactly as cheap as it should be: a 1-D convolution over time of the drums, broadcast
over the columns, plus a learned per-column term (the generator must tell pitches
apart) or a convolution of the bass image (the discriminator). The conditioning
vector is added at the U-Net bottleneck.

Losses (generator): GAN (PatchGAN discriminator that sees the drums and a bass
image) + ``l1_weight`` x L1 as in the paper + ``bce_weight`` x BCE, both L1 and BCE
with onset cells weighted by ``pos_weight``. A plain L1 is minimised by an all-zero
image on a roll that is >99% silent (the 2019 failure): L1 picks the median, so a cell
only turns on when its onset probability beats 1 / (1 + pos_weight). BCE gets the
same weight as L1 (100): with BCE x 1 the L1 term first pushes every cell to 0 and
the generator learns nothing for several epochs. Instance norm instead of batch
norm: the paper's batch size 1 (batch statistics at test time too) in a batched form.

The output is an onset-probability roll: ``onset_probs`` returns it (dropout off,
pos-weighting undone so that the BCE metric sees calibrated probabilities),
``token_nll`` is None (no distribution over tokens), ``sample`` keeps the generator's
dropout on as the noise source (seeded through ``generator``), thresholds the roll
and converts it with ``representation.roll_to_tokens``; ``temperature`` is ignored.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnb import representation as rep
from dnb.schema import DataInfo
from models.base import NeuralBassModel, adam, dropout, inference, optimizer_step
from models.conditioning import COND_DIM, Conditioning

WIDTH = 40  # 36 pitches padded to a multiple of 8


class NoiseDropout(nn.Module):
    """Dropout that can stay on in eval mode (``active``) and draw its mask from a
    ``torch.Generator``, so pix2pix samples are random yet repeatable."""

    dropout_kernel = "fast"

    def __init__(self, p: float):
        super().__init__()
        self.p, self.active, self.generator = p, False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training or self.active, self.dropout_kernel, self.generator)


def drum_time(drums: torch.Tensor) -> torch.Tensor:
    """[B, 32, C] -> [B, C, 64]: the drum canvas along time (onsets on the even 32nd steps)."""
    size, _, channels = drums.shape
    out = torch.zeros(size, channels, rep.BASS_STEPS, device=drums.device)
    out[:, :, ::2] = drums.float().transpose(1, 2)
    return out


# The discriminator sees the drums as 4 groups (kick; snare, side stick, clap; hi-hats and
# cymbals; toms and percussion): the rhythm groups are what a bass line locks to.
DRUM_GROUPS = torch.zeros(rep.DRUM_CLASSES, 4)
DRUM_GROUPS[[0, 1, 2, 3, 4, 5, 9, 10, 6, 7, 8, 11, 12, 13], [0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3]] = 1.0


def down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, stride=2, padding=1)]
    return nn.Sequential(*layers, *([nn.InstanceNorm2d(cout, affine=True)] if norm else []), nn.LeakyReLU(0.2))


def up(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]
    return nn.Sequential(*layers, NoiseDropout(dropout))


class Pix2pix(NeuralBassModel):
    name = "pix2pix"

    def __init__(self, params: dict, info: DataInfo):
        super().__init__()
        ngf, ndf = int(params.get("ngf", 16)), int(params.get("ndf", 16))
        dropout = float(params.get("dropout", 0.5))
        self.l1_weight = float(params.get("l1_weight", 100.0))
        self.bce_weight = float(params.get("bce_weight", 100.0))
        self.gan_weight = float(params.get("gan_weight", 1.0))
        self.threshold = float(params.get("threshold", 0.5))
        self.register_buffer("pos_weight", torch.tensor(float(params.get("pos_weight", 10.0))), persistent=False)
        self.cond = Conditioning.from_params(params, info, COND_DIM)
        # generator (U-Net, 4x4 stride-2 convolutions as in the paper); first layer -> 32 x 20, no norm
        self.e1_time = nn.Conv1d(rep.DRUM_CLASSES, ngf, 4, stride=2, padding=1)
        self.e1_column = nn.Parameter(0.1 * torch.randn(ngf, WIDTH // 2))
        self.e2 = down(ngf, 2 * ngf)  # 16 x 10
        self.e3 = down(2 * ngf, 4 * ngf)  # 8 x 5
        self.cond_proj = nn.Linear(COND_DIM, 4 * ngf)
        self.d3 = up(4 * ngf, 2 * ngf, dropout)  # 16 x 10
        self.d2 = up(4 * ngf, ngf, dropout)  # 32 x 20
        self.d1 = nn.ConvTranspose2d(2 * ngf, 1, 4, stride=2, padding=1)  # 64 x 40 logits
        nn.init.constant_(self.d1.bias, -5.0)  # start near the onset base rate, not at p = 0.5
        # discriminator (PatchGAN, 16 x 9 patches) on the drum-group canvas + a bass image
        self.register_buffer("groups", DRUM_GROUPS.clone(), persistent=False)
        self.d_time = nn.Conv1d(DRUM_GROUPS.shape[1], ndf, 4, stride=2, padding=1)
        self.d_image = nn.Conv2d(1, ndf, 4, stride=2, padding=1, bias=False)  # -> 32 x 18
        self.disc = nn.Sequential(nn.LeakyReLU(0.2), down(ndf, 2 * ndf), nn.Conv2d(2 * ndf, 1, 3, padding=1))

    def generator_params(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith(("disc.", "d_time.", "d_image."))]

    def discriminator_params(self) -> list[nn.Parameter]:
        return [*self.d_time.parameters(), *self.d_image.parameters(), *self.disc.parameters()]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Adam with beta1 = 0.5 for both networks, as in the paper."""
        return [
            adam(self.generator_params(), lr, betas=(0.5, 0.999)),
            adam(self.discriminator_params(), lr, betas=(0.5, 0.999)),
        ]

    def roll_logits(self, batch: dict) -> torch.Tensor:
        """Generator: [B, 64, 36] onset logits."""
        time = self.e1_time(drum_time(batch["drums"]))  # [B, ngf, 32]
        e1 = F.leaky_relu(time.unsqueeze(-1) + self.e1_column.unsqueeze(1), 0.2)  # [B, ngf, 32, 20]
        e2 = self.e2(e1)
        z = self.e3(e2) + self.cond_proj(self.cond(batch))[:, :, None, None]
        d = self.d2(torch.cat([self.d3(z), e2], dim=1))
        return self.d1(torch.cat([d, e1], dim=1))[:, 0, :, : rep.BASS_PITCHES]

    def discriminate(self, drums: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
        time = self.d_time(drum_time((drums.float() @ self.groups).clamp(max=1.0)))  # [B, ndf, 32]
        return self.disc(self.d_image(roll.unsqueeze(1)) + time.unsqueeze(-1))

    def reconstruction(self, logits: torch.Tensor, roll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1 on probabilities, BCE), both pos-weighted means over all cells."""
        weight = 1.0 + (self.pos_weight - 1.0) * roll
        l1 = (weight * (torch.sigmoid(logits) - roll).abs()).mean()
        bce = F.binary_cross_entropy_with_logits(logits, roll, pos_weight=self.pos_weight)
        return l1, bce

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        opt_g, opt_d = optimizers
        self.train()
        real = batch["roll"].float()
        logits = self.roll_logits(batch)
        fake = torch.sigmoid(logits)
        # discriminator: real pairs -> 1, generated pairs -> 0
        size = real.shape[0]
        d_both = self.discriminate(batch["drums"].repeat(2, 1, 1), torch.cat([real, fake.detach()]))
        d_real, d_fake = d_both[:size], d_both[size:]
        loss_d = 0.5 * (
            F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        )
        optimizer_step(loss_d, opt_d)
        # generator: fool the discriminator and reconstruct the roll
        d_gen = self.discriminate(batch["drums"], fake)
        gan = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        l1, bce = self.reconstruction(logits, real)
        loss_g = self.gan_weight * gan + self.l1_weight * l1 + self.bce_weight * bce
        optimizer_step(loss_g, opt_g)
        losses = {"loss": loss_g, "d_loss": loss_d, "g_gan": gan, "l1": l1, "bce": bce}
        return {k: v.item() for k, v in losses.items()}

    def _eval_logits(self, batch: dict) -> torch.Tensor:
        with inference(self):
            return self.roll_logits(batch)

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """NOT a token NLL: pos-weighted L1 + BCE of the onset roll (dropout off), the
        reconstruction part of the generator objective with unit weights."""
        l1, bce = self.reconstruction(self._eval_logits(batch), batch["roll"].float())
        return l1 + bce

    def onset_probs(self, batch: dict) -> torch.Tensor:
        """Onset probabilities with the pos-weighting undone: the generator is trained
        towards p_w = w q / (w q + 1 - q) for an onset frequency q, so q = p_w / (w (1 - p_w) + p_w)."""
        p = torch.sigmoid(self._eval_logits(batch))
        return p / (self.pos_weight * (1.0 - p) + p)

    def token_nll(self, batch: dict) -> None:
        return None

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """K rolls with the generator's dropout on, thresholded at ``threshold``."""
        drops = [m for m in self.modules() if isinstance(m, NoiseDropout)]
        tiled = {key: value.repeat_interleave(k, dim=0) for key, value in batch.items()}
        for m in drops:
            m.active, m.generator = True, generator
        try:
            probs = torch.sigmoid(self._eval_logits(tiled))
        finally:
            for m in drops:
                m.active, m.generator = False, None
        tokens = rep.roll_to_tokens(probs.cpu().numpy(), self.threshold).astype(np.int64)
        return torch.from_numpy(tokens).view(-1, k, rep.BASS_STEPS)
