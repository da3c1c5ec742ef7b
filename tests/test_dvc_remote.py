"""A DVC remote carries a checkpoint to a fresh clone: `dvc push` from one repository, `git clone` +
`dvc pull` elsewhere, and `dnb generate` runs there without any training (and without data/tensors).

Everything happens in a temporary git + DVC repository with a local-directory remote (what
`dvc remote add -d` with S3 or SSH does too, minus the network); analytics, update checks
and the global and system DVC and git configs stay out of it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest

from dnb.schema import DataInfo
from models import build
from models.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"seed": 0, "hidden": 16, "dropout": 0.0, "conditioning": ["tempo", "program", "key", "style"]}


def drum_file(path: Path, bars: int = 5, bpm: float = 110.0) -> None:
    """Kick on 1 and 3, snare on 2 and 4, eighth-note hats: ``bars`` bars of 4/4."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    eighth = 30.0 / bpm
    for i in range(bars * 8):
        t = i * eighth
        for key in [42] + ([36] if i % 4 == 0 else []) + ([38] if i % 4 == 2 else []):
            kit.notes.append(pretty_midi.Note(100, key, t, t + eighth / 2))
    pm.instruments.append(kit)
    pm.write(str(path))


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        # this work tree's code, whatever checkout an editable install points at
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def sh(env: dict, cwd: Path, *cmd: str) -> str:
    done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout + done.stderr


def dvc(env: dict, cwd: Path, *args: str) -> str:
    return sh(env, cwd, sys.executable, "-m", "dvc", *args)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_push_clone_pull_generate(tmp_path, env):
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"
    origin.mkdir()
    sh(env, origin, "git", "init", "-q")
    dvc(env, origin, "init", "-q")
    with open(origin / ".dvc" / "config", "a") as config:  # what the project's .dvc/config says
        config.write("[core]\n    analytics = false\n    check_update = false\n")
    info = DataInfo(n_styles=2, style_names=["rock", "funk"])
    ckpt = origin / "checkpoints" / "ffnn.pt"
    save_checkpoint(ckpt, build("ffnn", PARAMS, info), "ffnn", PARAMS, info)  # untrained: no training anywhere
    dvc(env, origin, "add", "-q", "checkpoints/ffnn.pt")
    dvc(env, origin, "remote", "add", "-d", "store", str(remote))
    sh(env, origin, "git", "add", ".dvc/config", "checkpoints/ffnn.pt.dvc", "checkpoints/.gitignore")
    sh(env, origin, "git", "commit", "-q", "-m", "checkpoint tracked by DVC, default remote")
    assert "1 file pushed" in dvc(env, origin, "push")

    sh(env, tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "checkpoints" / "ffnn.pt").exists()  # git has only the .dvc pointer
    dvc(env, clone, "pull")
    assert (clone / "checkpoints" / "ffnn.pt").read_bytes() == ckpt.read_bytes()
    assert not (clone / "data").exists()  # a neural model needs no data/tensors to generate

    drum_file(clone / "drums.mid")
    out = sh(env, clone, sys.executable, "-m", "producer.cli", "generate", "drums.mid", "--model", "ffnn",
             "--checkpoint-dir", "checkpoints", "--style", "funk", "--out", "bass.mid")
    assert "2 windows" in out and "model ffnn" in out  # bars 1-2 and 3-4 (the 5th completes no window)
    bass = pretty_midi.PrettyMIDI(str(clone / "bass.mid"))
    assert [i.is_drum for i in bass.instruments] == [True, False]
