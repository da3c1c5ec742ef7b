"""`dnb generate` writes a song with context: each window conditioned on the line it has just
written for the window before (``models.base.sample_song``), K whole-song chains, window by
window MBR, ``--no-context``, progress for long files, and a tiny transformer trained with the
previous window end to end."""

from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

from dnb import representation as rep
from dnb.schema import DataInfo, previous_rows
from models import build
from models.base import BassGenerator, chain_depths
from models.checkpoint import save_checkpoint
from producer import cli
from producer import generate as generation

TPQ = 480
BAR = 4 * TPQ  # ticks of a 4/4 bar at 120 bpm
GAP_FILE = [(4, 4), (2, 3), (6, 4)]  # (bars, beats per bar): 2 windows, a 3/4 gap, 3 windows
PREVIOUS = [-1, 0, -1, 2, 3]  # the windows' previous windows in GAP_FILE


def drum_file(path: Path, stretches=GAP_FILE) -> list[int]:
    """Kick and snare on every beat, in ``stretches`` of (bars, beats per bar); the window start ticks of its 4/4."""
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, 120.0))
    kit = symusic.Track("kit", 0, True)
    t, starts = 0, []
    for bars, beats in stretches:
        score.time_signatures.append(symusic.TimeSignature(t, beats, 4))
        if beats == 4:
            starts += [t + 2 * BAR * w for w in range(bars // 2)]
        for beat in range(bars * beats):
            kit.notes.append(symusic.Note(t + beat * TPQ, TPQ, 36 if beat % 2 == 0 else 38, 100))  # to the end
        t += bars * beats * TPQ
    score.tracks.append(kit)
    score.dump_midi(str(path))
    return starts


def line(value: int) -> torch.Tensor:
    """A one-note line: onset of pitch index ``value`` on the first step, held to the end of the window."""
    out = torch.full((rep.BASS_STEPS,), rep.SUSTAIN, dtype=torch.long)
    out[0] = rep.ONSET_OFFSET + value
    return out


def value_of(tokens) -> int:
    return int(tokens[0]) - rep.ONSET_OFFSET


class Counter(BassGenerator):
    """Takes the previous window and writes "one more" than it: a line's value is the previous
    line's value + 1, or a seeded random start (0..19) at a window without a previous one.
    Every call's batch is recorded."""

    name = "counter"

    def __init__(self, takes_previous: bool = True):
        self.takes_previous = takes_previous
        self.calls: list[dict] = []

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        self.calls.append({name: value.clone() for name, value in batch.items()} | {"k": k})
        size = batch["drums"].shape[0]
        start = torch.randint(0, 20, (size, k), generator=generator)
        has = batch["has_prev"].bool()
        prev = batch["prev_tokens"][:, 0].long() - rep.ONSET_OFFSET + 1
        values = torch.where(has[:, None], prev[:, None].expand(size, k), start)
        return torch.stack([torch.stack([line(int(v)) for v in row]) for row in values])


class Majority(Counter):
    """Of its k candidates, three are "one more" than the previous line (0 without one) and the
    others are outliers (20 + i), the first among them: MBR keeps one of the three."""

    def sample(self, batch, k=1, temperature=1.0, generator=None):
        self.calls.append({name: value.clone() for name, value in batch.items()} | {"k": k})
        has = batch["has_prev"].bool()
        base = torch.where(has, batch["prev_tokens"][:, 0].long() - rep.ONSET_OFFSET + 1, 0)
        values = [[int(b) if i in (1, 2, 3) else 20 + i for i in range(k)] for b in base]
        return torch.stack([torch.stack([line(v) for v in row]) for row in values])


def pitches_per_window(path: Path, starts: list[int]) -> list[int]:
    """The pitch index of the one bass note of each window of a file written from a ``Counter``."""
    notes = symusic.Score(str(path)).tracks[-1].notes.numpy()
    assert sorted(notes["time"].tolist()) == starts  # one note per window, at its start
    return (notes["pitch"][np.argsort(notes["time"])] - rep.BASS_LOW).tolist()


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """``dnb generate --model counter`` with a ``Counter`` (or what ``use`` puts in the box), on GAP_FILE."""
    box = {"model": Counter()}
    monkeypatch.setattr(generation, "load_model", lambda *args, **kwargs: (box["model"], ["rock"]))
    starts = drum_file(tmp_path / "gap.mid")

    def run(*extra: str, out: str = "out.mid", file: str = "gap.mid") -> int:
        return cli.main(["generate", str(tmp_path / file), "--model", "counter", "--style", "rock", "--key", "Am",
                         "--out", str(tmp_path / out), *extra])

    return box, run, starts, tmp_path


def test_previous_rows_of_a_file_with_a_gap_in_another_metre(tmp_path):
    starts = drum_file(tmp_path / "gap.mid")
    score, windows = generation.read_input(tmp_path / "gap.mid")
    assert windows.start_ticks.tolist() == starts
    assert previous_rows(windows.start_ticks, rep.QUARTERS_PER_WINDOW * TPQ).tolist() == PREVIOUS
    assert chain_depths(np.array(PREVIOUS)).tolist() == [0, 1, 0, 1, 2]


def test_each_window_is_conditioned_on_the_line_just_written(fake):
    box, run, starts, tmp = fake
    assert run("--seed", "4") == 0
    got = pitches_per_window(tmp / "out.mid", starts)
    a, b = got[0], got[2]
    assert got == [a, a + 1, b, b + 1, b + 2]  # the chain restarts after the 3/4 gap
    calls = box["model"].calls
    assert [len(c["has_prev"]) for c in calls] == [2, 2, 1]  # one step per chain level: windows (0, 2), (1, 3), (4,)
    assert [c["has_prev"].tolist() for c in calls] == [[0, 0], [1, 1], [1]]
    assert [value_of(t) for t in calls[1]["prev_tokens"]] == [a, b]  # its own lines, not the file's (it has none)
    assert value_of(calls[2]["prev_tokens"][0]) == b + 1
    _, windows = generation.read_input(tmp / "gap.mid")
    drums = torch.as_tensor(windows.drums, dtype=torch.float32)
    assert torch.equal(calls[1]["prev_drums"], drums[[0, 2]]) and torch.equal(calls[2]["prev_drums"], drums[[3]])
    assert not calls[0]["prev_drums"].any() and not calls[0]["prev_tokens"].any()


def test_summary_says_whether_context_is_used(fake, capsys):
    box, run, _, _ = fake
    assert run() == 0
    assert capsys.readouterr().out.startswith("5 windows, key A minor (--key)")
    assert run() == 0 and ", context: on: wrote " in capsys.readouterr().out
    assert run("--no-context") == 0 and ", context: off: wrote " in capsys.readouterr().out
    box["model"] = Counter(takes_previous=False)
    assert run() == 0 and ", context: off (model has none): wrote " in capsys.readouterr().out
    assert capsys.readouterr().err == ""


def test_no_context_samples_every_window_independently(fake):
    box, run, starts, tmp = fake
    assert run("--no-context", "--seed", "4") == 0
    calls = box["model"].calls
    assert len(calls) == 1 and calls[0]["has_prev"].tolist() == [0] * 5  # one batch, no previous window
    got = pitches_per_window(tmp / "out.mid", starts)
    assert got != [got[0], got[0] + 1, got[2], got[2] + 1, got[2] + 2]  # seed 4: independent random starts
    # a model without the previous window gets the same independent batch, and the same draws, with context on
    box["model"] = Counter(takes_previous=False)
    assert run("--seed", "4", out="none.mid") == 0
    assert len(box["model"].calls) == 1 and box["model"].calls[0]["has_prev"].tolist() == [0] * 5
    assert pitches_per_window(tmp / "none.mid", starts) == got


def test_k_variations_are_independent_chains_and_seeded(fake):
    box, run, starts, tmp = fake
    assert run("--samples", "3", "--seed", "1") == 0
    songs = [pitches_per_window(tmp / f"out-{i}.mid", starts) for i in (1, 2, 3)]
    for got in songs:  # every file is a chain of its own
        a, b = got[0], got[2]
        assert got == [a, a + 1, b, b + 1, b + 2], songs
    assert len({(s[0], s[2]) for s in songs}) == 3, songs  # three different songs (seed 1)
    calls = box["model"].calls
    assert [len(c["has_prev"]) for c in calls] == [6, 6, 3] and all(c["k"] == 1 for c in calls)  # rows x chains
    assert [value_of(t) for t in calls[1]["prev_tokens"]] == [s[w] for w in (0, 2) for s in songs]
    assert run("--samples", "3", "--seed", "1", out="again.mid") == 0
    assert [pitches_per_window(tmp / f"again-{i}.mid", starts) for i in (1, 2, 3)] == songs  # same seed, same songs
    assert run("--samples", "3", "--seed", "2", out="other.mid") == 0
    assert [pitches_per_window(tmp / f"other-{i}.mid", starts) for i in (1, 2, 3)] != songs


def test_mbr_with_context_goes_window_by_window(fake):
    box, run, starts, tmp = fake
    box["model"] = Majority()
    assert run("--mbr", "5") == 0
    assert pitches_per_window(tmp / "out.mid", starts) == [0, 1, 0, 1, 2]  # the consensus, chained
    calls = box["model"].calls
    assert [(len(c["has_prev"]), c["k"]) for c in calls] == [(2, 5), (2, 5), (1, 5)]  # N candidates per window
    assert [value_of(t) for t in calls[1]["prev_tokens"]] == [0, 0]  # the chosen line, not the first candidate (20)
    assert value_of(calls[2]["prev_tokens"][0]) == 1
    box["model"] = Majority()
    assert run("--mbr", "5", "--no-context", out="flat.mid") == 0
    assert pitches_per_window(tmp / "flat.mid", starts) == [0] * 5
    assert len(box["model"].calls) == 1 and box["model"].calls[0]["k"] == 5


def test_progress_bar_for_a_long_file(fake, capsys):
    _, run, _, tmp = fake
    drum_file(tmp / "long.mid", [(40, 4)])  # 20 windows in one 4/4 stretch: 20 chain levels
    assert run(file="long.mid") == 0
    err = capsys.readouterr().err
    assert "dnb: bass" in err and "20/20" in err
    assert run("--no-context", file="long.mid") == 0  # one batched step: no bar
    assert capsys.readouterr().err == ""
    assert run() == 0  # 5 windows: no bar
    assert capsys.readouterr().err == ""


def test_a_tiny_transformer_trained_with_the_previous_window(tmp_path, capsys):
    """End to end with a real checkpoint: it takes the previous window, each window's context is
    the line written for the window before, and the same seed gives the same songs."""
    torch.manual_seed(0)
    info = DataInfo(n_styles=3, style_names=["funk", "rock", "jazz"])
    params = {"conditioning": ["previous"], "d_model": 16, "heads": 2, "layers": 1, "ff": 32}
    save_checkpoint(tmp_path / "ck" / "transformer.pt", build("transformer", params, info), "transformer", params, info)
    drum_file(tmp_path / "gap.mid")
    base = ["generate", str(tmp_path / "gap.mid"), "--model", "transformer", "--checkpoint-dir", str(tmp_path / "ck"),
            "--style", "rock", "--samples", "2", "--seed", "7"]
    assert cli.main(base + ["--out", str(tmp_path / "a.mid")]) == 0
    assert ", context: on: wrote " in capsys.readouterr().out
    assert cli.main(base + ["--out", str(tmp_path / "b.mid")]) == 0
    assert cli.main(base + ["--no-context", "--out", str(tmp_path / "c.mid")]) == 0
    assert ", context: off: wrote " in capsys.readouterr().out.splitlines()[-1]

    def bass(name):
        return symusic.Score(str(tmp_path / name)).tracks[-1].notes.numpy()

    for i in (1, 2):
        assert len(bass(f"a-{i}.mid")["time"]) > 0
        for column in ("time", "duration", "pitch", "velocity"):
            np.testing.assert_array_equal(bass(f"a-{i}.mid")[column], bass(f"b-{i}.mid")[column])
    assert any(len(bass(f"a-{i}.mid")["time"]) != len(bass(f"c-{i}.mid")["time"])
               or (bass(f"a-{i}.mid")["pitch"] != bass(f"c-{i}.mid")["pitch"]).any() for i in (1, 2))

    model, names = generation.load_model("transformer", tmp_path / "ck")
    assert model.takes_previous and names == ["funk", "rock", "jazz"]
    calls, sample = [], model.sample

    def spy(batch, k=1, temperature=1.0, generator=None):
        out = sample(batch, k=k, temperature=temperature, generator=generator)
        calls.append((batch["has_prev"].tolist(), batch["prev_tokens"].clone(), out[:, 0].clone()))
        return out

    model.sample = spy
    score, windows = generation.read_input(tmp_path / "gap.mid")
    settings = generation.Settings(model="transformer", samples=2, style="rock", seed=7)
    song = generation.arrange(score, windows, model, names, settings, tmp_path / "none.npz")
    assert song.context_note == "on" and song.tokens.shape == (5, 2, rep.BASS_STEPS)
    assert [c[0] for c in calls] == [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1]]  # rows (0, 2) x 2 chains, (1, 3) x 2, 4 x 2
    tokens = torch.as_tensor(song.tokens)
    assert torch.equal(calls[1][1], tokens[[0, 2]].reshape(-1, rep.BASS_STEPS))  # each chain's own previous line
    assert torch.equal(calls[2][1], tokens[3])
    assert torch.equal(calls[2][2], tokens[4])
    for i in (1, 2):  # the file written by `dnb generate` is this arrangement
        np.testing.assert_array_equal(song.midi(i - 1).tracks[-1].notes.numpy()["pitch"], bass(f"a-{i}.mid")["pitch"])
