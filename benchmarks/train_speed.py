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
speed as a ratio to fp32. Prints a markdown table. No assertion on any timing.

    python benchmarks/train_speed.py                                   # params.yaml, every model
    python benchmarks/train_speed.py --params results/large/params.yaml --batch-sizes 64,256 --bf16
    python benchmarks/train_speed.py --quick                           # smoke test: ffnn, a few steps

On a shared machine the absolute numbers move with the other jobs; the ratios measured in
the same run (2 threads / 1, fraction of the peak) are the part to read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this work tree's code, whatever checkout an editable install points at
    sys.path.insert(0, str(ROOT))

from dnb.data import subset, synthetic_split  # noqa: E402
from dnb.schema import DataInfo  # noqa: E402
from models import architectures, build  # noqa: E402
from pipeline.train import model_params  # noqa: E402

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


def pairs_per_second(
    name: str,
    params: dict,
    info: DataInfo,
    data: dict,
    batch_size: int,
    threads: int,
    steps: int,
    warmup: int,
    bf16: bool = False,
) -> float:
    """Training pairs/s of ``steps`` timed training steps (after ``warmup`` untimed ones) on
    consecutive ``batch_size`` slices of ``data``; NaN when the step fails (e.g. an op
    without a bf16 kernel)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = build(name, params, info)
        optimizers = model.configure_optimizers(float(params["lr"]))
        n = int(data["tokens"].shape[0])
        batches = [subset(data, torch.arange(i * batch_size, (i + 1) * batch_size) % n) for i in range(steps + warmup)]
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with autocast:
            for batch in batches[:warmup]:
                model.training_step(batch, optimizers, 0)
            start = time.perf_counter()
            for batch in batches[warmup:]:
                model.training_step(batch, optimizers, 0)
            elapsed = time.perf_counter() - start
        return batch_size * steps / elapsed
    except RuntimeError as err:
        print(f"  {name} batch {batch_size} {'bf16' if bf16 else 'fp32'}: failed ({str(err)[:100]})", file=sys.stderr)
        return math.nan
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------- the run


def epoch_pairs_of(params: dict, train_pairs: int | None) -> int | None:
    """Training pairs per epoch: ``epoch_pairs``, else the (capped) training split when known."""
    if int(params.get("epoch_pairs", 0)) > 0:
        return int(params["epoch_pairs"])
    if train_pairs is None:
        return None
    cap = int(params.get("max_train_pairs", 0))
    return min(train_pairs, cap) if cap else train_pairs


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
) -> tuple[dict[int, float], list[dict]]:
    """({threads: matmul peak FLOP/s}, one row per model and batch size)."""
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
                "params": sum(p.numel() for p in build(name, params, info).parameters()),
                "flops_per_pair": flops / size,
                "epoch_pairs": epoch_pairs_of(params, train_pairs),
                "max_epochs": int(params["max_epochs"]),
                "max_minutes": float(params.get("max_minutes", 0)),
            }
            for t in threads:
                rate = pairs_per_second(name, params, info, data, size, t, steps, warmup)
                row[f"pairs_s_{t}"] = rate
                row[f"peak_{t}"] = rate * row["flops_per_pair"] / peaks[t]
                if bf16:
                    row[f"bf16_{t}"] = pairs_per_second(name, params, info, data, size, t, steps, warmup, True) / rate
            rows.append(row)
            print(f"  {name} batch {size}: " + ", ".join(f"{t}T {row[f'pairs_s_{t}']:.0f} pairs/s" for t in threads),
                  file=sys.stderr)
    return peaks, rows


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def table(rows: list[dict], threads: tuple[int, ...] = (1, 2), bf16: bool = False) -> str:
    """The markdown table: speeds, ratios, fraction of the same-thread-count matmul peak."""
    t0 = threads[0]
    head = ["model", "batch", "params", "MFLOP/pair"] + [f"pairs/s {t}T" for t in threads]
    head += [f"{t}T/{t0}T" for t in threads[1:]] + [f"of mm peak {t}T" for t in threads]
    head += [f"s/epoch {t0}T", f"budget used {t0}T"] + ([f"bf16/fp32 {t}T" for t in threads] if bf16 else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        epoch = r["epoch_pairs"] / r[f"pairs_s_{t0}"] if r["epoch_pairs"] else None
        budget = epoch * r["max_epochs"] / (60 * r["max_minutes"]) if epoch and r["max_minutes"] else None
        cells = [r["model"] + ("" if r["configured"] else " (extra)"), str(r["batch"]), _count(r["params"]),
                 _fmt(r["flops_per_pair"] / 1e6, ".3g")]
        cells += [_fmt(r[f"pairs_s_{t}"], ".0f") for t in threads]
        cells += [_fmt(r[f"pairs_s_{t}"] / r[f"pairs_s_{t0}"], ".2f") for t in threads[1:]]
        cells += [_fmt(100 * r[f"peak_{t}"], ".2g") + "%" for t in threads]
        cells += [_fmt(epoch, ".3g"), _fmt(budget, ".2g") if r["configured"] else "-"]
        cells += [_fmt(r[f"bf16_{t}"], ".2f") for t in threads] if bf16 else []
        lines.append("| " + " | ".join(cells) + " |")
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
    meta_path = Path(args.tensors) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    info = DataInfo(n_styles=max(1, len(meta.get("styles", []))))
    train_pairs = meta.get("split_sizes", {}).get("train")
    knobs = {"steps": args.steps, "warmup": args.warmup, "mm_size": args.mm_size, "mm_reps": 5}
    if args.quick:
        knobs = {k: QUICK[k] for k in knobs}
    extra = tuple(int(b) for b in args.batch_sizes.split(",") if b)
    peaks, rows = measure(section, models, info, train_pairs, extra, bf16=args.bf16, **knobs)
    print(f"params {args.params}; {knobs['steps']} timed steps after {knobs['warmup']} warm-up steps; "
          f"torch {torch.__version__}" + (" (--quick: a smoke run, not a measurement)" if args.quick else ""))
    print("fp32 matmul peak (torch.mm " + f"{knobs['mm_size']}^2): "
          + ", ".join(f"{t} thread{'s' * (t > 1)} {p / 1e9:.1f} GFLOP/s" for t, p in peaks.items()))
    print()
    print(table(rows, bf16=args.bf16))


if __name__ == "__main__":
    main()
