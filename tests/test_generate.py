"""`dnb generate` end to end on a drum file that is in no corpus, with a tiny trained checkpoint."""

import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from dnb import representation as rep
from dnb.data import synthetic_split
from dnb.schema import DataInfo
from dnb.tensors import write_split
from models import build
from models.base import Nucleus
from models.checkpoint import save_checkpoint
from producer import cli
from producer import generate as generation

REPO = Path(__file__).resolve().parents[1]
BPM = 100.0
BAR = 4 * 60.0 / BPM  # seconds per 4/4 bar


def drum_song(path: Path) -> pretty_midi.PrettyMIDI:
    """8 bars of 4/4 (4 windows) then 3 bars of 3/4, humanised drums, and an A minor piano part."""
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=BPM)
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0), pretty_midi.TimeSignature(3, 4, 8 * BAR)]
    kit = pretty_midi.Instrument(program=0, is_drum=True, name="my kit")
    rng = np.random.default_rng(7)
    beat = 60.0 / BPM
    for bar in range(8):
        for b in range(4):
            t = bar * BAR + b * beat
            kit.notes.append(pretty_midi.Note(110, 36 if b % 2 == 0 else 38, t, t + 0.1))
            for half in (0.0, 0.5):
                jitter = float(rng.uniform(-0.012, 0.012))
                kit.notes.append(pretty_midi.Note(int(rng.integers(50, 90)), 42, t + half * beat + abs(jitter),
                                                  t + half * beat + abs(jitter) + 0.05))
    for i in range(9):  # 3/4 tail: drums but no 4/4 window
        t = 8 * BAR + i * beat
        kit.notes.append(pretty_midi.Note(100, 36, t, t + 0.1))
    piano = pretty_midi.Instrument(program=0, name="piano")
    for bar in range(8):  # A minor: i - iv - V - i
        chord = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]][bar % 4]
        for p in chord:
            piano.notes.append(pretty_midi.Note(80, p, bar * BAR, (bar + 1) * BAR))
    pm.instruments = [kit, piano]
    pm.write(str(path))
    return pm


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    """A tmp dir with drums.mid and checkpoints/ffnn.pt trained briefly on synthetic data."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("generate")
    drum_song(root / "drums.mid")
    info = DataInfo(n_styles=3, style_names=["funk", "rock", "jazz"])
    params = {"hidden": 64, "dropout": 0.0, "conditioning": ["tempo", "program", "key", "style"], "seed": 0}
    model = build("ffnn", params, info)
    data = synthetic_split(64, seed=0)
    optimizers = model.configure_optimizers(0.01)
    model.train()
    for epoch in range(15):
        model.training_step(data, optimizers, epoch)
    save_checkpoint(root / "checkpoints" / "ffnn.pt", model, "ffnn", params, info)
    return root


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "dnb"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "producer.cli"]
    # this work tree's code, whatever checkout the editable install points at; the test's checkpoints,
    # not the repository's (which come before ./checkpoints: producer/paths.py)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "DNB_CHECKPOINTS": str(root / "checkpoints")}
    return subprocess.run(head + ["generate", *args], cwd=root, capture_output=True, text=True, timeout=120, env=env)


def notes_of(pm: pretty_midi.PrettyMIDI, drum: bool) -> list[tuple]:
    return sorted((round(n.start, 6), round(n.end, 6), n.pitch, n.velocity)
                  for inst in pm.instruments if inst.is_drum == drum for n in inst.notes)


def test_generate_keeps_drums_and_fills_every_window(setup):
    done = run_cli(setup, "drums.mid", "--model", "ffnn", "--style", "rock", "--out", "out/song.mid", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "4 windows" in done.stdout and "A minor (estimated" in done.stdout
    assert "model ffnn, context: off (model has none): wrote " in done.stdout  # ffnn takes no previous window
    original = pretty_midi.PrettyMIDI(str(setup / "drums.mid"))
    out = pretty_midi.PrettyMIDI(str(setup / "out/song.mid"))
    assert notes_of(out, drum=True) == notes_of(original, drum=True)  # copied, not re-rendered (jitter kept)
    assert [i.name for i in out.instruments] == ["my kit", "bass (dnb generate)"]  # piano dropped
    bass = [i for i in out.instruments if not i.is_drum][0]
    assert bass.program == 33
    starts = np.array([n.start for n in bass.notes])
    per_window = np.histogram(starts, bins=np.arange(5) * 2 * BAR)[0]
    assert (per_window > 0).all(), per_window
    assert starts.max() < 8 * BAR  # nothing in the 3/4 tail
    assert all(rep.BASS_LOW <= n.pitch <= rep.BASS_HIGH for n in bass.notes)
    # the same seed gives the same bass line
    again = ["generate", str(setup / "drums.mid"), "--model", "ffnn", "--style", "rock", "--seed", "3",
             "--out", str(setup / "out/again.mid"), "--checkpoint-dir", str(setup / "checkpoints")]
    assert cli.main(again) == 0
    assert notes_of(pretty_midi.PrettyMIDI(str(setup / "out/again.mid")), drum=False) == notes_of(out, drum=False)


def test_generate_k_samples_key_and_wav(setup, capsys):
    wav = shutil.which("fluidsynth") is not None
    args = ["generate", str(setup / "drums.mid"), "--model", "ffnn", "--samples", "2", "--key", "F#m",
            "--checkpoint-dir", str(setup / "checkpoints"), "--classifier", str(setup / "none.npz"),
            "--out", str(setup / "k" / "x.mid"), "--temperature", "1.5"]
    if wav:
        args += ["--wav", str(setup / "k" / "x.wav")]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "F# minor (--key)" in captured.out and "style index 0 used" in captured.err
    one, two = (pretty_midi.PrettyMIDI(str(setup / "k" / f"x-{i}.mid")) for i in (1, 2))
    assert notes_of(one, drum=True) == notes_of(two, drum=True)
    assert notes_of(one, drum=False) != notes_of(two, drum=False)
    if wav:
        with wave.open(str(setup / "k" / "x-1.wav")) as w:
            seconds = w.getnframes() / w.getframerate()
        assert seconds >= 8 * BAR + 9 * 60 / BPM - 0.5  # the whole song is rendered


def test_generate_mbr_keeps_the_consensus_of_n_candidates(setup, tmp_path):
    from dnb.metrics import mbr_select

    base = ["generate", str(setup / "drums.mid"), "--model", "ffnn", "--style", "rock", "--key", "Am", "--seed", "5",
            "--checkpoint-dir", str(setup / "checkpoints")]
    assert cli.main(base + ["--samples", "6", "--out", str(tmp_path / "all.mid")]) == 0
    assert cli.main(base + ["--mbr", "6", "--out", str(tmp_path / "mbr.mid")]) == 0
    candidates = [notes_of(pretty_midi.PrettyMIDI(str(tmp_path / f"all-{i}.mid")), drum=False) for i in range(1, 7)]
    chosen = notes_of(pretty_midi.PrettyMIDI(str(tmp_path / "mbr.mid")), drum=False)
    # the same seed draws the same six candidates; MBR keeps, per window, the one mbr_select picks
    model, _ = generation.load_model("ffnn", setup / "checkpoints")
    score, windows = generation.read_input(setup / "drums.mid")
    genres = generation.style_indices(windows.drums, "rock", ["funk", "rock", "jazz"], setup / "none.npz")
    tokens = generation.sample_windows(model, windows, generation.parse_key("Am"), genres, 33, 6, 1.0, 5)
    picks = mbr_select(tokens)
    per_window = [int(np.flatnonzero((tokens[w] == picks[w]).all(1))[0]) for w in range(len(picks))]

    def in_window(notes, w):
        return [n for n in notes if int(n[0] // (2 * BAR)) == w]

    for w, pick in enumerate(per_window):
        assert in_window(chosen, w) == in_window(candidates[pick], w)
    assert cli.main(base + ["--mbr", "1", "--out", str(tmp_path / "x.mid")]) == 2
    assert cli.main(base + ["--mbr", "4", "--samples", "2", "--out", str(tmp_path / "x.mid")]) == 2


def test_pitch_temperature_keeps_the_notes_while_the_rhythm_varies(setup, tmp_path, capsys):
    """--temperature 1 --pitch-temperature 0.001: four variations start notes at different steps,
    but where two of them start one at the same time it (nearly always) has the same, likeliest pitch."""
    base = ["generate", str(setup / "drums.mid"), "--model", "ffnn", "--style", "rock", "--key", "Am", "--seed", "2",
            "--samples", "4", "--checkpoint-dir", str(setup / "checkpoints")]

    def pitches_by_start(stem: str) -> tuple[list[dict], int]:
        takes = [notes_of(pretty_midi.PrettyMIDI(str(tmp_path / f"{stem}-{i}.mid")), drum=False) for i in range(1, 5)]
        by_start = [{start: pitch for start, _, pitch, _ in notes} for notes in takes]
        return by_start, len({tuple(sorted(b)) for b in by_start})

    def clashes(by_start: list[dict]) -> float:
        """Of the notes two variations start at the same time, the share with different pitches."""
        same = [a[t] != b[t] for i, a in enumerate(by_start) for b in by_start[i + 1 :] for t in set(a) & set(b)]
        return sum(same) / len(same)

    assert cli.main(base + ["--out", str(tmp_path / "warm.mid")]) == 0
    assert cli.main(base + ["--pitch-temperature", "0.001", "--out", str(tmp_path / "split.mid")]) == 0
    warm, warm_rhythms = pitches_by_start("warm")
    split, split_rhythms = pitches_by_start("split")
    assert clashes(warm) > 0.5 and clashes(split) < 0.15  # measured 0.89 and 0.08 (one step with a near-tie)
    assert split_rhythms == 4 and warm_rhythms == 4  # every variation its own rhythm
    assert cli.main(base + ["--pitch-temperature", "0", "--out", str(tmp_path / "x.mid")]) == 2
    assert "--pitch-temperature needs a value > 0" in capsys.readouterr().err


def test_top_p_reaches_the_model_and_a_bad_value_is_one_line(setup, tmp_path, capsys):
    """--top-p 0.01 keeps only the likeliest token at every step: four variations are then one line,
    the greedy line (--temperature 0); at the default top-p 1 they differ."""
    base = ["generate", str(setup / "drums.mid"), "--model", "ffnn", "--style", "rock", "--key", "Am", "--seed", "2",
            "--checkpoint-dir", str(setup / "checkpoints")]

    def lines(stem: str, count: int) -> set:
        names = [f"{stem}-{i}.mid" for i in range(1, count + 1)] if count > 1 else [f"{stem}.mid"]
        return {tuple(notes_of(pretty_midi.PrettyMIDI(str(tmp_path / n)), drum=False)) for n in names}

    assert cli.main(base + ["--samples", "4", "--top-p", "0.01", "--out", str(tmp_path / "cut.mid")]) == 0
    assert cli.main(base + ["--temperature", "0", "--out", str(tmp_path / "greedy.mid")]) == 0
    assert cli.main(base + ["--samples", "4", "--out", str(tmp_path / "warm.mid")]) == 0
    assert lines("cut", 4) == lines("greedy", 1) and len(lines("warm", 4)) == 4
    for bad in (["--top-p", "0"], ["--top-p", "1.5"], ["--top-p", "0.9", "--temperature", "0"]):
        assert cli.main(base + bad + ["--out", str(tmp_path / "x.mid")]) == 2
        assert "--top-p needs 0 < P <= 1" in capsys.readouterr().err
    assert generation.decoding(generation.Settings("ffnn", top_p=0.9)) == Nucleus(1.0, 0.9)
    assert generation.decoding(generation.Settings("ffnn", pitch_temperature=0.5)) == (1.0, 0.5)


def test_parse_key():
    assert generation.parse_key("C") == 0
    assert generation.parse_key("Am") == 21
    assert generation.parse_key("Bb major") == 10
    assert generation.parse_key("f#m") == 18
    with pytest.raises(generation.CliError, match="cannot parse key"):
        generation.parse_key("H dorian")


def write_no_drums(path: Path) -> None:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(90, 60, 0, 10))
    pm.instruments = [piano]
    pm.write(str(path))


def write_waltz(path: Path) -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes = [pretty_midi.Note(100, 36, i * 0.5, i * 0.5 + 0.1) for i in range(48)]
    pm.instruments = [kit]
    pm.write(str(path))


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("unreadable", [], "cannot read"),
        ("missing_file", [], "no such file"),
        ("no_drums", [], "no drums in"),
        ("waltz", [], "no complete 2-bar 4/4 window"),
        ("good", ["--model", "wavenet"], "unknown model 'wavenet'"),
        ("good", ["--model", "cnn"], "missing checkpoint"),
        ("good", ["--model", "knn"], "fitted on the training split"),
        ("good", ["--style", "polka"], "unknown drum style 'polka'"),
    ],
)
def test_errors_are_one_line(setup, tmp_path, capsys, case, extra, message):
    path = tmp_path / f"{case}.mid"
    if case == "unreadable":
        path.write_bytes(b"MThd\x00\x00\x00\x06garbage" + bytes(range(50)))
    elif case == "no_drums":
        write_no_drums(path)
    elif case == "waltz":
        write_waltz(path)
    elif case == "good":
        path = setup / "drums.mid"
    args = ["generate", str(path), "--checkpoint-dir", str(setup / "checkpoints"), "--out", str(tmp_path / "o.mid"),
            "--tensors", str(tmp_path / "no_tensors")]
    args += extra if "--model" in extra else ["--model", "ffnn", *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dnb: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o.mid").exists()


def test_error_in_subprocess_has_no_traceback(setup, tmp_path):
    (tmp_path / "junk.mid").write_bytes(b"not a midi file at all")
    done = run_cli(tmp_path, "junk.mid", "--model", "ffnn")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("dnb: error: cannot read")


def test_generate_with_a_baseline_fitted_on_the_training_split(setup, tmp_path):
    tensors = tmp_path / "tensors"
    tensors.mkdir()
    split = synthetic_split(64, seed=1)
    write_split(tensors / "train.npz", {k: v.numpy() for k, v in split.items()})
    (tensors / "meta.json").write_text('{"styles": ["funk", "rock", "jazz"]}')
    args = ["generate", str(setup / "drums.mid"), "--model", "knn", "--tensors", str(tensors), "--style", "jazz",
            "--out", str(tmp_path / "knn.mid")]
    assert cli.main(args) == 0
    out = pretty_midi.PrettyMIDI(str(tmp_path / "knn.mid"))
    bass = [i for i in out.instruments if not i.is_drum][0]
    starts = np.array([n.start for n in bass.notes])
    assert (np.histogram(starts, bins=np.arange(5) * 2 * BAR)[0] > 0).all()
    # kNN copies training bass lines: every note pitch is one the training split plays
    train_pitches = {p for seq in split["tokens"].numpy() for _, _, p in rep.token_notes(seq)}
    assert {n.pitch for n in bass.notes} <= train_pitches


def test_chords_from_the_file_or_from_chords_drive_a_chord_aware_model(setup, tmp_path, capsys):
    """No --chords: the piano's Am Dm E Am is annotated and followed; --chords "C F G C" is looped per bar,
    sets the key and is written as marker events."""
    import symusic

    tensors = tmp_path / "tensors"
    tensors.mkdir()
    write_split(tensors / "train.npz", {k: v.numpy() for k, v in synthetic_split(64, seed=1).items()})
    (tensors / "meta.json").write_text('{"styles": ["funk", "rock", "jazz"]}')
    base = ["generate", str(setup / "drums.mid"), "--model", "chord_root_on_kick", "--tensors", str(tensors),
            "--style", "rock"]

    def bass_pitch_classes_per_bar(path: Path) -> list[set[int]]:
        bass = [i for i in pretty_midi.PrettyMIDI(str(path)).instruments if not i.is_drum][0]
        return [{n.pitch % 12 for n in bass.notes if bar * BAR <= n.start < (bar + 1) * BAR} for bar in range(8)]

    assert cli.main(base + ["--out", str(tmp_path / "own.mid")]) == 0
    assert "annotated from the file's pitched tracks" in capsys.readouterr().out
    assert bass_pitch_classes_per_bar(tmp_path / "own.mid") == [{9}, {2}, {4}, {9}] * 2  # A, D, E, A
    assert cli.main(base + ["--chords", "C F G C", "--out", str(tmp_path / "cg.mid")]) == 0
    printed = capsys.readouterr().out
    assert "key C major (implied by --chords)" in printed and "chords C F G C (--chords)" in printed
    assert bass_pitch_classes_per_bar(tmp_path / "cg.mid") == [{0}, {5}, {7}, {0}] * 2
    markers = symusic.Score(str(tmp_path / "cg.mid")).markers
    assert [m.text for m in markers] == ["C", "F", "G", "C", "F", "G", "C"]  # where the chord changes
    assert cli.main(base + ["--chords", "Am H7", "--out", str(tmp_path / "x.mid")]) == 2
    assert capsys.readouterr().err.startswith("dnb: error: --chords: ")


def test_an_ablation_run_is_a_model_too(tmp_path):
    """``--model ablation/chords`` loads checkpoints/ablation/chords.pt (whatever its architecture)."""
    drum_song(tmp_path / "drums.mid")
    params = {"hidden": 32, "dropout": 0.0, "conditioning": ["key", "chords"]}
    info = DataInfo(n_styles=1, style_names=["rock"])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck" / "ablation" / "chords.pt", build("ffnn", params, info), "ffnn", params, info)
    args = ["generate", str(tmp_path / "drums.mid"), "--model", "ablation/chords", "--checkpoint-dir",
            str(tmp_path / "ck"), "--chords", "Am F C G", "--classifier", str(tmp_path / "none.npz")]
    assert cli.main(args + ["--out", str(tmp_path / "a.mid")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "b.mid"), "--chords", "E B"]) == 0
    bass = [[(n.start, n.pitch) for i in pretty_midi.PrettyMIDI(str(tmp_path / f)).instruments if not i.is_drum
             for n in i.notes] for f in ("a.mid", "b.mid")]
    assert bass[0] and bass[0] != bass[1]  # the chords reach the model
