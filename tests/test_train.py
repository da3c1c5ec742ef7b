"""The trainer: resume after a kill equals an uninterrupted run, stale resume files are
ignored, dvclive curves are written, and the CLI runs the ablation from params.yaml."""

import json
import math
import shutil

import torch
import yaml

from dnb.data import iterate_batches, synthetic_split
from dnb.schema import FIELDS, DataInfo
from dnb.tensors import write_split
from models.checkpoint import load_trained, read_checkpoint
from pipeline import train as trainer

torch.set_num_threads(1)
INFO = DataInfo(n_styles=3)
TRAIN, VAL = synthetic_split(48, seed=0), synthetic_split(16, seed=1)
PARAMS = {
    "seed": 0,
    "threads": 1,
    "batch_size": 16,
    "lr": 0.003,
    "max_epochs": 2,
    "patience": 5,
    "max_minutes": 0,
    "max_train_pairs": 0,
    "conditioning": ["tempo", "key"],
    "hidden": 32,
    "dropout": 0.2,
}


def run(tmp, params, fresh_outputs=True):
    """One `dvc repro` of the stage: DVC deletes the non-persistent outputs first."""
    if fresh_outputs:
        shutil.rmtree(tmp / "live", ignore_errors=True)
        (tmp / "m.pt").unlink(missing_ok=True)
    result = trainer.train(
        "ffnn", params, TRAIN, VAL, INFO, tmp / "m.pt", tmp / "m.resume.pt", tmp / "live", progress=False
    )
    return result, read_checkpoint(tmp / "m.pt")


def tsv_values(path):
    rows = path.read_text().strip().splitlines()[1:]
    return [float(r.split("\t")[-1]) for r in rows]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    whole, whole_ckpt = run(tmp_path / "whole", PARAMS)
    assert whole["epochs"] == 2 and whole["stopped"] == "max_epochs"
    assert whole["pairs_presented"] == 2 * len(TRAIN["tokens"]) and whole["stopped_early"] == 0  # the compute
    # "killed" after epoch 1, then `dvc repro` again with the real params
    first, _ = run(tmp_path / "split", {**PARAMS, "max_epochs": 1})
    assert first["epochs"] == 1 and (tmp_path / "split/m.resume.pt").exists()
    resumed, resumed_ckpt = run(tmp_path / "split", PARAMS)
    assert resumed["epochs"] == 2 and resumed["pairs_presented"] == whole["pairs_presented"]  # counted across the kill
    assert_same_weights(whole_ckpt["state_dict"], resumed_ckpt["state_dict"])
    assert whole_ckpt["extra"] == {**resumed_ckpt["extra"], "wall_seconds": whole_ckpt["extra"]["wall_seconds"]}
    for name in ("train_loss", "val_loss"):
        curve = tsv_values(tmp_path / "whole/live/plots/metrics" / f"{name}.tsv")
        assert len(curve) == 2 and all(math.isfinite(v) for v in curve)
        assert curve == tsv_values(tmp_path / "split/live/plots/metrics" / f"{name}.tsv")
    summary = json.loads((tmp_path / "split/live/metrics.json").read_text())
    assert summary["epochs"] == 2 and summary["best_val_loss"] == min(curve)
    model = load_trained(tmp_path / "split/m.pt")
    assert trainer.validate(model, VAL) == resumed_ckpt["extra"]["best_val_loss"]


def test_resume_file_from_other_params_is_ignored(tmp_path):
    whole, whole_ckpt = run(tmp_path / "whole", PARAMS)
    run(tmp_path / "stale", {**PARAMS, "max_epochs": 1, "lr": 0.01})
    again, again_ckpt = run(tmp_path / "stale", PARAMS)
    assert again["epochs"] == 2
    assert_same_weights(whole_ckpt["state_dict"], again_ckpt["state_dict"])
    one, one_ckpt = run(tmp_path / "one", {**PARAMS, "max_epochs": 1})
    shorter, shorter_ckpt = run(tmp_path / "stale", {**PARAMS, "max_epochs": 1})  # a resume file cannot rewind
    assert shorter["epochs"] == 1
    assert_same_weights(one_ckpt["state_dict"], shorter_ckpt["state_dict"])


def test_finished_run_repeated_only_rewrites_its_outputs(tmp_path):
    _, ckpt = run(tmp_path, PARAMS)
    result, again = run(tmp_path, PARAMS)  # e.g. `dvc repro -f`: nothing left to train
    assert result["epochs"] == 2
    assert_same_weights(ckpt["state_dict"], again["state_dict"])
    assert len(tsv_values(tmp_path / "live/plots/metrics/val_loss.tsv")) == 2


def test_cap_pairs_and_unigram_entropy():
    capped = trainer.cap_pairs(TRAIN, 10, seed=0)
    assert capped["tokens"].shape[0] == 10
    assert torch.equal(capped["tokens"], trainer.cap_pairs(TRAIN, 10, seed=0)["tokens"])
    assert trainer.cap_pairs(TRAIN, 0, seed=0) is TRAIN
    tokens = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 2]])
    assert abs(trainer.unigram_entropy(tokens) - (-0.25 * math.log(0.25) * 2 - 0.5 * math.log(0.5))) < 1e-12


def test_epoch_batches_draw_epoch_pairs_or_a_full_pass():
    def drawn(epoch_pairs, seed):
        gen = torch.Generator().manual_seed(seed)
        return [b["tokens"] for b in iterate_batches(TRAIN, 16, shuffle=True, generator=gen, limit=epoch_pairs)]

    full = drawn(0, 0)
    assert [len(b) for b in full] == [16, 16, 16]
    assert sorted(map(tuple, torch.cat(full).tolist())) == sorted(map(tuple, TRAIN["tokens"].tolist()))
    gen = torch.Generator().manual_seed(0)  # a full pass is the old shuffled iteration, batch for batch
    old = [b["tokens"] for b in iterate_batches(TRAIN, 16, shuffle=True, generator=gen)]
    assert all(torch.equal(a, b) for a, b in zip(full, old, strict=True))
    short = drawn(20, 0)
    assert [len(b) for b in short] == [16, 4] and torch.equal(torch.cat(short), torch.cat(full)[:20])
    assert not torch.equal(torch.cat(drawn(20, 1)), torch.cat(short))


def test_cli_ablation_tag_reads_its_conditioning(tmp_path, monkeypatch):
    tensors = tmp_path / "data/tensors"
    tensors.mkdir(parents=True)
    for split, data in (("train", TRAIN), ("val", VAL)):
        write_split(tensors / f"{split}.npz", {k: data[k].numpy() for k in FIELDS})
    (tensors / "meta.json").write_text(json.dumps({"styles": ["a", "b", "c"], "keys": [], "songs": []}))
    section = {
        "common": {**PARAMS, "max_epochs": 1},
        "ffnn": {"hidden": 16},
        "ablation": {"none": [], "key": ["tempo", "program", "key"]},
        "ablation_params": {"hidden": 8},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": section}))
    monkeypatch.chdir(tmp_path)
    trainer.main(["ffnn", "--tag", "key"])
    ckpt = read_checkpoint(tmp_path / "checkpoints/ablation/key.pt")
    assert ckpt["params"]["conditioning"] == ["tempo", "program", "key"] and ckpt["params"]["hidden"] == 8
    assert ckpt["info"]["style_names"] == ["a", "b", "c"]
    assert (tmp_path / "dvclive/ablation/key/plots/metrics/val_loss.tsv").exists()
    trainer.main(["ffnn"])
    plain_run = read_checkpoint(tmp_path / "checkpoints/ffnn.pt")["params"]
    assert plain_run["conditioning"] == ["tempo", "key"] and plain_run["hidden"] == 16  # no ablation override
