"""Interface tests run over every registered neural model, plus model-specific checks."""

from pathlib import Path

import pytest
import torch
import yaml

from dnb import representation as rep
from dnb.data import iterate_batches, synthetic_split
from dnb.schema import DataInfo
from models import architectures, build
from models.checkpoint import load_trained, save_checkpoint
from pipeline.train import model_params, validate

torch.set_num_threads(1)
INFO = DataInfo(n_styles=3, style_names=["a", "b", "c"])
SECTION = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]
TRAIN, VAL = synthetic_split(64, seed=0), synthetic_split(32, seed=1)
TINY = {k: v[:4] for k, v in VAL.items()}


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build(name, model_params(SECTION, name), INFO)


def check_outputs(model, batch, k=3):
    size = batch["tokens"].shape[0]
    samples = model.sample(batch, k=k, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (size, k, rep.BASS_STEPS) and samples.dtype == torch.int64
    assert 0 <= int(samples.min()) and int(samples.max()) < rep.VOCAB_SIZE
    nll = model.token_nll(batch)
    if nll is not None:
        assert nll.shape == (size, rep.BASS_STEPS)
        assert torch.isfinite(nll).all() and (nll >= 0).all()
    probs = model.onset_probs(batch)
    if probs is not None:
        assert probs.shape == (size, rep.BASS_STEPS, rep.BASS_PITCHES)
        assert (probs >= 0).all() and (probs <= 1).all()
    assert nll is not None or probs is not None
    return samples, nll, probs


@pytest.mark.parametrize("name", architectures())
def test_forward_backward_updates_every_optimizer(name):
    model = make(name)
    optimizers = model.configure_optimizers(1e-3)
    before = [[p.detach().clone() for g in opt.param_groups for p in g["params"]] for opt in optimizers]
    out = model.training_step(TINY, optimizers, 0)
    assert next(iter(out)) == "loss" and all(isinstance(v, float) for v in out.values())
    for opt, old in zip(optimizers, before):
        new = [p for g in opt.param_groups for p in g["params"]]
        assert any(not torch.equal(a, b) for a, b in zip(old, new)), "an optimizer changed nothing"
    check_outputs(model, TINY)


@pytest.mark.parametrize("name", architectures())
def test_short_training_lowers_validation_loss(name):
    model = make(name)
    optimizers = model.configure_optimizers(float(SECTION["common"]["lr"]) * 3)
    start = validate(model, VAL)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(4):
        for batch in iterate_batches(TRAIN, 16, shuffle=True, generator=generator):
            model.training_step(batch, optimizers, epoch)
    assert validate(model, VAL) < start


@pytest.mark.parametrize("name", architectures())
def test_seeded_sampling_repeats_and_checkpoint_round_trip(name, tmp_path):
    model = make(name)
    model.training_step(TINY, model.configure_optimizers(1e-3), 0)  # move away from the init
    model.eval()
    first, nll, probs = check_outputs(model, TINY)
    again = model.sample(TINY, k=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    params = model_params(SECTION, name)
    save_checkpoint(tmp_path / "m.pt", model, name, params, INFO, {"epoch": 1})
    loaded = load_trained(tmp_path / "m.pt")
    assert type(loaded) is type(model) and not loaded.training and loaded.extra == {"epoch": 1}
    samples2, nll2, probs2 = check_outputs(loaded, TINY)
    torch.testing.assert_close(samples2, first, rtol=0, atol=0)
    for a, b in ((nll, nll2), (probs, probs2)):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["ffnn", "cnn", "lstm_fcnn"])
def test_stepwise_models_are_consistent(name):
    """token_nll, onset_probs and argmax sampling come from one distribution per step."""
    model = make(name).eval()
    nll, probs = model.token_nll(TINY), model.onset_probs(TINY)
    steps = torch.nonzero(TINY["tokens"][0] >= rep.ONSET_OFFSET, as_tuple=True)[0]
    pitch = TINY["tokens"][0, steps] - rep.ONSET_OFFSET
    torch.testing.assert_close(torch.exp(-nll[0, steps]), probs[0, steps, pitch])
    best = model.sample(TINY, k=2, temperature=0.0)
    assert torch.equal(best[:, 0], best[:, 1])
    lowest = nll.new_tensor(0.0)
    for token in range(rep.VOCAB_SIZE):  # the argmax token has the lowest NLL at every step
        batch = {**TINY, "tokens": torch.full_like(TINY["tokens"], token)}
        lowest = torch.where(best[:, 0] == token, model.token_nll(batch), lowest)
    assert torch.all(lowest <= nll + 1e-6)


def test_conditioning_switches_inputs():
    """With no conditioning the labels are ignored; with key they change the output."""
    batch = {**TINY, "key": (TINY["key"] + 5) % 24}
    for use, same in (([], True), (["key"], False)):
        torch.manual_seed(0)
        model = build("ffnn", {**model_params(SECTION, "ffnn"), "conditioning": use}, INFO).eval()
        assert torch.equal(model.token_nll(TINY), model.token_nll(batch)) is same


def test_pix2pix_drum_canvas_and_seeded_dropout():
    from models.pix2pix import NoiseDropout, drum_time

    drums = torch.zeros(1, rep.DRUM_STEPS, rep.DRUM_CLASSES)
    drums[0, 3, rep.SNARE] = 1
    canvas = drum_time(drums)  # drum step 3 = 32nd step 6
    assert canvas.shape == (1, rep.DRUM_CLASSES, rep.BASS_STEPS) and canvas.sum() == 1 and canvas[0, rep.SNARE, 6] == 1
    drop = NoiseDropout(0.5).eval()
    x = torch.ones(1000)
    assert torch.equal(drop(x), x)
    drop.active = True
    drop.generator = torch.Generator().manual_seed(3)
    a = drop(x)
    drop.generator = torch.Generator().manual_seed(3)
    assert torch.equal(a, drop(x)) and set(a.unique().tolist()) == {0.0, 2.0}
    drop.generator = torch.Generator().manual_seed(4)
    assert not torch.equal(a, drop(x))


def test_pix2pix_sample_thresholds_its_roll():
    model = make("pix2pix").eval()
    with torch.no_grad():
        model.d1.bias.fill_(20.0)  # every cell "on": the argmax pitch at every step is an onset
    probs = model.onset_probs(TINY)
    tokens = model.sample(TINY, k=1, generator=torch.Generator().manual_seed(0))[:, 0]
    assert model.token_nll(TINY) is None and bool((probs > 0.5).all())
    assert bool((tokens >= rep.ONSET_OFFSET).all())
    with torch.no_grad():
        model.d1.bias.fill_(-20.0)
    assert bool((model.sample(TINY, k=2) == rep.REST).all())


@pytest.mark.parametrize("name", architectures())
def test_chords_enter_every_architecture(name):
    """With ``chords`` in the conditioning, a training step runs and other chords change the output;
    without it the chords are ignored (and no chord parameter exists)."""
    params = {**model_params(SECTION, name), "conditioning": ["key", "chords"], "chord_dropout": 0.5}
    torch.manual_seed(0)
    model = build(name, params, INFO)
    optimizers = model.configure_optimizers(1e-3)
    assert model.training_step(TINY, optimizers, 0)["loss"] > 0
    other = {**TINY, "chords": (TINY["chords"] + 2) % INFO.n_chords}
    model.eval()
    probe = (lambda b: model.onset_probs(b)) if name == "pix2pix" else (lambda b: model.token_nll(b))
    assert not torch.allclose(probe(TINY), probe(other))
    torch.manual_seed(0)
    blind = build(name, model_params(SECTION, name), INFO).eval()
    assert not any("chord" in n for n, _ in blind.named_parameters())
    probe = (lambda b: blind.onset_probs(b)) if name == "pix2pix" else (lambda b: blind.token_nll(b))
    assert torch.equal(probe(TINY), probe(other))


def test_keep_mask_rate_resolution_and_seed():
    from models.base import KEEP_BITS, keep_mask, keep_scale

    torch.manual_seed(0)
    mask = keep_mask((400, 1000), 0.1)
    assert mask.dtype == torch.bool and mask.shape == (400, 1000)
    assert abs(mask.float().mean().item() - 0.9) < 0.002  # 400k draws: sd 0.0005
    # every 15-bit draw is uniform: the four draws of a word keep at the same rate
    torch.manual_seed(1)
    per_slot = keep_mask((100_000, 4), 0.5).float().mean(0)
    assert torch.allclose(per_slot, torch.full((4,), 0.5), atol=0.01)
    assert keep_mask((7, 3), 0.0).all() and not keep_mask((7, 3), 1.0).any()
    assert keep_scale(0.1) == pytest.approx(1 / (1 - round(0.1 * 2**KEEP_BITS) / 2**KEEP_BITS))
    gen = torch.Generator()
    a, b = keep_mask((5, 9), 0.5, gen.manual_seed(3)), keep_mask((5, 9), 0.5, gen.manual_seed(3))
    assert torch.equal(a, b)


def test_keep_factor_is_the_mask_as_zeros_and_ones_in_each_dtype():
    from models.base import keep_factor, keep_mask

    gen = torch.Generator()
    mask = keep_mask((6, 7, 11), 0.3, gen.manual_seed(5))
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        factor = keep_factor((6, 7, 11), 0.3, dtype, gen.manual_seed(5))
        assert factor.dtype == dtype
        assert torch.equal(factor, mask.to(dtype))  # the same draws, True -> 1 and False -> 0
        assert set(factor.unique().tolist()) == {0.0, 1.0}


def test_fast_dropout_is_inverted_dropout():
    from models.base import Dropout, dropout, use_dropout_kernel

    torch.manual_seed(0)
    x = torch.ones(200, 500, requires_grad=True)
    y = dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.8), rtol=1e-4)
    assert abs(kept.float().mean().item() - 0.8) < 0.005
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # the gradient flows through the kept elements only
    layer = Dropout(0.5).eval()
    assert torch.equal(layer(x), x)  # off outside training
    model = torch.nn.Sequential(Dropout(0.5), torch.nn.Linear(3, 3))
    use_dropout_kernel(model, "torch")
    assert model[0].dropout_kernel == "torch"
    with pytest.raises(ValueError, match="dropout_kernel"):
        use_dropout_kernel(model, "cuda")


def test_transformer_attention_paths_agree():
    """The hand-written training path (fast dropout masks) computes the same attention as torch's
    ``scaled_dot_product_attention`` when nothing is dropped, causal or not."""
    from models.transformer import Attention

    torch.manual_seed(0)
    attention = Attention(32, 4, dropout=1e-9).train()  # > 0: the dropout path, but keeps everything
    x, memory = torch.randn(3, 10, 32), torch.randn(3, 17, 32)
    for causal, source in ((True, x), (False, memory)):
        k, v = attention.keys_values(source)
        fast = attention.attend(x, k, v, causal=causal)
        reference = attention.eval().attend(x, k, v, causal=causal)  # the fused kernel
        attention.train()
        assert torch.allclose(fast, reference, atol=1e-5)
    # dropping: the same rate of zeroed attention weights as asked, seeded
    attention.dropout = 0.5
    k, v = attention.keys_values(x)
    torch.manual_seed(5)
    one = attention.attend(x, k, v, causal=True)
    torch.manual_seed(5)
    assert torch.equal(one, attention.attend(x, k, v, causal=True))
    assert not torch.allclose(one, reference)


def test_past_window_drums_say_where_and_how_much_they_agree_with_the_current_drums():
    from models.conditioning import Previous

    now = torch.zeros(3, 32, 14)
    now[:, ::4, 0] = 1  # kick on every beat
    now[:, 2::4, 2] = 1  # hats between
    before = now.clone()
    before[1, 2::4, 2] = 0  # pair 1: the hats gone (8 of 32 steps differ; 8 of 16 onsets shared)
    batch = {"drums": now, "prev_drums": before, "has_prev": torch.tensor([1, 1, 0])}
    part = Previous(8, source="previous")
    features = part.drums(batch, part.present(batch))  # [3, 32, 17]
    assert features.shape == (3, 32, Previous.DRUM_FEATURES) == (3, 32, 17)
    grid, flag, same_step, overlap = features[..., :14], features[..., 14], features[..., 15], features[..., 16]
    assert torch.equal(grid[:2], before[:2]) and not grid[2].any()
    assert torch.equal(flag[:, 0], torch.tensor([1.0, 1, 0]))
    assert same_step[0].all() and overlap[0].eq(1).all()  # identical drums
    assert same_step[1].sum() == 24 and not same_step[1, 2::4].any()
    assert overlap[1].eq(0.5).all()  # 8 shared onsets of 16 in either window
    assert not same_step[2].any() and not overlap[2].any()  # no past window: nothing agrees
