"""Stage annotate on a tiny Groove-like fixture: two drum styles with distinct
patterns (plus seeded noise), a rare style, a 3/4 file and a missing file."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dnb import representation as rep
from dnb import style as drum_style
from dnb.keys import PROFILES, estimate_keys
from pipeline import annotate

torch.set_num_threads(1)
KICK, SNARE, CLOSED, RIDE = 0, 1, 4, 10


def pattern(style: str, n_windows: int, rng: np.random.Generator) -> np.ndarray:
    """[n_windows, 32, 14] grids: rock = kick 1 & 3, snare 2 & 4, 8th hi-hats;
    jazz = swung ride, hi-hat foot on 2 & 4; punk = 8th kicks and snares. One random
    extra onset per bar keeps the windows from being identical."""
    grids = np.zeros((n_windows, 32, 14), dtype=np.uint8)
    bar = np.arange(2) * 16
    if style == "rock":
        grids[:, (bar[:, None] + [0, 8]).ravel(), KICK] = 1
        grids[:, (bar[:, None] + [4, 12]).ravel(), SNARE] = 1
        grids[:, 0::2, CLOSED] = 1
    elif style == "jazz":
        grids[:, (bar[:, None] + [0, 4, 7, 8, 12, 15]).ravel(), RIDE] = 1
        grids[:, (bar[:, None] + [4, 12]).ravel(), CLOSED] = 1
    else:
        grids[:, 0::2, KICK] = 1
        grids[:, 0::2, SNARE] = 1
    for w in range(n_windows):
        for b in bar:
            grids[w, b + rng.integers(16), rng.integers(14)] = 1
    return grids


def groove_file(grids: np.ndarray) -> bytes:
    """MIDI bytes of the windows, plus one kick after them so the last window is complete."""
    tail = np.zeros((1, 32, 14), dtype=np.uint8)
    tail[0, 0, KICK] = 1
    return rep.pretty_midi_to_bytes(rep.windows_to_pretty_midi(np.concatenate([grids, tail]), None, bpm=100.0))


@pytest.fixture()
def stage_dir(tmp_path, monkeypatch):
    """A repo-like folder: params.yaml, groove/ (info.csv + MIDI), data/interim/."""
    rng = np.random.default_rng(0)
    groove = tmp_path / "groove"
    groove.mkdir()
    rows = []
    plan = [("rock", s) for s in ["train"] * 3 + ["validation", "test"]]
    plan += [("jazz", s) for s in ["train"] * 3 + ["validation", "test"]] + [("punk", "train")]
    for i, (style, split) in enumerate(plan):
        name = f"{i}_{style}.mid"
        (groove / name).write_bytes(groove_file(pattern(style, 3 if style != "punk" else 1, rng)))
        rows.append((f"{style}/groove{i}", "beat", "4-4", name, split))
    (groove / "waltz.mid").write_bytes((groove / "0_rock.mid").read_bytes())
    rows.append(("rock/groove99", "beat", "3-4", "waltz.mid", "train"))
    rows.append(("jazz/groove98", "beat", "4-4", "missing.mid", "train"))
    info = pd.DataFrame(rows, columns=["style", "beat_type", "time_signature", "midi_filename", "split"])
    info.insert(0, "drummer", "drummer1")
    info.to_csv(groove / "info.csv", index=False)

    interim = tmp_path / "data/interim"
    interim.mkdir(parents=True)
    drums = np.concatenate([pattern("rock", 3, rng), pattern("jazz", 3, rng), pattern("rock", 1, rng)])
    np.savez(interim / "pairs.npz", drums=drums, tokens=np.zeros((7, 64), np.uint8), chords=np.zeros((7, 4), np.uint8))
    pairs = pd.DataFrame(
        {
            "song_id": ["a"] * 3 + ["b"] * 3 + ["not_in_songs"],
            "corpus": ["large"] * 6 + ["freedoom"],
            "folder_genre": ["rock"] * 3 + ["jazz"] * 3 + [""],
            "window_index": [0, 1, 2, 0, 1, 2, 0],
        }
    )
    pairs.to_parquet(interim / "pairs.parquet")
    major, minor = (np.asarray(p) for p in PROFILES["krumhansl_kessler"])
    hists = np.stack([major, np.roll(minor, 9), np.zeros(12)])  # C major, A minor, no pitched notes
    songs = pd.DataFrame({"song_id": ["a", "b", "c"], "n_pairs": [3, 3, 0]})
    for i in range(12):
        songs[f"pc_{i}"] = hists[:, i]
    songs.to_parquet(interim / "songs.parquet")
    params = {"annotate": {"groove_path": "groove", "min_style_windows": 3, "min_drum_onsets": 4, "seed": 0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_writes_the_contract(stage_dir):
    annotate.main()
    ann = pd.read_parquet(stage_dir / "data/interim/annotations.parquet")
    report = json.loads((stage_dir / "data/annotate_report.json").read_text())
    bundle = drum_style.load_classifier(stage_dir / "data/style_classifier.npz")

    assert list(ann.columns) == ["key", "key_name", "key_confidence", "style", "style_index"]
    assert len(ann) == 7
    # keys come from the song histograms; the pair of an unknown song gets C major, confidence 0
    assert ann["key_name"].tolist() == ["C major"] * 3 + ["A minor"] * 3 + ["C major"]
    assert ann["key"].tolist() == [0] * 3 + [21] * 3 + [0]
    songs = pd.read_parquet(stage_dir / "data/interim/songs.parquet")
    _, confidence = estimate_keys(songs[[f"pc_{i}" for i in range(12)]].to_numpy())
    np.testing.assert_allclose(ann["key_confidence"], list(confidence[[0, 0, 0, 1, 1, 1]]) + [0.0])
    assert report["pairs_without_song"] == 1
    assert report["songs_without_pitched_notes"] == 1
    assert report["key_histogram"]["C major"] == 1 and report["key_histogram"]["A minor"] == 1
    assert sum(report["key_histogram"].values()) == 2

    # punk has 1 training window < min_style_windows = 3: merged into "other"
    assert bundle["classes"] == ["jazz", "other", "rock"] and bundle["feature_version"] == drum_style.FEATURE_VERSION
    clf = report["classifier"]
    assert clf["merged_into_other"] == ["punk"]
    assert clf["n_windows"] == {"train": 19, "validation": 6, "test": 6}
    assert clf["groove"]["files_not_4_4"] == 1 and clf["groove"]["files_unreadable"] == 1
    assert set(clf["candidates"]) == set(annotate.candidates(0)) and clf["chosen"] in clf["candidates"]
    assert clf["majority_accuracy"] == pytest.approx(0.5)
    assert clf["test_accuracy"] == 1.0 and clf["test_macro_f1"] == 1.0 > clf["majority_macro_f1"]
    assert clf["majority_macro_f1"] == pytest.approx((2 / 3 + 0) / 2)  # always "jazz" (first of the tied classes)
    assert clf["per_class_f1"] == {"jazz": 1.0, "rock": 1.0}

    assert ann["style"].tolist() == ["rock"] * 3 + ["jazz"] * 3 + ["rock"]
    assert ann["style_index"].tolist() == [2] * 3 + [0] * 3 + [2]
    assert report["style_histogram"] == {"jazz": 3, "other": 0, "rock": 4}
    assert report["crosstab"] == {"jazz": {"jazz": 3, "rock": 0}, "rock": {"jazz": 0, "rock": 3}}
    with np.load(stage_dir / "data/interim/pairs.npz") as data:
        assert drum_style.predict_style(bundle, data["drums"]) == ann["style"].tolist()


def test_stage_is_deterministic(stage_dir):
    annotate.main()
    first = pd.read_parquet(stage_dir / "data/interim/annotations.parquet")
    scores = json.loads((stage_dir / "data/annotate_report.json").read_text())["classifier"]["candidates"]
    forest = (stage_dir / "data/style_classifier.npz").read_bytes()
    annotate.main()
    assert (stage_dir / "data/style_classifier.npz").read_bytes() == forest
    pd.testing.assert_frame_equal(first, pd.read_parquet(stage_dir / "data/interim/annotations.parquet"))
    again = json.loads((stage_dir / "data/annotate_report.json").read_text())["classifier"]["candidates"]
    assert {n: s["val_macro_f1"] for n, s in scores.items()} == {n: s["val_macro_f1"] for n, s in again.items()}


def test_primary_style_and_rare_styles():
    assert annotate.primary_style("funk/groove1") == "funk"
    assert annotate.primary_style("Latin/brazilian-samba") == "latin"
    styles = pd.Series(["rock", "rock", "funk", "funk", "jazz", "blues"])
    train = np.array([True, True, True, False, True, False])
    assert annotate.merge_rare_styles(styles, train, 2).tolist() == ["rock", "rock", "other", "other", "other", "other"]


def test_drum_features_exact():
    grid = np.zeros((1, 32, 14), dtype=np.uint8)
    grid[0, [0, 16], KICK] = 1
    grid[0, [0, 2, 5], CLOSED] = 1
    x = drum_style.drum_features(grid)
    assert x.shape == (1, drum_style.N_FEATURES) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :448], grid.reshape(-1))
    summary = dict(zip(drum_style.SUMMARY_NAMES, x[0, 448:]))
    assert summary["onsets_kick"] == 2 and summary["onsets_closed_hihat"] == 3 and summary["onsets_snare"] == 0
    assert summary["density"] == pytest.approx(5 / 32)
    assert summary["busy_steps"] == pytest.approx(4 / 32)
    assert summary["offbeat_16ths"] == pytest.approx(1 / 5)  # step 5
    assert summary["offbeat_8ths"] == pytest.approx(1 / 5)  # step 2
    with pytest.raises(ValueError, match="drum grids"):
        drum_style.drum_features(np.zeros((2, 16, 14)))
    with pytest.raises(ValueError, match="feature_version"):
        drum_style.predict_style({"model": None, "classes": [], "feature_version": 0}, grid)
