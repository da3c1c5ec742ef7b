"""Stage `train`: fit one neural model and keep its best checkpoint.

    python -m pipeline.train <model> [--tag TAG] [--conditioning tempo,program] [--seed K]

Params: ``train.common`` merged with ``train.<model>``. Adam, seeded mini-batches,
early stopping on the validation loss (mean token NLL per step; pix2pix: its own
reconstruction loss) with ``patience`` (an epoch resets it only when it lowers the best loss by
the fraction ``min_improvement``; the checkpoint is still the lowest loss), a wall budget ``max_minutes`` counted over
resumed runs too. ``epoch_pairs`` (0 = all) makes an epoch a fresh random draw of that
many training pairs and ``max_val_pairs`` (0 = all) validates on a seeded subset: on the
large corpus a full pass is longer than the budget. Writes

* ``checkpoints/<model>.pt``: best epoch (``models.checkpoint.load_trained``);
* ``checkpoints/<model>.resume.pt``: everything needed to continue after a kill
  (persisted by DVC), rewritten atomically after every epoch and ignored when the
  params, data or model code it was made with differ from the current ones;
* ``dvclive/<model>``: train/val loss per epoch (replayed from the resume state, so
  a resumed run logs the same curves as an uninterrupted one).

``--tag`` runs the conditioning ablation: outputs go to ``checkpoints/ablation/<tag>``
and ``dvclive/ablation/<tag>`` and the conditioning labels come from
``train.ablation[<tag>]`` unless ``--conditioning`` is given; ``train.ablation_params``
overrides params of those runs only.

``--seed K`` is an extra training seed of a run (stages ``seed`` and ``seed_ablate``, from
``train.seeds``): the params of that very run (the model's, or the ablation tag's) with only
``seed`` replaced by K, so its initialisation, batch order, epoch draws, dropout and the seeded
training/validation subsets change; outputs go to ``checkpoints/seeds/<run>/seed<K>`` and
``dvclive/seeds/<run>/seed<K>`` (``<run>``: the model, or ``ablation/<tag>``).

``device`` (``auto``: cuda, then mps, then cpu; ``dnb.device``) is where the model and
batches live; checkpoints are always written from CPU tensors. ``precision: bf16`` runs the
training step's matmuls under bfloat16 autocast (weights, optimiser state and validation stay
fp32, so the validation loss that picks the checkpoint is measured as for fp32 runs). Under ``torchrun`` with
``WORLD_SIZE`` > 1 the run is data-parallel (gloo on cpu, nccl on cuda): every rank draws
the same global batches of ``batch_size`` pairs and trains on its contiguous slice, the
gradients are averaged over ranks before each optimiser step (``models.base.optimizer_step``),
so the run computes what one process does at the same global batch, up to float summation
order (and the in-step noise: rank r's dropout, chord dropout and the cvae's z and word
dropout come from its own seeded stream per epoch). Each rank validates its share of the
validation split and the sums are added over ranks, so every rank sees the same validation
loss; only rank 0 writes checkpoints, the resume file and dvclive. ``processes`` > 1 (params,
per model) makes this stage start that many such ranks of this machine itself, ``threads``
threads each (``dnb.device.run_local_ranks``): on the 2-core machine 2 ranks x 1 thread is
the fastest setup for the autoregressive models, 1 process for the small ones
(``benchmarks/train_speed.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dnb.data import batch_size_of, data_info, iterate_batches, load_split, subset
from dnb.device import (
    autocast,
    from_rank0,
    join_process_group,
    leave_process_group,
    object_from_rank0,
    pick_device,
    placement,
    precision_of,
    run_local_ranks,
    sum_over_ranks,
    to_device,
)
from dnb.params import ablation_run, load_params
from dnb.representation import VOCAB_SIZE
from dnb.schema import FIELDS, DataInfo
from models import architectures, build
from models.base import gradient_share
from models.checkpoint import atomic_save, plain, save_checkpoint

# Params that change when a run stops, not what it computes: a resume file made
# with other values of these is still valid (raise max_epochs and training continues).
# (device: a run killed on one machine may continue on another, as with threads).
# patience and min_improvement only drive the patience counter, which a resumed run replays from
# the validation curve of its resume file with the current values (``patience_counts``).
# processes: what is computed depends on the number of ranks (their dropout streams), which
# ``fingerprint`` hashes itself, however the ranks were started (the stage, or torchrun by hand).
NOT_HASHED = ("max_epochs", "patience", "min_improvement", "max_minutes", "threads", "device", "processes")
DATA_KEYS = tuple(k for k in FIELDS if k not in ("roll", "song"))  # what a model learns from
VAL_BATCH = 512


def model_params(section: dict, name: str, conditioning: list[str] | None = None) -> dict:
    """``train.common`` merged with ``train.<name>`` (and a conditioning override)."""
    params = {**section.get("common", {}), **(section.get(name) or {})}
    if conditioning is not None:
        params["conditioning"] = list(conditioning)
    return plain(params)


def fingerprint(name: str, params: dict, train: dict, val: dict, world: int = 1) -> str:
    """Hash of what a resume file must match: params, the number of ranks, data, the code of
    ``models/`` and this trainer."""
    h = hashlib.sha256(name.encode())
    hashed = {k: v for k, v in params.items() if k not in NOT_HASHED} | ({"ranks": world} if world > 1 else {})
    h.update(json.dumps(hashed, sort_keys=True).encode())
    for split in (train, val):
        for key in DATA_KEYS:
            h.update(split[key].contiguous().numpy().tobytes())
    # every model file: models import each other's building blocks (cvae uses lstm's Seq2Seq)
    for file in sorted(Path(inspect.getsourcefile(build)).parent.glob("*.py")) + [Path(__file__)]:
        h.update(Path(file).read_bytes())
    return h.hexdigest()


def cap_pairs(data: dict, max_pairs: int, seed: int) -> dict:
    """A seeded random subset of ``max_pairs`` training pairs (0 = all)."""
    n = batch_size_of(data)
    if not max_pairs or max_pairs >= n:
        return data
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_pairs].sort().values
    return subset(data, keep)


def unigram_entropy(tokens: torch.Tensor) -> float:
    """Entropy (nats) of the training token distribution: the NLL of a model that
    ignores the drums and the position, the level every model must beat."""
    counts = torch.bincount(tokens.reshape(-1), minlength=VOCAB_SIZE).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


@torch.no_grad()
def validate(model, data: dict, device: torch.device | str = "cpu", rank: int = 0, world: int = 1) -> float:
    """Pair-weighted mean of ``validation_loss`` over the split. In a data-parallel run each rank
    scores its contiguous share of the split and the sums are added over ranks, so every rank
    returns the same value, that of one process up to float summation order."""
    model.eval()
    n = batch_size_of(data)
    mine = subset(data, slice(rank * n // world, (rank + 1) * n // world)) if world > 1 else data
    total, seen = 0.0, 0
    for batch in iterate_batches(mine, VAL_BATCH):
        size = batch_size_of(batch)
        total += float(model.validation_loss(to_device(batch, device))) * size
        seen += size
    if world > 1:
        total, seen = sum_over_ranks([total, seen], torch.device(device))
    return total / max(seen, 1)


def improved(val: float, best: float, min_improvement: float) -> bool:
    """Whether an epoch's validation loss resets the patience counter: below ``best * (1 - min_improvement)``.
    Validation losses are >= 0 (NLL, BCE, the CVAE's bound, pix2pix's loss), so the threshold is at most
    ``best``. With 0 it is ``best`` itself: ``x * 1.0 == x`` exactly in IEEE arithmetic (``inf`` included),
    so the counter, the stopping epoch and the checkpoints are those of the plain ``val < best`` rule."""
    return val < best * (1 - min_improvement)


def patience_counts(val_losses: list[float], min_improvement: float) -> list[int]:
    """The patience counter after each epoch of a validation curve, as the training loop counts it."""
    best, bad, counts = math.inf, 0, []
    for val in val_losses:
        bad = 0 if improved(val, best, min_improvement) else bad + 1
        best = val if val < best else best
        counts.append(bad)
    return counts


def rng_state(shuffle: torch.Generator, device: torch.device | None = None) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if device is not None and device.type == "cuda":  # dropout on the GPU draws from the device's generator
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def to_cpu(obj):
    """``obj`` with every tensor on the CPU (the very same tensors when they are there already).
    A dict keeps its type and a state dict its ``_metadata``, so a CPU resume file is saved as before."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        out = obj.copy()
        for k, v in obj.items():
            out[k] = to_cpu(v)
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def load_resume(path: Path, fp: str) -> dict | None:
    """The resume state at ``path`` if it was made with the same fingerprint."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file must not kill the stage: start over
        print(f"ignoring unreadable resume file {path}: {err}", file=sys.stderr)
        return None
    if state.get("fingerprint") != fp:
        print(f"ignoring {path}: made with other params, data or model code", file=sys.stderr)
        path.unlink()
        return None
    return state


def shard(batch: dict, rank: int, world: int) -> tuple[dict, int]:
    """This rank's contiguous slice of a global batch and its number of pairs (the whole
    batch on one process). With fewer pairs than ranks a rank gets one stand-in pair and
    weight 0, so that it still joins the gradient all-reduce."""
    n = batch_size_of(batch)
    if world == 1:
        return batch, n
    lo, hi = rank * n // world, (rank + 1) * n // world
    if hi == lo:
        return subset(batch, slice(0, 1)), 0
    return subset(batch, slice(lo, hi)), hi - lo


def noise_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of rank ``rank``'s in-step noise in ``epoch`` of a data-parallel run: ranks draw
    independent dropout masks, and a resumed run draws the same ones as an uninterrupted one."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()[:8], "little")


class NoLive:
    """What ranks other than 0 log to: nothing."""

    def __init__(self):
        self.summary: dict = {}

    def log_metric(self, *args, **kwargs) -> None:
        pass

    def next_step(self) -> None:
        pass

    def end(self) -> None:
        pass


def train(
    name: str,
    params: dict,
    train_data: dict,
    val_data: dict,
    info: DataInfo,
    ckpt_path: str | Path,
    resume_path: str | Path,
    live_dir: str | Path,
    progress: bool = True,
) -> dict:
    """Train ``name`` and return a summary; the model at the best epoch is saved to
    ``ckpt_path``. Same params and data -> same checkpoint, killed or not. Under torchrun
    (``WORLD_SIZE`` > 1) joins the process group: see the module doc."""
    device, rank, world = placement(params.get("device", "auto"))
    join_process_group(device, world)
    ckpt_path, resume_path = Path(ckpt_path), Path(resume_path)
    seed = int(params["seed"])
    torch.set_num_threads(int(params.get("threads", 1)))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    train_data = cap_pairs(train_data, int(params.get("max_train_pairs", 0)), seed)
    val_data = cap_pairs(val_data, int(params.get("max_val_pairs", 0)), seed + 1)
    if batch_size_of(train_data) == 0 or batch_size_of(val_data) == 0:
        raise SystemExit(f"cannot train {name}: the train or validation split is empty")
    try:
        precision = precision_of(params.get("precision"))  # a bad value stops here, before any training
    except ValueError as err:
        raise SystemExit(f"train.precision: {err}") from None
    model = build(name, params, info).to(device)
    optimizers = model.configure_optimizers(float(params["lr"]))
    shuffle = torch.Generator().manual_seed(seed)
    fp = fingerprint(name, params, train_data, val_data, world)
    st = {"epoch": 0, "best": math.inf, "best_epoch": 0, "bad": 0, "elapsed": 0.0, "history": [], "best_state": None,
          "presented": 0}
    max_epochs, patience = int(params["max_epochs"]), int(params["patience"])
    min_improvement = float(params.get("min_improvement", 0.0))
    if not 0 <= min_improvement < 1:
        raise SystemExit(f"train.min_improvement must be in [0, 1), got {min_improvement}")
    resumed = load_resume(resume_path, fp) if rank == 0 else None
    if resumed is not None and resumed["epoch"] > max_epochs:  # cannot rewind: start over
        print(f"ignoring {resume_path}: it is past max_epochs = {max_epochs}", file=sys.stderr)
        resumed = None
    if resumed is not None:  # the counter of these patience / min_improvement values, replayed
        counts = patience_counts([row["val_loss"] for row in resumed["history"]], min_improvement)
        if any(c >= patience for c in counts[:-1]):  # these values would have stopped it earlier
            print(f"ignoring {resume_path}: patience = {patience} and min_improvement = {min_improvement} "
                  "stop the run before the epoch it reached", file=sys.stderr)
            resumed = None
        else:
            resumed["bad"] = counts[-1] if counts else 0
    resumed = object_from_rank0(resumed, device)  # every rank continues from rank 0's state
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        for opt, opt_state in zip(optimizers, resumed["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        set_rng_state(resumed["rng"], shuffle)
        st.update({k: resumed[k] for k in st})
    if rank == 0:
        from dvclive import Live

        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)
    else:
        live = NoLive()
    for row in st["history"]:  # DVC deleted the old dvclive dir: replay it
        for key, value in row.items():
            live.log_metric(key, value)
        live.next_step()
    budget = float(params.get("max_minutes", 0)) * 60 or math.inf
    started = time.monotonic() - st["elapsed"]
    reason = "max_epochs"
    bar = tqdm(
        range(st["epoch"], max_epochs),
        desc=f"train {name}",
        initial=st["epoch"],
        total=max_epochs,
        disable=not progress or rank != 0,
    )
    for epoch in bar:
        if st["bad"] >= patience:
            reason = "early_stopping"
            break
        if from_rank0(time.monotonic() - started > budget, device):  # rank 0's clock decides for all
            reason = "max_minutes"
            break
        model.train()
        if world > 1:
            torch.manual_seed(noise_seed(seed, epoch, rank))
        # The wall budget is checked between epochs only: a half epoch would make the
        # result depend on machine speed (and a resumed run diverge from an uninterrupted one).
        sums, seen = defaultdict(float), 0
        epoch_pairs = int(params.get("epoch_pairs", 0))
        # epoch_pairs > 0: an epoch is a fresh random draw of that many pairs; on the large
        # corpus a full pass is longer than the budget, and early stopping acts between epochs
        batches = iterate_batches(train_data, int(params["batch_size"]), True, shuffle, limit=epoch_pairs)
        for batch in batches:
            part, size = shard(batch, rank, world)
            with gradient_share(size / batch_size_of(batch)), autocast(device, precision):
                step = model.training_step(to_device(part, device), optimizers, epoch)
            for key, value in step.items():
                sums[key] += value * size
            seen += size
        if world > 1:  # the epoch's sums over every rank's pairs
            *totals, seen = sum_over_ranks([*sums.values(), seen], device)
            sums = defaultdict(float, zip(sums, totals, strict=True))
        val = validate(model, val_data, device, rank, world)  # the same value on every rank
        row = {"train_loss": sums.pop("loss") / seen, "val_loss": val, **{k: v / seen for k, v in sums.items()}}
        for key, value in row.items():
            live.log_metric(key, value)
        live.next_step()
        st["history"].append(row)
        st["epoch"] = epoch + 1
        st["presented"] = st.get("presented", 0) + seen  # training pairs shown so far (the compute spent)
        # "improved enough" (resets patience) is judged against the best before this epoch; any
        # new best is kept, so the checkpoint is the lowest validation loss whatever min_improvement
        enough = improved(val, st["best"], min_improvement)
        if val < st["best"]:
            st.update(best=val, best_epoch=epoch + 1)
            st["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if rank == 0:
                save_checkpoint(ckpt_path, model, name, params, info, {"epoch": epoch + 1, "val_loss": val})
        st["bad"] = 0 if enough else st["bad"] + 1
        st["elapsed"] = time.monotonic() - started
        bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{val:.3f}", best=f"{st['best']:.3f}")
        if rank == 0:
            atomic_save(
                to_cpu(
                    {
                        **st,
                        "fingerprint": fp,
                        "model": model.state_dict(),
                        "optimizers": [opt.state_dict() for opt in optimizers],
                        "rng": rng_state(shuffle, device),
                    }
                ),
                resume_path,
            )
    else:
        if st["bad"] >= patience:
            reason = "early_stopping"
    if st["best_state"] is not None:
        model.load_state_dict(st["best_state"])
    summary = {
        "epochs": st["epoch"],
        "best_epoch": st["best_epoch"],
        "best_val_loss": st["best"],
        "unigram_entropy": unigram_entropy(train_data["tokens"]),
        "train_pairs": batch_size_of(train_data),
        "val_pairs": batch_size_of(val_data),
        "wall_seconds": round(st["elapsed"], 2),
        "pairs_presented": int(st.get("presented", 0)),
        "stopped_early": int(reason == "early_stopping"),  # 0: max_epochs or the wall-clock guard stopped it
        "ranks": world,  # the setup the wall time was measured with: ranks x threads, bf16 autocast or not
        "threads": int(params.get("threads", 1)),
        "bf16": int(precision == "bf16"),
    }
    extra = {**summary, "stopped": reason, "conditioning": params.get("conditioning", [])}
    if rank == 0:
        save_checkpoint(ckpt_path, model, name, params, info, extra)
    live.summary.update(summary)
    live.end()
    model.eval()
    return {**summary, "stopped": reason, "model": model}


def run_params(section: dict, model: str, tag: str | None = None, conditioning: list[str] | None = None,
               seed: int | None = None) -> dict:
    """The params of a run: ``model_params`` of the model, for an ablation ``tag`` its labels (unless
    ``conditioning`` is given), ``train.ablation_params`` and the tag's own budget
    (``dnb.params.ablation_run``); ``seed`` replaces the seed and nothing else."""
    budget: dict = {}
    if tag is not None:
        ablation = section.get("ablation") or {}
        if tag not in ablation:
            sys.exit(f"unknown ablation tag {tag!r}; params.yaml train.ablation has {', '.join(ablation)}")
        labels, budget = ablation_run(ablation[tag])
        conditioning = labels if conditioning is None else conditioning
    params = model_params(section, model, conditioning)
    if tag is not None:  # e.g. a smaller epoch budget for the ablation runs, then the tag's own budget
        params.update(plain(section.get("ablation_params") or {}))
        params.update(plain(budget))
    if seed is not None:
        params["seed"] = int(seed)
    return params


def run_stem(model: str, tag: str | None = None, seed: int | None = None) -> str:
    """Where a run writes, below ``checkpoints/`` and ``dvclive/``: ``<model>``, ``ablation/<tag>``,
    and an extra seed of either in ``seeds/<run>/seed<k>``."""
    stem = f"ablation/{tag}" if tag else model
    return stem if seed is None else f"seeds/{stem}/seed{seed}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help=f"one of {', '.join(architectures())}")
    parser.add_argument("--tag", help="conditioning ablation run: checkpoints/ablation/<tag>.pt")
    parser.add_argument("--conditioning", help="comma-separated labels (tempo,program,key,style); '' for none")
    parser.add_argument("--seed", type=int, help="extra training seed of the run: checkpoints/seeds/<run>/seed<K>.pt")
    parser.add_argument("--tensors", default="data/tensors")
    args = parser.parse_args(argv)
    if args.model not in architectures():
        sys.exit(f"unknown model {args.model!r}; known: {', '.join(architectures())}")
    section = load_params()["train"]
    conditioning = None if args.conditioning is None else [c for c in args.conditioning.split(",") if c]
    params = run_params(section, args.model, args.tag, conditioning, args.seed)
    tensors = Path(args.tensors)
    if not (tensors / "train.npz").exists():
        sys.exit(f"no tensors in {tensors}: run `dvc repro tensorize` first")
    processes = int(params.get("processes", 1))
    if processes < 1:
        sys.exit(f"train.common.processes must be at least 1, got {processes}")
    if processes > 1 and "WORLD_SIZE" not in os.environ:  # this stage's own data-parallel ranks
        device = pick_device(params.get("device", "auto"))
        if device.type == "mps" or (device.type == "cuda" and processes > torch.cuda.device_count()):
            sys.exit(f"train.common.processes = {processes} ranks do not fit device {device}: "
                     "one rank per GPU on cuda, 1 on mps")
        sys.exit(run_local_ranks("pipeline.train", sys.argv[1:] if argv is None else list(argv), processes,
                                 int(params.get("threads", 1))))
    stem = run_stem(args.model, args.tag, args.seed)
    result = train(
        args.model,
        params,
        load_split(tensors, "train"),
        load_split(tensors, "val"),
        data_info(tensors),
        Path("checkpoints") / f"{stem}.pt",
        Path("checkpoints") / f"{stem}.resume.pt",
        Path("dvclive") / stem,
    )
    result.pop("model")
    leave_process_group()
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({"model": args.model, "tag": args.tag, "seed": params["seed"], **result}, indent=1))


if __name__ == "__main__":
    main()
