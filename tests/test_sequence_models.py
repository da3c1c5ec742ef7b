"""Behaviour of the autoregressive models (lstm, transformer) and the cvae on tiny configs."""

import pytest
import torch

from dnb import representation as rep
from dnb.data import iterate_batches, synthetic_split
from dnb.schema import DataInfo
from models import build
from models.autoregressive import BOS, shift_right

torch.set_num_threads(1)

INFO = DataInfo(n_styles=3)
COMMON = {"seed": 0, "conditioning": ["tempo", "program", "key", "style"]}
TINY = {
    "lstm": {"hidden": 32, "cond_dim": 16, "dropout": 0.0},
    "transformer": {"d_model": 32, "heads": 2, "layers": 1, "ff": 64, "dropout": 0.0},
    "cvae": {"hidden": 32, "cond_dim": 16, "latent": 4, "free_bits": 0.5, "kl_anneal_epochs": 1, "dropout": 0.0},
}
AR = ["lstm", "transformer"]


def tiny(name: str, **extra):
    """A small model with seeded weights (the trainer seeds before it builds; so does this)."""
    torch.manual_seed(0)
    return build(name, {**COMMON, **TINY[name], **extra}, INFO)


@pytest.fixture(scope="module")
def batch():
    return synthetic_split(6, seed=1)


@pytest.mark.parametrize("name", AR)
def test_decoding_shapes_and_vocabulary(name, batch):
    model = tiny(name)
    greedy, beam = model.greedy(batch), model.beam_search(batch, 3)
    samples = model.sample(batch, k=4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert greedy.shape == beam.shape == (6, 64) and samples.shape == (6, 4, 64)
    for out in (greedy, beam, samples):
        assert out.dtype == torch.int64 and 0 <= int(out.min()) and int(out.max()) < rep.VOCAB_SIZE


@pytest.mark.parametrize("name", AR)
def test_beam_of_one_is_greedy_and_temperature_zero_is_greedy(name, batch):
    model = tiny(name)
    greedy = model.greedy(batch)
    assert torch.equal(model.beam_search(batch, 1), greedy)
    assert torch.equal(model.sample(batch, k=1, temperature=0.0)[:, 0], greedy)


@pytest.mark.parametrize("name", AR)
def test_beam_search_finds_a_line_at_least_as_likely_as_greedy(name, batch):
    model = tiny(name)

    def log_prob(tokens):
        return -model.token_nll({**batch, "tokens": tokens}).sum(1)

    assert bool((log_prob(model.beam_search(batch, 4)) >= log_prob(model.greedy(batch)) - 1e-4).all())


@pytest.mark.parametrize("name", AR)
def test_teacher_forced_nll_equals_step_by_step_log_probs(name, batch):
    model = tiny(name).eval()
    tokens = batch["tokens"]
    with torch.no_grad():
        state, prev, total = model.init_state(batch), torch.full((6,), BOS), torch.zeros(6)
        for t in range(rep.BASS_STEPS):
            logits, state = model.step(state, prev, t)
            total -= torch.log_softmax(logits, -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
            prev = tokens[:, t]
    torch.testing.assert_close(model.token_nll(batch).sum(1), total, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", AR + ["cvae"])
def test_sampling_with_a_fixed_seed_repeats(name, batch):
    model = tiny(name)
    first = model.sample(batch, k=3, generator=torch.Generator().manual_seed(7))
    again = model.sample(batch, k=3, generator=torch.Generator().manual_seed(7))
    other = model.sample(batch, k=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("name", AR + ["cvae"])
def test_onset_probs_are_probabilities(name, batch):
    probs = tiny(name).onset_probs(batch)
    assert probs.shape == (6, 64, 36)
    assert float(probs.min()) >= 0 and float(probs.sum(-1).max()) <= 1 + 1e-5


@pytest.mark.parametrize("name", AR + ["cvae"])
def test_short_training_lowers_validation_loss(name):
    torch.manual_seed(0)
    train, val = synthetic_split(64, seed=0), synthetic_split(32, seed=1)
    model = tiny(name)
    (opt,) = model.configure_optimizers(3e-3)
    before = float(model.validation_loss(val))
    gen = torch.Generator().manual_seed(0)
    for epoch in range(4):
        for b in iterate_batches(train, 16, shuffle=True, generator=gen):
            out = model.training_step(b, [opt], epoch)
            assert list(out)[0] == "loss"
    after = float(model.validation_loss(val))
    assert after < before - 0.5, (before, after)


def test_cvae_keeps_kl_above_zero_and_samples_differ_across_seeds(batch):
    torch.manual_seed(0)
    model = tiny("cvae")
    (opt,) = model.configure_optimizers(3e-3)
    train = synthetic_split(64, seed=0)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(3):
        for b in iterate_batches(train, 16, shuffle=True, generator=gen):
            out = model.training_step(b, [opt], epoch)
    assert {"loss", "recon", "kl"} <= set(out) and out["kl"] > 0.05
    assert float(model.kl(batch).mean()) > 0.05
    a = model.sample(batch, k=2, generator=torch.Generator().manual_seed(1))
    b = model.sample(batch, k=2, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)
    # the decoder listens to z: two draws from the prior give different next-token distributions
    model.eval()
    with torch.no_grad():
        enc, cond, _ = model.encode(batch)
        prev = shift_right(batch["tokens"])
        z1, z2 = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(3))
        p1, p2 = (torch.softmax(model.net(enc, cond, z, prev), -1) for z in (z1, z2))
    assert float((p1 - p2).abs().max()) > 0.01


def test_cvae_nll_is_an_upper_bound_tightened_by_importance_weighting(batch):
    model = tiny("cvae")
    assert model.nll_is_bound
    elbo = model.token_nll(batch)
    assert torch.equal(elbo, model.token_nll(batch))  # fixed noise: same model, same numbers
    iwae = tiny("cvae", iw_samples=16).token_nll(batch)
    assert elbo.shape == iwae.shape == (6, 64)
    assert float(iwae.sum(1).mean()) <= float(elbo.sum(1).mean()) + 1e-3


def test_cvae_kl_weight_anneals_to_one():
    model = tiny("cvae", kl_anneal_epochs=3)
    weights = [model.kl_weight(e) for e in range(5)]
    assert weights == [0.25, 0.5, 0.75, 1.0, 1.0]
