"""Adding a model is one file in models/ and one name in params.yaml: it is trained, evaluated and
typeset with no other edit (run on a temporary copy of the registry, in subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from dnb.data import synthetic_split
from dnb.tensors import write_split

ROOT = Path(__file__).resolve().parents[1]
DUMMY = '''"""A test architecture: the ffnn under another name."""

from models.ffnn import Ffnn


class Dummy(Ffnn):
    name = "dummy"
'''


def run(cwd: Path, *module: str) -> None:
    # cwd first (the copied models/ with the new file), then this checkout's dnb/ and pipeline/
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", *module], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{' '.join(module)} failed:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"


def test_a_new_model_file_and_name_reach_evaluate_and_the_tables(tmp_path):
    shutil.copytree(ROOT / "models", tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "models" / "dummy.py").write_text(DUMMY)
    tensors = tmp_path / "data" / "tensors"
    tensors.mkdir(parents=True)
    for split, (n, seed) in {"train": (96, 0), "val": (32, 1), "test": (32, 2)}.items():
        arrays = {k: v.numpy() for k, v in synthetic_split(n, seed=seed).items()}
        arrays["song"] = arrays["song"] + 1000 * seed
        write_split(tensors / f"{split}.npz", arrays)
    (tensors / "meta.json").write_text(json.dumps({"styles": ["a", "b", "c"]}))
    for report in ("stats", "extract_report", "annotate_report"):
        (tmp_path / "data" / f"{report}.json").write_text("{}")

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"], params["model"], params["baselines"] = ["ffnn", "dummy"], "dummy", ["silence", "bigram"]
    params["train"]["common"].update(max_epochs=1, batch_size=32, threads=1)
    params["train"].update(ablation_model="ffnn", ablation={"none": []},
                           seeds={"models": ["dummy"], "ablations": ["none"], "extra": [1]})
    params["evaluate"].update(bootstrap=20, threads=1, samples=2, mbr_samples=2, diversity_max_pairs=8,
                              compare_baselines=["bigram"], roll_loops=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    run(tmp_path, "pipeline.train", "dummy")
    run(tmp_path, "pipeline.train", "ffnn")
    run(tmp_path, "pipeline.train", "ffnn", "--tag", "none")
    run(tmp_path, "pipeline.train", "dummy", "--seed", "1")
    run(tmp_path, "pipeline.train", "ffnn", "--tag", "none", "--seed", "1")
    run(tmp_path, "pipeline.evaluate")
    dummy = json.loads((tmp_path / "metrics" / "dummy.json").read_text())
    assert dummy["status"] == "ok" and dummy["metrics"]["perplexity"]["value"] > 1
    assert json.loads((tmp_path / "metrics.json").read_text())["name"] == "dummy"
    assert "dummy" in json.loads((tmp_path / "metrics" / "comparisons.json").read_text())
    seeds = json.loads((tmp_path / "metrics" / "seeds.json").read_text())["runs"]
    assert seeds["dummy"]["status"] == {"0": "ok", "1": "ok"} and seeds["ablation_none"]["status"]["1"] == "ok"
    ppl = seeds["dummy"]["metrics"]["perplexity"]
    assert ppl["values"]["0"] == dummy["metrics"]["perplexity"]["value"] and ppl["n"] == 2

    params["songs"].update(bootstrap=20, threads=1, max_windows=4, temperatures=[1.0])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run(tmp_path, "pipeline.songs")
    song = json.loads((tmp_path / "songs" / "dummy.json").read_text())
    assert song["status"] == "ok"
    # the extra seeds write whole songs too, each at its own validation-chosen decoding
    song_seeds = json.loads((tmp_path / "songs" / "seeds.json").read_text())["runs"]
    assert song_seeds["dummy"]["status"] == {"0": "ok", "1": "ok"}
    assert song_seeds["ablation_none"]["status"]["1"] == "ok"
    line = song_seeds["dummy"]["metrics"]["identical_line_rate"]
    assert line["values"]["0"] == song["metrics"]["identical_line_rate"]["value"] and line["n"] == 2
    assert song_seeds["dummy"]["temperature"] == {"0": "1", "1": "1"}
    assert set(song_seeds["dummy"]["test_target_gap"]) == {"0", "1"}
    assert all(g >= 0 for g in song_seeds["dummy"]["test_target_gap"].values())
    run(tmp_path, "pipeline.tables")
    generated = tmp_path / "paper" / "generated"
    main = (generated / "table_main.tex").read_text()
    row = next(line for line in main.splitlines() if line.startswith("dummy &"))
    assert f"{dummy['metrics']['perplexity']['value']:.2f}" in row
    assert r"\newcommand{\dummyPerplexity}" in (generated / "macros.tex").read_text()
    assert next(line for line in (generated / "table_seeds.tex").read_text().splitlines()
                if line.startswith("dummy & PPL & 2 &"))
    assert (generated / "figures" / "piano_rolls.png").stat().st_size > 0
