"""Outside the repository: checkpoints, classifier and tensors found by flag, environment, the
installed repository, then the current folder; a missing checkpoint says how to get one."""

from pathlib import Path

import pytest
import symusic

from dnb.schema import DataInfo
from models import build
from models.checkpoint import save_checkpoint
from producer import cli, paths


def tiny_checkpoint(folder: Path, name: str = "ffnn") -> None:
    params = {"hidden": 16, "dropout": 0.0, "conditioning": ["tempo", "program", "key", "style"], "seed": 0}
    info = DataInfo(n_styles=1, style_names=["rock"])
    save_checkpoint(folder / f"{name}.pt", build(name, params, info), name, params, info)


def drum_file(path: Path) -> None:
    score = symusic.Score(96)
    kit = symusic.Track("kit", 0, True)
    for beat in range(16):  # 4 bars of kick / snare
        kit.notes.append(symusic.Note(beat * 96, 24, 36 if beat % 2 == 0 else 38, 100))
    score.tracks.append(kit)
    score.dump_midi(str(path))


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A current folder outside any repository, a fake installed repository, no DNB_* variables."""
    for var in paths.ENV.values():
        monkeypatch.delenv(var, raising=False)
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    monkeypatch.setattr(paths, "install_root", lambda: repo)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    drum_file(work / "drums.mid")
    return tmp_path


def test_resolve_order(elsewhere, monkeypatch):
    repo = elsewhere / "repo"
    assert paths.resolve("checkpoints") == (Path("checkpoints"), "the current folder")
    (repo / "checkpoints").mkdir()
    assert paths.resolve("checkpoints")[0] == repo / "checkpoints"
    assert paths.resolve("classifier")[0] == Path("data/style_classifier.npz")  # the repository has none
    monkeypatch.setenv("DNB_CHECKPOINTS", "/from/env")
    assert paths.resolve("checkpoints") == (Path("/from/env"), "$DNB_CHECKPOINTS")
    assert paths.resolve("checkpoints", "given") == (Path("given"), "--checkpoint-dir")


def test_generate_from_another_folder(elsewhere, monkeypatch, capsys):
    args = ["generate", "drums.mid", "--model", "ffnn", "--style", "rock", "--out", "out.mid"]
    tiny_checkpoint(elsewhere / "repo" / "checkpoints")  # found in the installed repository
    assert cli.main(args) == 0 and Path("out.mid").exists()
    monkeypatch.setenv("DNB_CHECKPOINTS", str(elsewhere / "mine"))  # the environment comes first
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"missing checkpoint {elsewhere / 'mine' / 'ffnn.pt'} (checkpoints from $DNB_CHECKPOINTS)" in err
    tiny_checkpoint(elsewhere / "mine")
    assert cli.main(args + ["--out", "again.mid"]) == 0


def test_missing_checkpoint_says_how_to_get_one(elsewhere, capsys):
    args = ["generate", "drums.mid", "--model", "cnn", "--style", "rock"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "missing checkpoint checkpoints/cnn.pt (checkpoints from the current folder)" in err
    assert "get it with `make reproduce` (no DVC remote is configured" in err and "\n" not in err
    config = elsewhere / "repo" / ".dvc" / "config"
    config.write_text(config.read_text() + "['remote \"storage\"']\n    url = /somewhere\n")
    assert cli.main(args) == 2
    assert "`dvc pull checkpoints/cnn.pt` (a DVC remote is configured)" in capsys.readouterr().err
    assert cli.main(["generate", "drums.mid", "--model", "knn", "--style", "rock"]) == 2
    assert "data/tensors/train.npz is missing (tensors from the current folder)" in capsys.readouterr().err
