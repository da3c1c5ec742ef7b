"""The split temperature: whether a note starts at one temperature, which pitch at another."""

import pytest
import torch
import torch.nn.functional as F

from dnb import representation as rep
from models.autoregressive import sample_loop
from models.base import Nucleus, is_greedy, parse_temperature, temperature_label, tempered_logits
from pipeline.report.prose import decoding_words
from pipeline.songs import temperature_grid


def logits_of(rest: float, sustain: float, pitches: list[float]) -> torch.Tensor:
    """Logits [1, 38] of a token distribution with these probabilities (pitches from the lowest)."""
    probs = torch.full((rep.VOCAB_SIZE,), 1e-12, dtype=torch.float64)
    probs[rep.REST], probs[rep.SUSTAIN] = rest, sustain
    probs[rep.ONSET_OFFSET : rep.ONSET_OFFSET + len(pitches)] = torch.tensor(pitches, dtype=torch.float64)
    return torch.log(probs / probs.sum())[None]


def test_one_temperature_divides_every_logit():
    logits = torch.randn(3, rep.VOCAB_SIZE)
    assert torch.allclose(tempered_logits(logits, 0.5), logits * 2)
    one = F.softmax(tempered_logits(logits, (1.0, 1.0)), -1)
    assert torch.allclose(one, F.softmax(logits, -1), atol=1e-6)


def test_split_temperature_tempers_rhythm_and_pitch_apart():
    # rest 0.2, sustain 0.3, onset 0.5 split 0.4 / 0.1 between two pitches
    probs = F.softmax(tempered_logits(logits_of(0.2, 0.3, [0.4, 0.1]).float(), (0.5, 2.0)), -1)[0].double()
    kinds = torch.tensor([0.2, 0.3, 0.5]) ** 2  # rhythm at T 0.5: p ** 2, renormalised
    kinds = kinds / kinds.sum()
    onset = probs[rep.ONSET_OFFSET :].sum()
    assert probs[rep.REST].item() == pytest.approx(kinds[0].item(), abs=1e-4)
    assert probs[rep.SUSTAIN].item() == pytest.approx(kinds[1].item(), abs=1e-4)
    assert onset.item() == pytest.approx(kinds[2].item(), abs=1e-4)
    within = torch.tensor([0.8, 0.2]) ** 0.5  # pitch given onset at T 2: p ** 0.5, renormalised
    within = within / within.sum()
    got = probs[rep.ONSET_OFFSET : rep.ONSET_OFFSET + 2] / onset
    assert got.tolist() == pytest.approx(within.tolist(), abs=1e-4)


def test_a_cold_pitch_keeps_the_rhythm_of_temperature_one():
    """Sampled at (1, 0.05): onsets as often as at T 1, but (nearly) always the likeliest pitch."""
    logits = logits_of(0.3, 0.3, [0.25, 0.15]).float()

    def step(state, prev, t):
        return logits.expand(len(prev), -1), state

    state = {"x": torch.zeros(4000, 1)}
    out = sample_loop(step, state, 4000, (1.0, 0.05), torch.Generator().manual_seed(0))
    onsets = out >= rep.ONSET_OFFSET
    assert onsets.float().mean().item() == pytest.approx(0.4, abs=0.01)
    assert (out[onsets] == rep.ONSET_OFFSET).float().mean().item() > 0.99
    single = sample_loop(step, state, 4000, 0.05, torch.Generator().manual_seed(0))
    assert (single >= rep.ONSET_OFFSET).float().mean().item() < 0.05  # one cold T freezes the rhythm too


def test_a_cold_split_temperature_picks_the_likeliest_kind_then_pitch():
    """Greedy decoding lets an onset win only when one pitch outweighs a sustain; near (0, 0) the
    split temperature starts a note whenever all onsets together do, at the likeliest pitch."""
    logits = logits_of(0.14, 0.34, [0.32, 0.2]).float()  # onset 0.52 in all, sustain the likeliest token

    def step(state, prev, t):
        return logits.expand(len(prev), -1), state

    state = {"x": torch.zeros(500, 1)}
    greedy = sample_loop(step, state, 500, 0.0)
    assert bool((greedy == rep.SUSTAIN).all())
    cold = sample_loop(step, state, 500, (0.05, 0.05), torch.Generator().manual_seed(0))
    assert (cold == rep.ONSET_OFFSET).float().mean().item() > 0.99


def test_temperatures_as_params_write_them():
    assert parse_temperature(0.8) == 0.8 and parse_temperature([1, 0.4]) == (1.0, 0.4)
    assert temperature_label(0.8) == "0.8" and temperature_label((1.0, 0.4)) == "1/0.4"
    assert is_greedy(0.0) and not is_greedy(0.1) and not is_greedy((1.0, 0.4))
    with pytest.raises(ValueError, match="two positive numbers"):
        parse_temperature([1.0, 0.0])
    assert decoding_words("1/0.4") == "at temperature 1 for rhythm and 0.4 for pitch"
    assert decoding_words(0.8) == "at temperature 0.8" and decoding_words(None) == ""


def test_a_bad_song_temperature_grid_is_one_line():
    assert temperature_grid({"temperatures": [0.8, [1, 0.3]]}) == [0.8, (1.0, 0.3)]
    with pytest.raises(SystemExit, match=r"songs.temperatures: a split temperature needs two positive numbers"):
        temperature_grid({"temperatures": [0.8, [1, -0.3]]})
    with pytest.raises(SystemExit, match="songs.temperatures: "):
        temperature_grid({"temperatures": ["warm"]})
    with pytest.raises(SystemExit, match="at least one"):
        temperature_grid({"temperatures": []})


def test_top_p_keeps_the_smallest_likeliest_set_reaching_p():
    # rest 0.5, sustain 0.3, two pitches 0.15 / 0.05: top-p 0.8 keeps rest and sustain (0.5 + 0.3 reaches
    # 0.8), top-p 0.81 also the likelier pitch; the kept tokens keep their odds
    logits = logits_of(0.5, 0.3, [0.15, 0.05]).float()
    probs = F.softmax(tempered_logits(logits, parse_temperature({"temperature": 1, "top_p": 0.8})), -1)[0]
    assert probs[rep.REST].item() == pytest.approx(0.5 / 0.8, abs=1e-5)
    assert probs[rep.SUSTAIN].item() == pytest.approx(0.3 / 0.8, abs=1e-5)
    assert probs[rep.ONSET_OFFSET :].sum().item() == 0.0
    wider = F.softmax(tempered_logits(logits, parse_temperature({"temperature": 1, "top_p": 0.81})), -1)[0]
    assert wider[rep.ONSET_OFFSET].item() == pytest.approx(0.15 / 0.95, abs=1e-5)
    assert wider[rep.ONSET_OFFSET + 1].item() == 0.0
    tiny = F.softmax(tempered_logits(logits, Nucleus(1.0, 0.01)), -1)[0]
    assert tiny[rep.REST].item() == 1.0  # the likeliest token always stays


def test_top_p_cuts_after_the_temperature():
    logits = logits_of(0.5, 0.3, [0.15, 0.05]).float()
    # at T 0.5 the odds are squared: rest 0.25 / (0.25 + 0.09 + 0.0225 + 0.0025) = 0.685, so top-p 0.68 keeps
    # rest alone (at T 1 it would keep sustain too)
    probs = F.softmax(tempered_logits(logits, Nucleus(0.5, 0.68)), -1)[0]
    assert probs[rep.REST].item() == 1.0
    split = F.softmax(tempered_logits(logits, Nucleus((1.0, 0.5), 0.95)), -1)[0]
    unsplit = F.softmax(tempered_logits(logits, (1.0, 0.5)), -1)[0]
    kept = split > 0
    assert torch.allclose(split[kept], unsplit[kept] / unsplit[kept].sum(), atol=1e-6)
    assert not kept.all()


def test_top_p_entries_as_params_write_them():
    assert parse_temperature({"temperature": 1.0, "top_p": 0.9}) == Nucleus(1.0, 0.9)
    assert parse_temperature({"temperature": [1, 0.8], "top_p": 0.93}) == Nucleus((1.0, 0.8), 0.93)
    assert parse_temperature({"temperature": 0.8, "top_p": 1}) == 0.8  # no cut: the plain temperature
    assert temperature_label(Nucleus((1.0, 0.8), 0.93)) == "1/0.8 top-p 0.93"
    assert not is_greedy(Nucleus(1.0, 0.9))
    assert decoding_words("1 top-p 0.9") == "at temperature 1 with top-p 0.9 sampling"
    split = "at temperature 1 for rhythm and 0.8 for pitch with top-p 0.93 sampling"
    assert decoding_words("1/0.8 top-p 0.93") == split
    for bad in ({"temperature": 0, "top_p": 0.9}, {"temperature": 1, "top_p": 0}, {"temperature": 1, "top_p": 1.5},
                {"temperature": 1}, {"temperature": 1, "top_p": 0.9, "seed": 3}):
        with pytest.raises(ValueError):
            parse_temperature(bad)
    with pytest.raises(SystemExit, match="songs.temperatures: a top-p entry needs"):
        temperature_grid({"temperatures": [0.8, {"temperature": 1, "top_p": 2}]})


def test_top_p_sampling_repeats_a_confident_line_exactly():
    """A model 97% sure of every token: at T 1 a 64-step line is copied whole in ~0.97**64 = 14% of draws,
    with top-p 0.95 in all of them."""
    probs = torch.full((rep.VOCAB_SIZE,), 0.03 / (rep.VOCAB_SIZE - 1))
    probs[rep.REST] = 0.97
    logits = torch.log(probs)[None]

    def step(state, prev, t):
        return logits.expand(len(prev), -1), state

    state = {"x": torch.zeros(2000, 1)}
    plain = sample_loop(step, state, 2000, 1.0, torch.Generator().manual_seed(0))
    cut = sample_loop(step, state, 2000, Nucleus(1.0, 0.95), torch.Generator().manual_seed(0))
    assert (plain == rep.REST).all(1).float().mean().item() == pytest.approx(0.97**64, abs=0.03)
    assert (cut == rep.REST).all().item()
