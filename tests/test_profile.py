"""dnb.profile: the printed `-S` lines survive xargs and DVC's Hydra override parser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnb import profile

ROOT = Path(__file__).resolve().parents[1]
ODD = "/data/my corpus,v2/it's=ok.tar.gz"  # blank, comma (a Hydra sweep), quote, '='


def test_overrides_are_exact():
    lines = profile.overrides("large", ODD)
    assert lines[:3] == ["++train.common.max_minutes=20.0", "++train.common.max_train_pairs=0",
                         "++train.common.epoch_pairs=20000"]
    assert not any(line.startswith("++train.") and ("threads" in line or "processes" in line) for line in lines)
    assert "++train.common.min_improvement=0.01" in lines and "++evaluate.max_pairs_per_song=4" in lines
    assert "++train.seeds.ablations=['recall','chords']" in lines
    assert lines[-1] == "++extract.corpora.ultimate='/data/my corpus,v2/it\\'s=ok.tar.gz'"
    assert len(lines) == len(profile.PROFILES["large"]) + 1
    assert profile.overrides("large", "rel/dir", corpus_name="lakh")[-1] == f"++extract.corpora.lakh='{ROOT}/rel/dir'"
    assert profile.hydra_value([1, "a b", True]) == "[1,'a b',true]"
    with pytest.raises(KeyError, match="unknown profile"):
        profile.overrides("huge")


def test_lines_survive_xargs_and_dvc_set_param(tmp_path):
    corpus = tmp_path / "my corpus,v2" / "it's=ok"
    corpus.mkdir(parents=True)
    printed = subprocess.run(
        [sys.executable, "-m", "dnb.profile", "large", "--corpus", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    n = len(profile.PROFILES["large"]) + 1
    assert len(printed.splitlines()) == n and all(line.startswith("-S ") for line in printed.splitlines())
    echo = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
    argv = json.loads(subprocess.run(["xargs", *echo], input=printed, capture_output=True, text=True).stdout)
    assert argv[0::2] == ["-S"] * n and argv[1::2] == profile.overrides("large", str(corpus))

    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = yaml.safe_load(params.read_text())
    for _ in range(2):  # ++ adds the corpus the first time and overwrites it the second
        apply_overrides(params, argv[1::2])
        after = yaml.safe_load(params.read_text())
        assert after["extract"]["corpora"] == before["extract"]["corpora"] | {"ultimate": str(corpus)}
        assert after["train"]["common"]["max_minutes"] == 20.0
        assert after["train"]["common"]["epoch_pairs"] == 20_000
        assert after["train"]["ablation_params"] == before["train"]["ablation_params"]
        assert after["train"]["common"]["patience"] == 1 and after["train"]["common"]["min_improvement"] == 0.01
        assert after["train"]["transformer"]["max_epochs"] == 30
        assert after["train"]["ffnn"]["epoch_pairs"] == 100_000
        assert after["train"]["seeds"]["ablations"] == ["recall", "chords"]
        assert after["train"]["transformer"]["d_model"] == before["train"]["transformer"]["d_model"]
        assert after["evaluate"]["max_pairs_per_song"] == 4
        assert after["train"]["common"]["batch_size"] == before["train"]["common"]["batch_size"]
        assert {k: v for k, v in after.items() if k not in ("extract", "train", "evaluate", "songs")} == {
            k: v for k, v in before.items() if k not in ("extract", "train", "evaluate", "songs")
        }


def test_missing_corpus_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dnb.profile", "large", "--corpus", str(tmp_path / "nope")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2 and "corpus not found" in result.stderr and result.stdout == ""
