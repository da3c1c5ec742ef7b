"""Data-parallel training: 2 CPU processes (torchrun, gloo on 127.0.0.1) compute what one process
computes at the same global batch size, and only rank 0 writes.

Tolerance. The 2-process run averages per-rank gradients (7/15 * g0 + 8/15 * g1 for a
15-pair batch split 7 + 8), the 1-process run takes the gradient of the mean over the 15
pairs: the same quantity summed in another order, so float32 rounding (~6e-8 relative per
operation) differs. Per-epoch losses agree to ``RTOL`` = 1e-5 relative; the observed gap is
~1e-7, while the bugs this guards against move them further (measured once: no all-reduce
3e-3 to 1e-2, equal weights for the unequal 7 + 8 slices 2.6e-5 to 2.5e-4).

Weights are compared for ffnn only: the transformer's attention key biases and pix2pix's
convolution biases before an instance norm have an exactly zero true gradient (softmax and
the norm cancel them), so their computed gradient is pure rounding noise, which Adam
normalises into steps of about ``lr``: those weights differ between the runs by up to ~1e-2
while every output, hence every loss, is unaffected. The noise inside a step (dropout, chord
dropout) is per rank by design, so the models here have dropout and chord dropout 0; they are
conditioned on chords too (the transformer also adds each drum step's chord to its memory).

This file is also the worker script: ``torchrun ... tests/test_distributed.py OUT``.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnb.device import local_ranks

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-5
COMMON = {
    "seed": 0,
    "threads": 1,
    "device": "cpu",
    "batch_size": 15,  # 44 training pairs: batches of 15, 15, 14 -> slices 7 + 8, 7 + 8, 7 + 7
    "lr": 0.003,
    "max_epochs": 2,
    "patience": 5,
    "max_minutes": 0,
    "max_train_pairs": 0,
    "conditioning": ["tempo", "key", "chords"],  # chords: the transformer also hears them per drum step
    "chord_dropout": 0.0,  # per-rank noise, like dropout
    "dropout": 0.0,
}
MODELS = {  # one stepwise model, one autoregressive, the two-optimiser GAN
    "ffnn": {"hidden": 32},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "ff": 32},
    "pix2pix": {"ngf": 4, "ndf": 4},
}


def data():
    from dnb.data import synthetic_split
    from dnb.schema import DataInfo

    return synthetic_split(44, seed=0), synthetic_split(16, seed=1), DataInfo(n_styles=3)


def run_models(out: Path, rank: int) -> None:
    """Train every model of MODELS into ``out/rank<rank>/<model>``; the raw validation losses this
    rank computed and its final weights go to ``out/rank<rank>/<model>.result.pt``."""
    from pipeline import train as trainer

    torch.set_num_threads(1)
    train, val, info = data()
    validate, raw = trainer.validate, []

    def recording_validate(*args, **kwargs):
        raw.append(validate(*args, **kwargs))
        return raw[-1]

    trainer.validate = recording_validate  # the value each rank returns (its share, summed over ranks)
    for name, size in MODELS.items():
        raw.clear()
        d = out / f"rank{rank}" / name
        result = trainer.train(name, {**COMMON, **size}, train, val, info, d / "m.pt", d / "m.resume.pt", d / "live",
                               progress=False)
        d.mkdir(parents=True, exist_ok=True)
        torch.save({"val": list(raw), "state_dict": result["model"].state_dict()}, d.parent / f"{name}.result.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(2-process output dir, 1-process output dir)."""
    two, one = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("one")
    cmd, env = local_ranks([__file__, str(two)], processes=2, threads=1)  # gloo on loopback only
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        run_models(one, 0)  # meanwhile the same code in this process: WORLD_SIZE unset, one process
        output = proc.communicate(timeout=120)[0]
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and the two workers it started
        output = proc.communicate()[0]
        raise AssertionError(f"torchrun run failed or timed out:\n{output[-3000:]}") from None
    assert proc.returncode == 0, output[-3000:]
    return two, one


def history(path: Path) -> list[dict]:
    return torch.load(path, weights_only=True)["history"]


@pytest.mark.parametrize("name", list(MODELS))
def test_two_processes_match_one_process(runs, name):
    two, one = runs
    reference, parallel = history(one / f"rank0/{name}/m.resume.pt"), history(two / f"rank0/{name}/m.resume.pt")
    assert len(reference) == len(parallel) == COMMON["max_epochs"]
    for ref, par in zip(reference, parallel, strict=True):
        assert ref.keys() == par.keys()
        for key in ref:  # train_loss, val_loss and the model's other logged terms
            assert par[key] == pytest.approx(ref[key], rel=RTOL, abs=1e-7), (key, ref[key], par[key])
    if name == "ffnn":  # no parameter with a zero true gradient (see the module doc)
        ref_w = torch.load(one / f"rank0/{name}.result.pt", weights_only=True)["state_dict"]
        par_w = torch.load(two / f"rank0/{name}.result.pt", weights_only=True)["state_dict"]
        for key in ref_w:
            torch.testing.assert_close(par_w[key], ref_w[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_ranks_agree_and_only_rank0_writes(runs, name):
    two, _ = runs
    r0, r1 = (torch.load(two / f"rank{r}/{name}.result.pt", weights_only=True) for r in (0, 1))
    assert len(r0["val"]) == COMMON["max_epochs"] and r0["val"] == r1["val"]  # bit-identical validation
    for key in r0["state_dict"]:
        assert torch.equal(r0["state_dict"][key], r1["state_dict"][key]), key
    assert (two / f"rank0/{name}/m.pt").exists() and (two / f"rank0/{name}/m.resume.pt").exists()
    assert (two / f"rank0/{name}/live/metrics.json").exists()
    assert not any((two / f"rank1/{name}").iterdir()), "rank 1 wrote a checkpoint, resume file or dvclive"


def test_shard_slices_every_pair_once():
    from pipeline.train import shard

    batch = {"tokens": torch.arange(15).unsqueeze(1)}
    parts = [shard(batch, r, 2) for r in range(2)]
    assert [n for _, n in parts] == [7, 8]
    assert torch.equal(torch.cat([p["tokens"] for p, _ in parts]), batch["tokens"])
    assert shard(batch, 0, 1) == (batch, 15)
    tiny = {"tokens": torch.arange(1).unsqueeze(1)}
    assert [n for _, n in (shard(tiny, r, 2) for r in range(2))] == [0, 1]  # rank 0: a stand-in pair, weight 0


if __name__ == "__main__":  # a torchrun worker
    sys.path.insert(0, str(REPO))
    from dnb.device import leave_process_group

    run_models(Path(sys.argv[1]), int(os.environ["RANK"]))
    leave_process_group()
