"""The trainer: resume after a kill equals an uninterrupted run, stale resume files are
ignored, dvclive curves are written, and the CLI runs the ablation from params.yaml."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dnb.data import iterate_batches, synthetic_split
from dnb.schema import FIELDS, DataInfo
from dnb.tensors import write_split
from models.checkpoint import load_trained, read_checkpoint
from pipeline import train as trainer

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
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
    # an extra seed of either run: its very params with only the seed changed, in checkpoints/seeds/<run>
    trainer.main(["ffnn", "--tag", "key", "--seed", "3"])
    seeded = read_checkpoint(tmp_path / "checkpoints/seeds/ablation/key/seed3.pt")["params"]
    assert seeded == {**ckpt["params"], "seed": 3} and ckpt["params"]["seed"] == 0
    assert (tmp_path / "checkpoints/seeds/ablation/key/seed3.resume.pt").exists()
    assert (tmp_path / "dvclive/seeds/ablation/key/seed3/plots/metrics/val_loss.tsv").exists()
    trainer.main(["ffnn", "--seed", "2"])
    assert read_checkpoint(tmp_path / "checkpoints/seeds/ffnn/seed2.pt")["params"] == {**plain_run, "seed": 2}


def test_run_params_of_an_extra_seed_are_the_runs_params_with_that_seed():
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    section["ablation_params"] = {"max_epochs": 2, "seed": 7}  # the seed option wins over the override
    main = trainer.run_params(section, "transformer", tag="previous")
    assert main["conditioning"] == ["tempo", "program", "key", "style", "chords", "previous"]
    assert main["max_epochs"] == 2 and main["d_model"] == section["transformer"]["d_model"] and main["seed"] == 7
    assert trainer.run_params(section, "transformer", tag="previous", seed=1) == {**main, "seed": 1}
    assert trainer.run_params(section, "cvae", seed=2) == {**trainer.model_params(section, "cvae"), "seed": 2}
    assert trainer.run_stem("transformer", "previous", 1) == "seeds/ablation/previous/seed1"
    assert trainer.run_stem("cvae", seed=2) == "seeds/cvae/seed2"
    assert trainer.run_stem("transformer", "previous") == "ablation/previous"


def test_seed_stages_run_the_train_and_ablate_commands_with_another_seed(tmp_path, monkeypatch):
    """dvc.yaml's seed and seed_ablate stages, resolved by DVC from a params.yaml with seeds of both kinds."""
    for name in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_SITE_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["seeds"] = {"models": ["cvae"], "ablations": ["previous"], "extra": [1, 3]}
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    (repo_dir / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "dvc.yaml", repo_dir / "dvc.yaml")
    repo = Repo.init(str(repo_dir), no_scm=True)
    stages = {stage.name: stage for stage in repo.index.stages}
    assert sorted(n for n in stages if n.startswith("seed")) == [
        "seed@cvae-1", "seed@cvae-3", "seed_ablate@previous-1", "seed_ablate@previous-3"]

    def params_of(stage):
        return sorted(k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params)

    def paths(stage, kind):
        return [str(o.def_path) for o in getattr(stage, kind)]

    for seed, main in (("seed_ablate@previous-3", "ablate@previous"), ("seed@cvae-3", "train@cvae")):
        assert stages[seed].cmd == stages[main].cmd + " --seed 3"
        assert params_of(stages[seed]) == params_of(stages[main])
        assert paths(stages[seed], "deps") == paths(stages[main], "deps")
    assert paths(stages["seed_ablate@previous-3"], "outs") == [
        "checkpoints/seeds/ablation/previous/seed3.pt", "checkpoints/seeds/ablation/previous/seed3.resume.pt",
        "dvclive/seeds/ablation/previous/seed3/metrics.json", "dvclive/seeds/ablation/previous/seed3/plots"]
    assert stages["seed@cvae-1"].cmd == "python -m pipeline.train cvae --seed 1"
    repo.close()


class FakeValidation:
    """``validate`` returning a given curve, one value per epoch from ``epoch`` on."""

    def __init__(self, curve, epoch=0):
        self.curve, self.epoch = curve, epoch

    def __call__(self, model, data, device="cpu", rank=0, world=1):
        self.epoch += 1
        return self.curve[self.epoch - 1]


SLOW = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95]  # 1% better each epoch


def test_min_improvement_stops_a_slow_curve_and_keeps_the_lowest_loss(tmp_path, monkeypatch):
    params = {**PARAMS, "max_epochs": 6, "patience": 2}
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    strict, strict_ckpt = run(tmp_path / "strict", {**params, "min_improvement": 0.05})
    # epochs 2 and 3 are new bests but not 5% below the best: the counter reaches patience after epoch 3
    assert strict["stopped"] == "early_stopping" and strict["epochs"] == 3 and strict["stopped_early"] == 1
    assert strict["best_epoch"] == 3 and strict["best_val_loss"] == 0.98 == min(SLOW[:3])
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    plain_run, _ = run(tmp_path / "plain", {**params, "min_improvement": 0.0})
    assert plain_run["stopped"] == "max_epochs" and plain_run["epochs"] == 6
    assert plain_run["best_epoch"] == 6 and plain_run["best_val_loss"] == 0.95
    # the kept weights are those of epoch 3: the plain rule's 3-epoch run trains the same epochs
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    _, three_ckpt = run(tmp_path / "three", {**params, "max_epochs": 3, "min_improvement": 0.0})
    assert_same_weights(strict_ckpt["state_dict"], three_ckpt["state_dict"])
    assert strict_ckpt["extra"]["best_val_loss"] == 0.98


def test_min_improvement_zero_is_the_plain_rule(tmp_path, monkeypatch):
    curve = [1.0, 1.0, 0.9, 0.95, 0.9, 0.8]  # a tie, a worse epoch, a tie with the best
    params = {**PARAMS, "max_epochs": 6, "patience": 2}
    assert trainer.patience_counts(curve, 0.0) == [0, 1, 0, 1, 2, 0]
    assert trainer.patience_counts(SLOW, 0.05) == [0, 1, 2, 3, 4, 5]
    assert trainer.patience_counts([1.0, 0.94, 0.93, 0.88], 0.05) == [0, 0, 1, 0]  # 0.88 < 0.93 * 0.95
    results = {}
    for name, extra in (("zero", {"min_improvement": 0.0}), ("absent", {})):
        monkeypatch.setattr(trainer, "validate", FakeValidation(curve))
        results[name] = run(tmp_path / name, {**params, **extra})
    (zero, zero_ckpt), (absent, absent_ckpt) = results["zero"], results["absent"]
    # val < best only: epoch 3 is the best, epochs 4 and 5 are not below 0.9, so it stops after 5
    assert zero["stopped"] == "early_stopping" and zero["epochs"] == 5 and zero["best_epoch"] == 3
    assert {k: zero[k] for k in ("epochs", "best_epoch", "best_val_loss", "stopped")} == {
        k: absent[k] for k in ("epochs", "best_epoch", "best_val_loss", "stopped")}
    assert_same_weights(zero_ckpt["state_dict"], absent_ckpt["state_dict"])


def test_resume_replays_the_patience_counter_with_the_current_min_improvement(tmp_path, monkeypatch):
    params = {**PARAMS, "max_epochs": 6, "patience": 2, "min_improvement": 0.05}
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    _, whole_ckpt = run(tmp_path / "whole", params)
    # killed after 2 epochs of a min_improvement 0 run, then resumed with 0.05: it continues from epoch 3
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    run(tmp_path / "kill", {**params, "max_epochs": 2, "min_improvement": 0.0})
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW, epoch=2))
    resumed, resumed_ckpt = run(tmp_path / "kill", params)
    assert resumed["epochs"] == 3 and resumed["stopped"] == "early_stopping"
    assert_same_weights(whole_ckpt["state_dict"], resumed_ckpt["state_dict"])
    # a resume file already past the epoch these values stop at cannot rewind: the run starts over
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    run(tmp_path / "past", {**params, "max_epochs": 5, "min_improvement": 0.0})
    monkeypatch.setattr(trainer, "validate", FakeValidation(SLOW))
    again, again_ckpt = run(tmp_path / "past", params)
    assert again["epochs"] == 3 and again["best_epoch"] == 3
    assert_same_weights(whole_ckpt["state_dict"], again_ckpt["state_dict"])


def test_bf16_precision_trains_fp32_weights_close_to_fp32(tmp_path):
    """``precision: bf16``: the step runs under bfloat16 autocast, the checkpoint stays fp32 and its
    validation loss (measured in fp32) is within 2% of the fp32 run's on the same data and seed;
    the two runs are not the same computation (the weights differ). A bad value stops the run."""
    _, fp32 = run(tmp_path / "fp32", PARAMS)
    result, bf16 = run(tmp_path / "bf16", {**PARAMS, "precision": "bf16"})
    assert all(v.dtype == torch.float32 for v in bf16["state_dict"].values() if v.is_floating_point())
    assert not torch.equal(fp32["state_dict"]["net.0.weight"], bf16["state_dict"]["net.0.weight"])
    assert math.isclose(result["best_val_loss"], fp32["extra"]["best_val_loss"], rel_tol=0.02)
    with pytest.raises(SystemExit, match="train.precision: unknown precision 'fp8'"):
        run(tmp_path / "bad", {**PARAMS, "precision": "fp8"})


def test_an_ablation_run_with_its_own_budget_keeps_its_labels_and_overrides_the_shared_budget():
    """``{labels, budget}``: the tag's labels, ``ablation_params`` and then the tag's budget on top."""
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    section["ablation_params"] = {"max_epochs": 2, "patience": 1}
    section["ablation"]["long"] = {"labels": ["tempo", "chords"], "budget": {"max_epochs": 40}}
    shared, own = (trainer.run_params(section, "transformer", tag=t) for t in ("chords", "long"))
    assert own["conditioning"] == ["tempo", "chords"] and (own["max_epochs"], own["patience"]) == (40, 1)
    assert (shared["max_epochs"], shared["patience"]) == (2, 1)
    assert {k: v for k, v in own.items() if k not in ("conditioning", "max_epochs")} == {
        k: v for k, v in shared.items() if k not in ("conditioning", "max_epochs")}
    with pytest.raises(SystemExit, match="labels and budget, not epochs"):
        trainer.run_params({**section, "ablation": {"bad": {"labels": [], "epochs": 3}}}, "transformer", tag="bad")
