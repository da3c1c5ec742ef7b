"""Training speed of every architecture at its configured size, against the machine's own
matrix-multiply peak measured in the same run.

For each model of the params file's ``models`` list (default; any architecture of the
registry with ``--models``; params: ``train.common`` merged with ``train.<model>``)
and each batch size (the configured one, plus ``--batch-sizes``): training pairs/s at 1
and 2 threads (``torch.set_num_threads``) on synthetic batches of the real shapes
(``dnb.data.synthetic_split``), warm-up steps excluded; the FLOPs of one training step
(forward + backward, ``torch.utils.flop_counter.FlopCounterMode``; the optimiser's
element-wise update is not counted) times pairs/s, as a fraction of a dense fp32
``torch.mm`` peak (square matrices, ``--mm-size``) at the same thread count; the epoch time
this implies and the share of the ``max_minutes`` budget that ``max_epochs`` such epochs
would use (training steps only, validation excluded); with ``--bf16``, the bf16 autocast
speed as a ratio to fp32. Also (``--processes 2``, the default) the global pairs/s of 2 spawned
data-parallel ranks x 1 thread (gloo on loopback, gradients all-reduced every step, as
``train.common.processes`` trains); the configured setup of each model (processes x threads)
and its epoch time; the share of one thread's step time in matmul kernels, dropout's random
numbers, the optimiser and other ops (``torch.profiler``), which says why a model is far from
the peak; and, for the headline model (``--reference``), its configured setup against the
baseline configuration measured in the same run (one process, for-loop Adam, attention dropout
as dropout, torch's dropout masks, fp32) at 1 and 2 threads. Every rate but ``--bf16``'s ratio is
at the params' own ``precision`` (bf16 autocast or fp32), as training runs; the matmul peak is
fp32's. Prints markdown tables. No assertion on any timing.

    python benchmarks/train_speed.py                                   # params.yaml, every model
    python benchmarks/train_speed.py --params results/large/params.yaml --batch-sizes 64,256 --bf16
    python benchmarks/train_speed.py --quick                           # smoke test: ffnn, a few steps
    python benchmarks/train_speed.py --models transformer --no-shares --steps 80 --repeats 5

On a shared machine the absolute numbers move with the other jobs; the ratios measured in
the same run (2 threads / 1, fraction of the peak) are the part to read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import distributed as dist
from torch import multiprocessing as mp
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this work tree's code, whatever checkout an editable install points at
    sys.path.insert(0, str(ROOT))

from dnb.data import subset, synthetic_split  # noqa: E402
from dnb.device import autocast, free_port, precision_of  # noqa: E402
from dnb.schema import DataInfo  # noqa: E402
from models import architectures, build  # noqa: E402
from models.base import gradient_share  # noqa: E402
from pipeline.train import model_params, shard  # noqa: E402

QUICK = {"models": ["ffnn"], "steps": 3, "warmup": 1, "mm_size": 256, "mm_reps": 2}


# ----------------------------------------------------------------- FLOPs


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """``aten.mkldnn_rnn_layer`` (one LSTM layer and direction, the CPU kernel FlopCounterMode has
    no formula for): the input and recurrent matmuls of every step, 2 * steps * batch * 4H * (I + H)."""
    rows = math.prod(input_shape[:-1])  # steps x batch
    return 2 * rows * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


def _rnn_layer_backward_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """Gradients of the inputs and of the weights: twice the forward matmuls, as for ``mm``."""
    return 2 * _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape)


RNN_FORMULAS = {
    torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
    torch.ops.aten.mkldnn_rnn_layer_backward: _rnn_layer_backward_flops,
}


def step_flops(name: str, params: dict, info: DataInfo, batch: dict) -> int:
    """Forward + backward FLOPs of one ``training_step`` on ``batch`` (a fresh model)."""
    torch.manual_seed(0)
    model = build(name, params, info)
    optimizers = model.configure_optimizers(float(params["lr"]))
    with FlopCounterMode(display=False, custom_mapping=RNN_FORMULAS) as counter:
        model.training_step(batch, optimizers, 0)
    return int(counter.get_total_flops())


# ----------------------------------------------------------------- timing


def matmul_peak(threads: int, size: int = 2048, reps: int = 5) -> float:
    """Dense fp32 ``torch.mm`` FLOP/s of two ``size`` x ``size`` matrices: the best of ``reps``
    after one warm-up product."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
        torch.mm(a, b)
        best = math.inf
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        return 2.0 * size**3 / best
    finally:
        torch.set_num_threads(previous)


def _batches(data: dict, batch_size: int, count: int) -> list[dict]:
    """``count`` consecutive ``batch_size`` slices of ``data`` (wrapping around)."""
    n = int(data["tokens"].shape[0])
    return [subset(data, torch.arange(i * batch_size, (i + 1) * batch_size) % n) for i in range(count)]


def _optimizers(model, params: dict, reference: bool) -> list:
    """The model's own optimisers; with ``reference``, the one for-loop Adam of the issue's
    baseline configuration (``torch.optim.Adam`` defaults: no fused or foreach kernel on the CPU)."""
    if reference:
        return [torch.optim.Adam(model.parameters(), lr=float(params["lr"]))]
    return model.configure_optimizers(float(params["lr"]))


def _precision(params: dict, bf16: bool | None) -> str:
    """The autocast precision of a measurement: the params' own ``precision`` (as training runs)
    unless ``bf16`` says True (bf16) or False (fp32)."""
    return precision_of(params.get("precision")) if bf16 is None else ("bf16" if bf16 else "fp32")


def _timed_rate(name: str, params: dict, info: DataInfo, data: dict, batch_size: int, steps: int, warmup: int,
                bf16: bool | None = None, reference: bool = False, rank: int = 0, world: int = 1) -> float:
    """Global training pairs/s of ``steps`` timed steps after ``warmup`` untimed ones, under the
    autocast of ``_precision``; in a process group, each rank trains its shard of every global
    batch as ``pipeline.train`` does (gradients all-reduced by ``optimizer_step``) and the clock
    runs between two barriers."""
    torch.manual_seed(0)
    model = build(name, params, info)
    optimizers = _optimizers(model, params, reference)
    torch.manual_seed(rank)  # per-rank dropout noise, as in training
    batches = _batches(data, batch_size, steps + warmup)

    precision = _precision(params, bf16)

    def step(batch: dict) -> None:
        part, size = shard(batch, rank, world)
        # one autocast context per step, as pipeline.train: autocast keeps its bf16 copies of the
        # weights until the outermost context exits, so one context around the loop would skip
        # every step's weight casts after the first (and train on stale weights)
        with gradient_share(size / batch_size), autocast("cpu", precision):
            model.training_step(part, optimizers, 0)

    for batch in batches[:warmup]:
        step(batch)
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    if world > 1:
        dist.barrier()
    elapsed = time.perf_counter() - start
    return batch_size * steps / elapsed


def pairs_per_second(
    name: str,
    params: dict,
    info: DataInfo,
    data: dict,
    batch_size: int,
    threads: int,
    steps: int,
    warmup: int,
    bf16: bool | None = None,
    reference: bool = False,
) -> float:
    """Training pairs/s of one process with ``threads`` threads (precision: ``_precision``); NaN
    when the step fails (e.g. an op without a bf16 kernel)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _timed_rate(name, params, info, data, batch_size, steps, warmup, bf16, reference)
    except RuntimeError as err:
        print(f"  {name} batch {batch_size} {_precision(params, bf16)}: failed ({str(err)[:100]})", file=sys.stderr)
        return math.nan
    finally:
        torch.set_num_threads(previous)


def _rank(rank: int, world: int, port: int, job: tuple, results) -> None:
    """One spawned data-parallel rank (1 thread, gloo on loopback); rank 0 reports the rate."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rate = _timed_rate(*job, rank=rank, world=world)
        if rank == 0:
            results.put(rate)
    finally:
        dist.destroy_process_group()


def data_parallel_pairs_per_second(name: str, params: dict, info: DataInfo, data: dict, batch_size: int,
                                   steps: int, warmup: int, processes: int = 2) -> float:
    """Global training pairs/s of ``processes`` spawned ranks x 1 thread at global batch
    ``batch_size``: what ``train.common.processes`` runs (start-up excluded); NaN on failure."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    job = (name, params, info, data, batch_size, steps, warmup)
    try:
        mp.spawn(_rank, args=(processes, free_port(), job, results), nprocs=processes, join=True)
        return float(results.get())
    except Exception as err:  # noqa: BLE001 - a failed measurement is reported, not fatal
        print(f"  {name} batch {batch_size} x{processes} processes: failed ({str(err)[:200]})", file=sys.stderr)
        return math.nan


# ----------------------------------------------------------------- where the time goes

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
              "aten::convolution_backward", "aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")
RNG_OPS = ("aten::bernoulli_", "aten::uniform_", "aten::normal_", "aten::random_", "aten::exponential_")
OPTIMIZER_OPS = ("aten::_fused_adam", "aten::_foreach_", "aten::addcdiv_", "aten::addcmul_", "aten::lerp_")
SHARES = ("matmul", "dropout RNG", "optimizer", "other ops", "outside ops")


def time_shares(name: str, params: dict, info: DataInfo, data: dict, batch_size: int, steps: int = 5,
                warmup: int = 2) -> dict[str, float]:
    """Share of one thread's training-step wall time in matmul-type kernels (matmuls,
    convolutions, LSTM layers, fused attention), dropout's random numbers, the optimiser's
    update, every other op (element-wise, norms, softmax, copies) and outside any op (Python,
    autograd bookkeeping): why a model is far from the matmul peak. Profiler self times."""
    from torch.profiler import ProfilerActivity, profile

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build(name, params, info)
        optimizers = model.configure_optimizers(float(params["lr"]))
        batches = _batches(data, batch_size, steps + warmup)
        precision = _precision(params, None)
        for batch in batches[:warmup]:
            with autocast("cpu", precision):  # per step, as in _timed_rate
                model.training_step(batch, optimizers, 0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for batch in batches[warmup:]:
                with autocast("cpu", precision):
                    model.training_step(batch, optimizers, 0)
            wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    spent: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        key = event.key
        kind = ("matmul" if key in MATMUL_OPS else "dropout RNG" if key in RNG_OPS
                else "optimizer" if key.startswith(OPTIMIZER_OPS) else "other ops" if key.startswith("aten::")
                else "outside ops")  # the self time of a wrapper (autograd node, Optimizer.step) is overhead
        spent[kind] += event.self_cpu_time_total / 1e6
    total = max(wall, sum(spent.values()))
    spent["outside ops"] += total - sum(spent.values())
    return {kind: spent[kind] / total for kind in SHARES}


# ----------------------------------------------------------------- the run


def epoch_pairs_of(params: dict, train_pairs: int | None) -> int | None:
    """Training pairs per epoch: ``epoch_pairs``, else the (capped) training split when known."""
    if int(params.get("epoch_pairs", 0)) > 0:
        return int(params["epoch_pairs"])
    if train_pairs is None:
        return None
    cap = int(params.get("max_train_pairs", 0))
    return min(train_pairs, cap) if cap else train_pairs


def configured_setup(params: dict) -> tuple[int, int]:
    """(processes, threads per process) the params train with."""
    return int(params.get("processes", 1)), int(params.get("threads", 1))


def configured_rate(row: dict) -> float:
    """Pairs/s of the row's configured setup."""
    processes, threads = row["setup"]
    return row[f"pairs_s_dp{processes}"] if processes > 1 else row[f"pairs_s_{threads}"]


def measure(
    section: dict,
    models: list[str],
    info: DataInfo,
    train_pairs: int | None = None,
    extra_batch_sizes: tuple[int, ...] = (),
    threads: tuple[int, ...] = (1, 2),
    steps: int = 20,
    warmup: int = 3,
    bf16: bool = False,
    mm_size: int = 2048,
    mm_reps: int = 5,
    processes: int = 2,
    shares: bool = True,
) -> tuple[dict[int, float], list[dict]]:
    """({threads: matmul peak FLOP/s}, one row per model and batch size). ``processes`` > 1 adds
    the data-parallel rate of that many 1-thread ranks; ``shares`` the one-thread time shares."""
    peaks = {t: matmul_peak(t, mm_size, mm_reps) for t in threads}
    rows = []
    for name in models:
        params = model_params(section, name)
        sizes = sorted({int(params["batch_size"]), *extra_batch_sizes})
        data = synthetic_split(max(sizes) * 2, seed=0, n_styles=max(1, info.n_styles))
        for size in sizes:
            flops = step_flops(name, params, info, subset(data, torch.arange(size)))
            row = {
                "model": name,
                "batch": size,
                "configured": size == int(params["batch_size"]),
                "setup": configured_setup(params),
                "params": sum(p.numel() for p in build(name, params, info).parameters()),
                "flops_per_pair": flops / size,
                "epoch_pairs": epoch_pairs_of(params, train_pairs),
                "max_epochs": int(params["max_epochs"]),
                "max_minutes": float(params.get("max_minutes", 0)),
                "peak_dp": peaks[max(threads)],  # ranks x 1 thread share the cores of the widest peak
            }
            for t in threads:
                rate = pairs_per_second(name, params, info, data, size, t, steps, warmup)
                row[f"pairs_s_{t}"] = rate
                row[f"peak_{t}"] = rate * row["flops_per_pair"] / peaks[t]
                if bf16:  # bf16 against fp32 autocast, whatever the params' own precision
                    fp32 = rate if _precision(params, None) == "fp32" else pairs_per_second(
                        name, params, info, data, size, t, steps, warmup, False)
                    row[f"bf16_{t}"] = pairs_per_second(name, params, info, data, size, t, steps, warmup, True) / fp32
            if processes > 1:
                row[f"pairs_s_dp{processes}"] = data_parallel_pairs_per_second(name, params, info, data, size, steps,
                                                                               warmup, processes)
            if shares and row["configured"]:
                row["shares"] = time_shares(name, params, info, data, size)
            rows.append(row)
            dp = row.get(f"pairs_s_dp{processes}")
            print(f"  {name} batch {size}: " + ", ".join(f"{t}T {row[f'pairs_s_{t}']:.0f}" for t in threads)
                  + (f", {processes}x1T {dp:.0f}" if dp is not None else "") + " pairs/s", file=sys.stderr)
    return peaks, rows


def reference_params(params: dict) -> dict:
    """The issue's baseline configuration of a model: attention weights dropped like every other
    activation (the transformer's math-path attention) with torch's Bernoulli masks, with the
    for-loop Adam of ``_optimizers``."""
    return {**params, "attn_dropout": float(params.get("dropout", 0.1)), "dropout_kernel": "torch", "precision": "fp32"}


def measure_reference(section: dict, name: str, info: DataInfo, steps: int, warmup: int,
                      threads: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """{threads: pairs/s} of ``name`` at its configured size and batch in the baseline
    configuration (one process), measured in this run."""
    params = reference_params(model_params(section, name))
    size = int(params["batch_size"])
    data = synthetic_split(size * 2, seed=0, n_styles=max(1, info.n_styles))
    return {t: pairs_per_second(name, params, info, data, size, t, steps, warmup, reference=True) for t in threads}


def configured_pairs_per_second(name: str, params: dict, info: DataInfo, data: dict, steps: int,
                                warmup: int) -> float:
    """Pairs/s of ``name`` in its configured setup (processes x threads) at its configured batch."""
    processes, threads = configured_setup(params)
    size = int(params["batch_size"])
    if processes > 1:
        return data_parallel_pairs_per_second(name, params, info, data, size, steps, warmup, processes)
    return pairs_per_second(name, params, info, data, size, threads, steps, warmup)


def head_to_head(section: dict, name: str, info: DataInfo, steps: int, warmup: int, repeats: int,
                 threads: tuple[int, ...] = (1, 2)) -> list[tuple[float, dict[int, float]]]:
    """``repeats`` rounds of (configured rate, {threads: baseline rate}), measured one right after
    the other: the machine's speed drifts by 10-20% within a run, so the ratio of each round (and
    their median) is steadier than one configured rate against one baseline measured minutes apart."""
    params = model_params(section, name)
    data = synthetic_split(int(params["batch_size"]) * 2, seed=0, n_styles=max(1, info.n_styles))
    rounds = []
    for _ in range(repeats):
        rate = configured_pairs_per_second(name, params, info, data, steps, warmup)
        rounds.append((rate, measure_reference(section, name, info, steps, warmup, threads)))
    return rounds


def median_ratios(rounds: list[tuple[float, dict[int, float]]]) -> dict[int, float]:
    """{threads: median over the rounds of configured rate / baseline rate}."""
    return {t: float(np.median([rate / ref[t] for rate, ref in rounds])) for t in rounds[0][1]}


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _percent(share: float) -> str:
    """A share of the peak as a percentage: whole numbers from 10% (100%, not 1e+02%), two digits below."""
    value = 100 * share
    return "n/a" if math.isnan(value) else _fmt(value, ".0f" if value >= 10 else ".2g") + "%"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _setup(setup: tuple[int, int]) -> str:
    processes, threads = setup
    return f"{processes}x{threads}T" if processes > 1 else f"{threads}T"


def table(rows: list[dict], threads: tuple[int, ...] = (1, 2), bf16: bool = False, processes: int = 2) -> str:
    """The markdown table: speeds, ratios, fraction of the matmul peak of as many threads as the
    setup uses, the epoch time and budget share of the configured setup."""
    t0, dp = threads[0], f"pairs_s_dp{processes}"
    has_dp = processes > 1 and any(dp in r for r in rows)
    head = ["model", "batch", "params", "MFLOP/pair"] + [f"pairs/s {t}T" for t in threads]
    head += [f"pairs/s {processes}x1T"] if has_dp else []
    head += [f"{t}T/{t0}T" for t in threads[1:]] + ([f"{processes}x1T/{t0}T"] if has_dp else [])
    head += [f"of mm peak {t}T" for t in threads] + ([f"of mm peak {processes}x1T"] if has_dp else [])
    head += ["configured", "s/epoch", "budget used"] + ([f"bf16/fp32 {t}T" for t in threads] if bf16 else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        rate = configured_rate(r) if has_dp or r["setup"][0] == 1 else math.nan
        epoch = r["epoch_pairs"] / rate if r["epoch_pairs"] and rate == rate else None
        budget = epoch * r["max_epochs"] / (60 * r["max_minutes"]) if epoch and r["max_minutes"] else None
        cells = [r["model"] + ("" if r["configured"] else " (extra)"), str(r["batch"]), _count(r["params"]),
                 _fmt(r["flops_per_pair"] / 1e6, ".3g")]
        cells += [_fmt(r[f"pairs_s_{t}"], ".0f") for t in threads] + ([_fmt(r.get(dp), ".0f")] if has_dp else [])
        cells += [_fmt(r[f"pairs_s_{t}"] / r[f"pairs_s_{t0}"], ".2f") for t in threads[1:]]
        cells += [_fmt(r.get(dp, math.nan) / r[f"pairs_s_{t0}"], ".2f")] if has_dp else []
        cells += [_percent(r[f"peak_{t}"]) for t in threads]
        if has_dp:  # two ranks share the two cores: the 2-thread peak is theirs
            cells += [_percent(r.get(dp, math.nan) * r["flops_per_pair"] / r["peak_dp"])]
        cells += [_setup(r["setup"]) if r["configured"] else "-", _fmt(epoch, ".3g"),
                  _fmt(budget, ".2g") if r["configured"] else "-"]
        cells += [_fmt(r[f"bf16_{t}"], ".2f") for t in threads] if bf16 else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shares_table(rows: list[dict]) -> str:
    """Where one thread's training step spends its time, per model (configured batch)."""
    lines = ["| model | " + " | ".join(SHARES) + " |", "|" + " --- |" * (len(SHARES) + 1)]
    for r in rows:
        if "shares" in r:
            lines.append(f"| {r['model']} | " + " | ".join(f"{100 * r['shares'][k]:.0f}%" for k in SHARES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"), help="e.g. results/large/params.yaml")
    ap.add_argument("--models", help=f"comma-separated subset of {','.join(architectures())} "
                                     "(default: the params file's models list)")
    ap.add_argument("--batch-sizes", default="", help="extra batch sizes, e.g. 64,256")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--mm-size", type=int, default=2048)
    ap.add_argument("--bf16", action="store_true", help="also time torch.autocast(cpu, bfloat16)")
    ap.add_argument("--processes", type=int, default=2, help="data-parallel ranks x 1 thread to time (0: none)")
    ap.add_argument("--reference", default="transformer",
                    help="the headline model whose configured setup is compared with the baseline configuration "
                         "('' for none)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="with R > 1, R more rounds of the headline model's configured setup and baseline "
                         "measured back to back, each round's ratio and their median")
    ap.add_argument("--no-shares", action="store_true", help="skip the one-thread time shares (profiler)")
    ap.add_argument("--tensors", default=str(ROOT / "data/tensors"),
                    help="meta.json there gives the drum-style count and the training split size, when present")
    ap.add_argument("--quick", action="store_true", help="smoke test in seconds: ffnn, 3 steps, a 256 matmul")
    args = ap.parse_args(argv)
    everything = yaml.safe_load(Path(args.params).read_text())
    section, known = everything["train"], architectures()
    default = list(everything.get("models") or known)
    models = args.models.split(",") if args.models else QUICK["models"] if args.quick else default
    unknown = set(models) - set(known)
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; known: {', '.join(known)}")
    if args.reference and args.reference not in known:
        ap.error(f"unknown reference model {args.reference!r}; known: {', '.join(known)}")
    meta_path = Path(args.tensors) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    info = DataInfo(n_styles=max(1, len(meta.get("styles", []))))
    train_pairs = meta.get("split_sizes", {}).get("train")
    knobs = {"steps": args.steps, "warmup": args.warmup, "mm_size": args.mm_size, "mm_reps": 5}
    if args.quick:
        knobs = {k: QUICK[k] for k in knobs}
    extra = tuple(int(b) for b in args.batch_sizes.split(",") if b)
    peaks, rows = measure(section, models, info, train_pairs, extra, bf16=args.bf16, processes=args.processes,
                          shares=not args.no_shares, **knobs)
    print(f"params {args.params}; {knobs['steps']} timed steps after {knobs['warmup']} warm-up steps; "
          f"torch {torch.__version__}" + (" (--quick: a smoke run, not a measurement)" if args.quick else ""))
    print("fp32 matmul peak (torch.mm " + f"{knobs['mm_size']}^2): "
          + ", ".join(f"{t} thread{'s' * (t > 1)} {p / 1e9:.1f} GFLOP/s" for t, p in peaks.items()))
    print()
    print(table(rows, bf16=args.bf16, processes=args.processes))
    if not args.no_shares:
        print()
        print("Share of one thread's training-step time (profiler self times, configured batch):")
        print()
        print(shares_table(rows))
    headline = next((r for r in rows if r["model"] == args.reference and r["configured"]), None)
    if headline is not None:
        reference = measure_reference(section, args.reference, info, knobs["steps"], knobs["warmup"])
        rate = configured_rate(headline)
        headline_params = model_params(section, args.reference)
        attn = headline_params.get("attn_dropout", "as dropout")
        baseline = ", ".join(f"{t}T {p:.0f}" for t, p in reference.items())
        ratios = ", ".join(f"{_fmt(rate / p, '.2f')}x the {t}-thread baseline" for t, p in reference.items())
        print()
        print(f"{args.reference} at its configured size, batch {headline['batch']}: configured setup "
              f"({_setup(headline['setup'])}, fused Adam, attn_dropout {attn}, {_precision(headline_params, None)}) "
              f"{_fmt(rate, '.0f')} pairs/s; baseline configuration (one process, for-loop Adam, attention dropout as "
              f"dropout, torch's dropout masks, fp32) {baseline} "
              f"pairs/s; ratio {ratios}")
        if args.repeats > 1:
            rounds = head_to_head(section, args.reference, info, knobs["steps"], knobs["warmup"], args.repeats)
            for i, (rate, ref) in enumerate(rounds, 1):
                print(f"  round {i}: configured {rate:.0f} pairs/s; baseline "
                      + ", ".join(f"{t}T {p:.0f} ({_fmt(rate / p, '.2f')}x)" for t, p in ref.items()))
            print("median ratio over the rounds: "
                  + ", ".join(f"{_fmt(r, '.2f')}x the {t}-thread baseline" for t, r in median_ratios(rounds).items()))

if __name__ == "__main__":
    main()
