"""The baselines, and the evaluate stage end to end on a tiny synthetic split."""

import json
import os

import numpy as np
import pytest
import torch
import yaml

from dnb import data as dnb_data
from dnb import metrics as M
from dnb import representation as rep
from dnb.tensors import write_split
from models import baseline_classes, build, model_class
from models.base import parse_temperature, temperature_label

torch.set_num_threads(1)
PARAMS = {"knn_k": 3, "knn_metric": "jaccard", "knn_add_k": 0.01, "bigram_add_k": 0.1, "seed": 0}


@pytest.fixture(scope="module")
def train():
    return dnb_data.synthetic_split(120, seed=0)


def fitted(name, train, **overrides):
    return build(name, {**PARAMS, **overrides}, None).fit(train)


def test_registry_resolves_every_baseline():
    for name in baseline_classes():
        assert model_class(name).name == name


@pytest.mark.parametrize("metric", ["jaccard", "hamming"])
def test_knn_returns_training_bass_for_training_drums(train, metric):
    knn = fitted("knn", train, knn_metric=metric)
    query = dnb_data.subset(train, torch.arange(0, 120, 7))
    out = knn.sample(query, k=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (len(query["tokens"]), 4, 64)
    torch.testing.assert_close(out[:, 0], query["tokens"])
    nll = knn.token_nll(query)
    assert torch.isfinite(nll).all()
    probs = knn.onset_probs(query)
    assert probs.shape == (len(query["tokens"]), 64, 36) and float(probs.max()) <= 1


def test_knn_ties_keep_k_neighbours():
    split = dnb_data.synthetic_split(10, seed=1)
    split["drums"][:] = split["drums"][0]  # every training grid identical
    knn = fitted("knn", split, knn_k=4)
    nb = knn.neighbours(dnb_data.subset(split, torch.arange(2)))
    assert nb.shape == (2, 4) and len(set(nb[0].tolist())) == 4


def test_constant_density_bce_is_analytic(train):
    model = fitted("constant_density", train)
    rate = float(train["roll"].mean())
    n_on = train["roll"].sum((1, 2)).double().numpy()
    cells = rep.BASS_STEPS * rep.BASS_PITCHES
    expected = -(n_on * np.log(rate) + (cells - n_on) * np.log(1 - rate))
    bce = M.bce_stats(model.onset_probs(train).numpy(), train["roll"].numpy())[:, 0]
    np.testing.assert_allclose(bce, expected, rtol=1e-5)
    assert float(model.unigram.sum()) == pytest.approx(1.0)


def test_bigram_probabilities_sum_to_one(train):
    model = fitted("bigram", train)
    torch.testing.assert_close(model.probs.sum(-1), torch.ones(16, rep.VOCAB_SIZE))
    batch = dnb_data.subset(train, torch.arange(5))
    nll = model.token_nll(batch)
    ctx, prev = model.contexts(batch["drums"]), model.previous(batch["tokens"])
    torch.testing.assert_close(nll, -torch.log(model.probs[ctx, prev, batch["tokens"]]))
    # onset marginals: between 0 and 1, and no more than 1 per step
    probs = model.onset_probs(batch)
    assert float(probs.min()) >= 0 and float(probs.sum(-1).max()) <= 1 + 1e-5
    g = torch.Generator().manual_seed(3)
    a = model.sample(batch, k=2, generator=g)
    b = model.sample(batch, k=2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_root_on_kick_by_hand(train):
    model = fitted("root_on_kick", train)
    batch = dnb_data.subset(train, torch.arange(1))
    batch["drums"][:] = 0
    batch["drums"][0, [0, 4], rep.KICK] = 1
    batch["key"][:] = 12 + 7  # G minor
    out = model.sample(batch, k=2)[0]
    assert torch.equal(out[0], out[1])
    g = rep.ONSET_OFFSET + (7 - rep.BASS_LOW) % 12 + 12 * model.octave
    expected = [g] + [rep.SUSTAIN] * 7 + [g] + [rep.SUSTAIN] * 55
    assert out[0].tolist() == expected
    assert rep.token_pitch_classes(np.array([g]))[0] == 7


def test_silence_and_repaired(train):
    batch = dnb_data.subset(train, torch.arange(6))
    assert int(fitted("silence", train).sample(batch, k=3).abs().sum()) == 0
    rep_model = fitted("repaired", train)
    out = rep_model.sample(batch, k=3, generator=torch.Generator().manual_seed(0))
    train_lines = {tuple(t.tolist()) for t in train["tokens"]}
    assert all(tuple(t.tolist()) in train_lines for t in out.reshape(-1, 64))
    again = rep_model.sample(batch, k=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)


def _write_split(root, n, seed):
    split = dnb_data.synthetic_split(n, seed=seed)
    arrays = {k: v.numpy() for k, v in split.items()}
    arrays["song"] = arrays["song"] + seed * 1000
    write_split(root / "data/tensors" / f"{('train', 'test', 'val')[seed]}.npz", arrays)


def test_evaluate_stage_end_to_end(tmp_path, monkeypatch):
    from pipeline import evaluate

    (tmp_path / "data/tensors").mkdir(parents=True)
    _write_split(tmp_path, 80, 0)
    _write_split(tmp_path, 40, 1)
    _write_split(tmp_path, 30, 2)
    (tmp_path / "data/tensors/meta.json").write_text(json.dumps({"styles": ["a", "b", "c"]}))
    params = yaml.safe_load(open("params.yaml"))
    params["evaluate"].update(bootstrap=50, threads=1, samples=3, diversity_max_pairs=16)
    params["models"], params["model"] = ["lstm", "ffnn"], "lstm"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    from dnb.schema import DataInfo
    from models.checkpoint import save_checkpoint

    ffnn_params = {**params["train"]["common"], **params["train"]["ffnn"]}
    info = DataInfo(n_styles=3, style_names=["a", "b", "c"])
    save_checkpoint(tmp_path / "checkpoints/ffnn.pt", build("ffnn", ffnn_params, info), "ffnn", ffnn_params, info)
    monkeypatch.chdir(tmp_path)
    evaluate.main()
    first = {p: p.read_text() for p in sorted((tmp_path / "metrics").glob("*.json"))}
    ablations = {f"ablation_{tag}" for tag in params["train"]["ablation"]}
    expected = set(params["baselines"]) | {"lstm", "ffnn", "summary", "comparisons", "seeds"} | ablations
    assert {p.stem for p in first} == expected
    ffnn = json.loads((tmp_path / "metrics/ffnn.json").read_text())
    assert ffnn["status"] == "ok" and ffnn["kind"] == "model" and ffnn["metrics"]["perplexity"]["value"] > 1
    lstm = json.loads((tmp_path / "metrics/lstm.json").read_text())
    assert lstm["status"] == "missing checkpoint"
    silence = json.loads((tmp_path / "metrics/silence.json").read_text())
    assert silence["n_test_pairs"] == 40 and silence["n_test_songs"] == 10
    assert silence["metrics"]["empty_bar_rate"] == {"value": 1.0, "lo": 1.0, "hi": 1.0}
    assert silence["metrics"]["perplexity"] is None
    assert silence["reference"]["kick_lock"]["value"] == 1.0  # synthetic bass sits on the kicks
    knn = json.loads((tmp_path / "metrics/knn.json").read_text())
    m = knn["metrics"]["onset_f1"]
    assert m["lo"] <= m["value"] <= m["hi"]
    assert "diversity on a seeded subset of 16 test pairs" in knn["notes"]
    assert 1 <= knn["metrics"]["distinct_samples"]["value"] <= 3
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"name": "lstm", "status": "missing checkpoint"}
    bigram = json.loads((tmp_path / "metrics/bigram.json").read_text())
    pairs = json.loads((tmp_path / "metrics/comparisons.json").read_text())
    assert set(pairs) == {"lstm", "ffnn"} | ablations
    assert set(pairs["ffnn"]) == set(params["evaluate"]["compare_baselines"])
    # synthetic pairs: the chord of every half bar is the key's tonic triad and the bass plays the tonic
    assert silence["reference"]["chord_root_rate"]["value"] == 1.0
    assert silence["reference"]["chord_tone_rate"]["value"] == 1.0
    rule = json.loads((tmp_path / "metrics/chord_root_on_kick.json").read_text())["metrics"]
    tonic = json.loads((tmp_path / "metrics/root_on_kick.json").read_text())["metrics"]
    assert rule["chord_root_rate"]["value"] == 1.0 and rule["bleu4"] == tonic["bleu4"]
    assert pairs["lstm"]["bigram"]["bleu4"] is None  # not evaluated: nothing to compare
    for metric in ("perplexity", "bleu4", "bleu4_mbr"):
        diff = pairs["ffnn"]["bigram"][metric]
        assert diff["value"] == pytest.approx(ffnn["metrics"][metric]["value"] - bigram["metrics"][metric]["value"])
        assert diff["lo"] <= diff["value"] <= diff["hi"]
        assert diff["clears"] == (diff["hi"] < 0 if metric == "perplexity" else diff["lo"] > 0)
    root = json.loads((tmp_path / "metrics/root_on_kick.json").read_text())
    assert root["mbr_samples"] == params["evaluate"]["mbr_samples"] and 0 <= root["metrics"]["bleu4_mbr"]["value"] <= 1
    # note F1 MBR is scored for rules too (their MBR choice is their one line) and compared in pairs
    assert 0 < root["metrics"]["onset_pitch_f1_mbr"]["value"] <= 1
    assert pairs["ffnn"]["chord_root_on_kick"]["onset_pitch_f1_mbr"]["lo"] <= \
        pairs["ffnn"]["chord_root_on_kick"]["onset_pitch_f1_mbr"]["hi"]
    # the tuned temperature is one of the grid, chosen by the best validation note F1; a rule's tuned
    # line is its one line
    grid = [temperature_label(parse_temperature(t)) for t in params["evaluate"]["tuned_temperatures"]]
    assert bigram["tuned_temperatures"] == grid and bigram["tuned_temperature"] in grid
    scores = bigram["tuned_validation_f1"]
    assert set(scores) == set(grid)
    assert scores[bigram["tuned_temperature"]] == max(scores.values())
    assert root["tuned_temperature"] is None and root["tuned_validation_f1"] is None
    assert root["metrics"]["onset_pitch_f1_tuned"] == root["metrics"]["onset_pitch_f1"]
    assert root["metrics"]["bleu4_tuned"] == root["metrics"]["bleu4"]
    tuned = pairs["ffnn"]["bigram"]["onset_pitch_f1_tuned"]
    assert tuned["lo"] <= tuned["value"] <= tuned["hi"]
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "evaluation/per_example.parquet")
    assert len(rows) == (len(params["baselines"]) + 1) * 40
    assert set(rows["model"]) == set(params["baselines"]) | {"ffnn"}
    os.remove(tmp_path / "evaluation/per_example.parquet")
    evaluate.main()  # same params -> same metrics
    assert {p: p.read_text() for p in sorted((tmp_path / "metrics").glob("*.json"))} == first


def test_cap_per_song_keeps_every_song_and_at_most_cap_pairs():
    from pipeline import evaluate

    test = dnb_data.synthetic_split(40, seed=3)
    test["song"] = torch.tensor([0] * 10 + [1] * 2 + [2] * 28)
    capped = evaluate.cap_per_song(test, 3, seed=0)
    assert torch.bincount(capped["song"]).tolist() == [3, 2, 3]
    assert bool((capped["song"][1:] >= capped["song"][:-1]).all())  # order kept
    again = evaluate.cap_per_song(test, 3, seed=0)
    assert torch.equal(again["tokens"], capped["tokens"])
    assert not torch.equal(evaluate.cap_per_song(test, 3, seed=1)["tokens"], capped["tokens"])
    assert evaluate.cap_per_song(test, 0, seed=0) is test and evaluate.cap_per_song(test, 28, seed=0) is test


def test_mbr_pool_extends_the_diversity_samples():
    """Adding MBR draws after the diversity samples changes no other output; a
    deterministic system's MBR choice is its own output."""
    from pipeline import evaluate

    train, test = dnb_data.synthetic_split(60, seed=0), dnb_data.synthetic_split(24, seed=5)
    params = {**yaml.safe_load(open("params.yaml"))["evaluate"], "samples": 3, "diversity_max_pairs": 10}
    bigram = build("bigram", params, None).fit(train)
    off = evaluate.run_generator(bigram, test, {**params, "mbr_samples": 0})
    on = evaluate.run_generator(bigram, test, {**params, "mbr_samples": 6})
    np.testing.assert_array_equal(off["first"], on["first"])
    np.testing.assert_array_equal(off["diversity"], on["diversity"])
    assert off["mbr"] is None and on["mbr"].shape == (10, 64)
    root = build("root_on_kick", params, None).fit(train)
    run = evaluate.run_generator(root, test, {**params, "mbr_samples": 6})
    np.testing.assert_array_equal(run["mbr"], run["first"][run["rows"]])


def test_tuned_temperature_sample_is_chosen_on_validation_and_changes_nothing_else():
    """The tuned sample has its own generator: the other outputs are those of a run without it, at
    temperature 1 it is the first sample, and the temperature is the best of the grid on validation."""
    from pipeline import evaluate

    train, test = dnb_data.synthetic_split(60, seed=0), dnb_data.synthetic_split(24, seed=5)
    val = dnb_data.synthetic_split(30, seed=7)
    params = {**yaml.safe_load(open("params.yaml"))["evaluate"], "samples": 3, "diversity_max_pairs": 10,
              "mbr_samples": 4}
    bigram = build("bigram", params, None).fit(train)
    off = evaluate.run_generator(bigram, test, params)
    on = evaluate.run_generator(bigram, test, params, val=val)
    assert off["tuned"] is None
    for key in ("first", "diversity", "mbr", "mbr_f1"):
        np.testing.assert_array_equal(off[key], on[key])
    scores = on["tuned_scores"]
    grid = [parse_temperature(t) for t in params["tuned_temperatures"]]
    assert any(isinstance(t, tuple) for t in grid)  # split entries are part of the grid
    best = max(range(len(grid)), key=lambda i: (scores[temperature_label(grid[i])], -i))  # ties: the earlier
    assert on["tuned_temperature"] == temperature_label(grid[best])
    for t in grid:  # each score is the validation note F1 of a sample at that temperature
        gen = torch.Generator().manual_seed(int(params["seed"]))
        line = bigram.sample(val, k=1, temperature=t, generator=gen)[:, 0].numpy()
        assert scores[temperature_label(t)] == round(evaluate.note_f1(line, val["tokens"].numpy()), 4)
    one = evaluate.run_generator(bigram, test, {**params, "tuned_temperatures": [1.0]}, val=val)
    np.testing.assert_array_equal(one["tuned"], one["first"])
    cold = evaluate.run_generator(bigram, test, {**params, "tuned_temperatures": [0.2]}, val=val)
    assert cold["tuned_temperature"] == "0.2" and not np.array_equal(cold["tuned"], cold["first"])
    split = evaluate.run_generator(bigram, test, {**params, "tuned_temperatures": [[0.2, 0.05]]}, val=val)
    assert split["tuned_temperature"] == "0.2/0.05" and not np.array_equal(split["tuned"], cold["tuned"])
    root = build("root_on_kick", params, None).fit(train)
    rule = evaluate.run_generator(root, test, params, val=val)
    assert rule["tuned_temperature"] is None
    np.testing.assert_array_equal(rule["tuned"], rule["first"])


def test_chord_rules_follow_the_chords_of_each_half_bar(train):
    """chord_root_on_kick plays each half bar's chord root; chord_knn moves its neighbour onto the query's chords."""
    from dnb import chords as ch

    batch = dnb_data.subset(train, torch.arange(4))
    d_major, e_minor = ch.make_label(2, "maj"), ch.make_label(4, "min")
    batch["chords"] = torch.tensor([[d_major, d_major, e_minor, ch.N]] * 4)
    rule = fitted("chord_root_on_kick", train).sample(batch)[:, 0]
    tonic = fitted("root_on_kick", train).sample(batch)[:, 0]
    onsets = rule >= rep.ONSET_OFFSET
    assert torch.equal(onsets, tonic >= rep.ONSET_OFFSET)  # same rhythm: every kick
    pcs = (rep.BASS_LOW + rule - rep.ONSET_OFFSET) % 12
    half = torch.arange(64).expand_as(rule) // 16
    expected = torch.tensor([2, 2, 4, -1])[half]
    assert torch.equal(pcs[onsets & (half < 3)], expected[onsets & (half < 3)])
    assert torch.equal(rule[half == 3], tonic[half == 3])  # under N: the key's tonic
    knn = fitted("chord_knn", train)
    same = dnb_data.subset(train, torch.arange(4))  # training drums: the nearest pair is itself
    moved = dict(same, chords=ch.transpose_chords(same["chords"].numpy(), 3))
    got = knn.sample({**same, "chords": torch.as_tensor(moved["chords"].astype(np.int64))}, k=1)[:, 0]
    want = torch.as_tensor(rep.transpose_tokens(same["tokens"].numpy(), 3).astype(np.int64))
    assert torch.equal(got, want)


def riff(*cells: tuple[int, int]) -> torch.Tensor:
    """A 64-step line repeating ``cells`` of (onset pitch index, steps held)."""
    one = [t for pitch, steps in cells for t in [rep.ONSET_OFFSET + pitch] + [rep.SUSTAIN] * (steps - 1)]
    return torch.tensor((one * (rep.BASS_STEPS // len(one)))[: rep.BASS_STEPS])


def test_context_knn_plays_what_followed_the_previous_riff_in_any_key_in_its_register():
    """Two training pairs with the same drums and no chords, told apart only by their previous window:
    a query whose previous window is the first pair's riff three semitones up gets the first pair's line,
    one whose previous window is the second pair's riff gets the second's, each moved by whole octaves
    to the previous line's register; with no previous window the line is not moved."""
    from dnb import chords as ch

    split = dnb_data.subset(dnb_data.synthetic_split(8, seed=0), torch.arange(2))
    split["drums"] = split["drums"][:1].expand(2, -1, -1).clone()
    split["chords"] = torch.full((2, ch.HALF_BARS), ch.N)
    first, second = riff((24, 8), (26, 8)), riff((24, 4))
    followed = [riff((0, 8), (2, 8)), riff((5, 16))]
    split |= {"prev_tokens": torch.stack([first, second]), "has_prev": torch.ones(2, dtype=torch.long),
              "tokens": torch.stack(followed)}
    knn = fitted("context_knn", split)
    up = torch.as_tensor(rep.transpose_tokens(first.numpy(), 3).astype(np.int64))
    query = dict(split, prev_tokens=torch.stack([up, second]))
    got = knn.sample(query, k=1)[:, 0]
    for line, want in zip(got, followed):
        assert torch.equal(line, torch.as_tensor(rep.transpose_tokens(want.numpy(), 24).astype(np.int64)))
    alone = knn.sample(dict(split, has_prev=torch.zeros(2, dtype=torch.long)), k=1)[:, 0]
    assert all(any(torch.equal(line, want) for want in followed) for line in alone)


def test_chords_that_move_alike_need_one_shift_and_the_same_qualities():
    from dnb import chords as ch
    from models.baselines import chord_motion_agreement, moved_agreement

    c, g, d, a = (ch.make_label(root, "maj") for root in (0, 7, 2, 9))
    d_minor = ch.make_label(2, "min")
    query = torch.tensor([[c, c, g, ch.N]])
    candidates = torch.tensor([[[d, d, a, ch.N], [d, d, g, ch.N], [d_minor, d_minor, a, ch.N]]])
    assert chord_motion_agreement(query, candidates).tolist() == [[1.0, 0.5, 0.75]]
    line = riff((10, 8), (12, 8))
    moved = torch.as_tensor(rep.transpose_tokens(line.numpy(), -5).astype(np.int64))
    other = riff((10, 4))
    # the same riff 5 semitones down; a line with onsets every 4 steps agrees on 13 of 16 steps
    assert moved_agreement(line[None], torch.stack([moved, other])[None]).tolist() == [[1.0, 0.8125]]
