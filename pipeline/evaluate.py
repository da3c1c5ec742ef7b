"""Stage `evaluate`: every model and baseline on the same test songs, with 95% song-bootstrap intervals.

Reads params ``evaluate``, the name lists ``model``, ``models`` and ``baselines``, and
the tags of ``train.ablation``. Baselines are fitted on the train split; models are
loaded from ``checkpoints/<name>.pt`` and ablation runs from
``checkpoints/ablation/<tag>.pt`` (a missing or failing one is reported in its file
with its status, and the ``tables`` stage refuses to typeset it).

Writes ``metrics/<name>.json`` per model and baseline, ``metrics/ablation_<tag>.json``,
``metrics/summary.json`` (name -> metric -> value), the headline ``metrics.json`` (the
``model`` selected in params, flattened), ``metrics/comparisons.json`` (each model and
ablation run minus each of ``compare_baselines`` with paired song-bootstrap intervals:
the quality bar), ``evaluation/per_example.parquet`` (one row per model and test pair) and
``evaluation/piano_rolls.npz`` (every model's first seeded sample of the test loops of
the paper's piano-roll figure: the ``tables`` stage draws them, loading no model).
Metric names, statistics and directions are ``dnb.metrics.METRICS``.

The extra training seeds of ``train.seeds`` (``checkpoints/seeds/<run>/seed<k>.pt``, stages
``seed`` and ``seed_ablate``) are scored like their main run, on the same test pairs with the same
sampling seed, and ``metrics/seeds.json`` gives per run and metric the value of every seed (the
main run is seed ``train.common.seed``), their mean, sample standard deviation, min and max, and
the main run's bootstrap interval: how much of a difference between two systems the training
seed alone can make, beside how much the choice of test songs can.

BLEU-4 is scored twice: on the first sample at ``temperature`` (``bleu4``), and on
the minimum-Bayes-risk choice among ``mbr_samples`` samples (``bleu4_mbr``, on the
diversity rows), the decision rule that targets BLEU, applied alike to every
system that samples. Note F1 likewise (``onset_pitch_f1_mbr``): the choice among the same
samples that targets onset+pitch F1. A rule writes one line; a sampler's single draw pays
for its variety in these metrics, its MBR choice does not. A third decoding rule, one sample
per test pair at the temperature tuned on VALIDATION pairs (``bleu4_tuned``,
``onset_pitch_f1_tuned``): of ``tuned_temperatures``, the one with the best validation note
F1, chosen per system and written in its file (``tuned_temperature``).

Neural models run on ``evaluate.device`` (``auto``: cuda, then mps, then cpu), their
sampling generator on that device too; baselines always run on the CPU. The piano-roll
samples (``pipeline.sampling``, shared with the demo) are drawn on the CPU.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from dnb import data as dnb_data
from dnb import metrics as M
from dnb import representation as rep
from dnb.device import device_of, pick_device, to_device
from dnb.metrics import DIVERSITY, HARMONY, METRICS, MUSICAL
from dnb.params import load_params, seed_runs
from models import build
from models.base import Temperature, parse_temperature, temperature_label
from models.checkpoint import load_trained
from pipeline.sampling import load_loops, sample_models

TENSORS = Path("data/tensors")
CHECKPOINTS = Path("checkpoints")
OUT = Path("metrics")
EVALUATION = Path("evaluation")


def _sample(gen, test: dict, params: dict, k: int, generator, label: str, want_scores: bool,
            temperature: Temperature | None = None) -> dict:
    """One pass over ``test`` in mini-batches: k samples per pair at ``temperature`` (default
    ``params["temperature"]``), and (when ``want_scores``) token NLL, roll BCE and polyphony statistics."""
    temperature = float(params["temperature"]) if temperature is None else temperature
    samples, nll, bce, poly = [], [], [], []
    has_nll = has_probs = want_scores
    size = int(params["batch_size"])
    total = -(-dnb_data.batch_size_of(test) // size)
    device = device_of(gen)
    for batch in tqdm(dnb_data.iterate_batches(test, size), total=total, desc=f"  {label}", leave=False,
                      file=sys.stderr):
        inputs = to_device(batch, device)
        out = gen.sample(inputs, k=k, temperature=temperature, generator=generator).cpu()
        expected = (dnb_data.batch_size_of(batch), k, rep.BASS_STEPS)
        if tuple(out.shape) != expected or int(out.min()) < 0 or int(out.max()) >= rep.VOCAB_SIZE:
            raise ValueError(f"sample() gave shape {tuple(out.shape)}, values {int(out.min())}..{int(out.max())}; "
                             f"expected {expected} tokens in 0..{rep.VOCAB_SIZE - 1}")
        samples.append(out.to(torch.uint8).numpy())
        token_nll = gen.token_nll(inputs) if has_nll else None
        has_nll = token_nll is not None
        if has_nll:
            nll.append(token_nll.double().cpu().numpy())
        probs = gen.onset_probs(inputs) if has_probs else None
        has_probs = probs is not None
        if has_probs:
            probs = probs.double().cpu().numpy()
            bce.append(M.bce_stats(probs, batch["roll"].numpy()))
            poly.append(M.polyphony_stats(probs >= 0.5))
    return {
        "samples": np.concatenate(samples),
        "nll": np.concatenate(nll) if has_nll and nll else None,
        "bce": np.concatenate(bce) if has_probs and bce else None,
        "poly": np.concatenate(poly) if has_probs and poly else None,
    }


def cap_per_song(test: dict, cap: int, seed: int) -> dict:
    """At most ``cap`` seeded pairs of every test song (0 = all pairs), kept in order.
    On the large corpus (73k test pairs) sampling every autoregressive model over all
    pairs takes longer than training it; capping pairs per song keeps every test song,
    so the song bootstrap still covers them all."""
    song = test["song"].numpy()
    if cap <= 0 or len(song) == 0 or np.bincount(song).max() <= cap:
        return test
    rank = np.random.default_rng(seed).permutation(len(song))  # random order, grouped by song below
    order = rank[np.argsort(song[rank], kind="stable")]
    first = np.r_[0, np.flatnonzero(np.diff(song[order])) + 1]
    position = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    keep = np.sort(order[position < cap])
    return dnb_data.subset(test, torch.as_tensor(keep))


def diversity_rows(n: int, params: dict) -> np.ndarray:
    """The test pairs that get K samples: all, or a seeded subset of ``diversity_max_pairs``
    (sampling K lines from an autoregressive model is the slowest part on 50k pairs)."""
    cap = int(params.get("diversity_max_pairs", 0))
    if cap <= 0 or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(int(params["seed"])).choice(n, cap, replace=False))


def tuning_pairs(val: dict, params: dict) -> dict:
    """The validation pairs that choose each system's tuned temperature: at most
    ``max_pairs_per_song`` of every validation song, then a seeded subset of ``tuned_val_pairs``."""
    val = cap_per_song(val, int(params.get("max_pairs_per_song", 0)), int(params["seed"]))
    n, cap = dnb_data.batch_size_of(val), int(params.get("tuned_val_pairs", 0))
    if 0 < cap < n:
        rows = np.sort(np.random.default_rng(int(params["seed"])).choice(n, cap, replace=False))
        val = dnb_data.subset(val, torch.as_tensor(rows))
    return val


# columns of ``dnb.metrics.onset_stats`` behind each onset metric (its statistic in ``METRICS``)
ONSET_COLUMNS = {"onset_precision": [0, 3], "onset_recall": [0, 4], "onset_f1": [0, 3, 4],
                 "onset_pitch_precision": [1, 3], "onset_pitch_recall": [1, 4], "onset_pitch_f1": [1, 3, 4],
                 "pitch_class_accuracy": [2, 0]}
NOTE_F1 = ONSET_COLUMNS["onset_pitch_f1"]


def note_f1(tokens: np.ndarray, true: np.ndarray) -> float:
    """Onset+pitch F1 pooled over pairs (the statistic of ``onset_pitch_f1``)."""
    return float(METRICS["onset_pitch_f1"].statistic(M.onset_stats(tokens, true)[:, NOTE_F1].sum(0)))


def tune_temperature(gen, val: dict, params: dict, label: str) -> tuple[Temperature, dict]:
    """(temperature, {temperature label: validation note F1}): of ``tuned_temperatures``, the one
    whose single sample scores the highest onset+pitch F1 on the VALIDATION pairs ``val`` (ties: the
    earlier entry). A sampler's draw at temperature 1 pays for its variety in note F1; a lower
    temperature moves it toward the model's most likely line, a decoding rule like MBR that needs
    one sample instead of 16. A split entry [T_rhythm, T_pitch] cools the two choices of a token
    apart (``models.base.tempered_logits``): near 0 both, it takes the likeliest of rest / sustain /
    any onset and then the likeliest pitch, where greedy decoding (0) lets an onset win only when
    one pitch alone outweighs a sustain. The test split never sees the choice being made."""
    grid = [parse_temperature(x) for x in params["tuned_temperatures"]]
    names = [temperature_label(t) for t in grid]
    scores = {}
    for t, name in zip(grid, names, strict=True):
        generator = torch.Generator(device=device_of(gen)).manual_seed(int(params["seed"]))
        tokens = _sample(gen, val, params, 1, generator, f"{label} val T={name}", False, t)["samples"][:, 0]
        scores[name] = note_f1(tokens, val["tokens"].numpy())
    best = max(range(len(grid)), key=lambda i: (scores[names[i]], -i))
    return grid[best], {name: round(v, 4) for name, v in scores.items()}


def run_generator(gen, test: dict, params: dict, label: str = "", mbr: bool = True, val: dict | None = None) -> dict:
    """First samples ``[N, 64]``, token NLL ``[N, 64]``, BCE / polyphony statistics (or
    None) over the whole test split, K samples ``[M, K, 64]`` on the diversity rows,
    (``mbr``) the MBR choice ``[M, 64]`` among ``mbr_samples`` samples of those rows and
    (``val`` given) one sample ``[N, 64]`` at the temperature tuned on ``val``. The MBR pool
    extends the K diversity samples and the tuned sample has its own generator, so adding
    either leaves every other metric as is."""
    k = int(params["samples"])
    generator = torch.Generator(device=device_of(gen)).manual_seed(int(params["seed"]))
    torch.manual_seed(int(params["seed"]))
    if isinstance(gen, torch.nn.Module):
        gen.eval()
    with torch.no_grad():
        run = _sample(gen, test, params, 1, generator, label or gen.name, want_scores=True)
        run["first"] = run.pop("samples")[:, 0]
        run["rows"] = diversity_rows(len(run["first"]), params)
        sub = dnb_data.subset(test, torch.as_tensor(run["rows"]))
        pool = run["first"][run["rows"], None]
        if gen.deterministic or k < 2:
            run["diversity"] = None
        else:
            extra = _sample(gen, sub, params, k - 1, generator, f"{label or gen.name} x{k}", want_scores=False)
            run["diversity"] = pool = np.concatenate([pool, extra["samples"]], axis=1)
        m = int(params.get("mbr_samples", 0)) if mbr else 0
        if m >= 2 and not gen.deterministic and m > pool.shape[1]:
            extra = _sample(gen, sub, params, m - pool.shape[1], generator, f"{label or gen.name} MBR x{m}",
                            want_scores=False)
            pool = np.concatenate([pool, extra["samples"]], axis=1)
        run["mbr"] = M.mbr_select(pool[:, :m]) if m >= 2 else None
        run["mbr_f1"] = M.mbr_select(pool[:, :m], utility="note_f1") if m >= 2 else None
        run["tuned"], run["tuned_temperature"], run["tuned_scores"] = None, None, None
        if val is not None and params.get("tuned_temperatures"):
            if gen.deterministic:  # one line whatever the temperature
                run["tuned"] = run["first"]
            else:
                t, run["tuned_scores"] = tune_temperature(gen, val, params, label or gen.name)
                run["tuned_temperature"] = name = temperature_label(t)
                if t == parse_temperature(params["temperature"]):  # same seed, same batches: the first sample again
                    run["tuned"] = run["first"]
                else:
                    generator = torch.Generator(device=device_of(gen)).manual_seed(int(params["seed"]))
                    run["tuned"] = _sample(gen, test, params, 1, generator, f"{label or gen.name} T={name}", False,
                                           t)["samples"][:, 0]
    return run


def metric_stats(run: dict, test: dict) -> tuple[dict, dict]:
    """{metric: (per-pair statistics [N, D], rows or None = all pairs)} for the metrics the
    run defines (their statistics are ``METRICS[name].statistic``), and per-example columns."""
    true = test["tokens"].numpy()
    drums, key = test["drums"].numpy(), test["key"].numpy()
    first = run["first"]
    out: dict = {}
    per_example: dict = {}
    if run["bce"] is not None:
        out["bce"] = (run["bce"], None)
        per_example["bce"] = run["bce"][:, 0]
    if run["nll"] is not None:
        nll = M.nll_stats(run["nll"])
        out["nll_per_step"] = out["perplexity"] = (nll, None)
        per_example["nll_per_step"] = nll[:, 0] / nll[:, 1]
    bleu = M.bleu_stats(first, true)
    for order in range(1, 5):
        out[f"bleu{order}"] = (bleu, None)
    per_example["bleu4"] = M.sentence_bleu(bleu, 4)
    if run.get("mbr") is not None:
        out["bleu4_mbr"] = (M.bleu_stats(run["mbr"], true[run["rows"]]), run["rows"])
    if run.get("mbr_f1") is not None:
        out["onset_pitch_f1_mbr"] = (M.onset_stats(run["mbr_f1"], true[run["rows"]])[:, NOTE_F1], run["rows"])
    if run.get("tuned") is not None:
        out["bleu4_tuned"] = (M.bleu_stats(run["tuned"], true), None)
        out["onset_pitch_f1_tuned"] = (M.onset_stats(run["tuned"], true)[:, NOTE_F1], None)
    onsets = M.onset_stats(first, true)
    for name, cols in ONSET_COLUMNS.items():
        out[name] = (onsets[:, cols], None)
    per_example["onset_f1"] = M.pair_f1(first, true, pitch=False)
    per_example["onset_pitch_f1"] = M.pair_f1(first, true, pitch=True)
    musical = M.musical_stats(first, drums, key)
    if run["poly"] is not None:
        musical["polyphony_rate"] = run["poly"]
    for name in MUSICAL:
        out[name] = (musical[name], None)
    harmony = M.harmony_stats(first, test["chords"].numpy())
    for name in HARMONY:
        out[name] = (harmony[name], None)
    musical |= harmony
    for name in ("key_consistency", "kick_lock", "chord_root_rate"):
        num, den = musical[name][:, 0], musical[name][:, 1]
        per_example[name] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    if run["diversity"] is None:  # identical samples by design: the values of no diversity at all
        n = len(first)
        perfect_bleu = np.ones((n, 2 * 4 + 2))  # every n-gram matched, equal lengths: BLEU 1
        out["distinct_samples"] = (np.ones((n, 2)), None)
        out["self_bleu4"] = (perfect_bleu, None)
        out["pairwise_f1_distance"] = (np.tile([0.0, 1.0], (n, 1)), None)
    else:
        div = M.diversity_stats(run["diversity"])
        for name in DIVERSITY:
            out[name] = (div[name], run["rows"])
    return out, per_example


def summarise_all(stats: dict, song: np.ndarray, params: dict) -> dict:
    n_boot, seed = int(params["bootstrap"]), int(params["seed"])
    result = {}
    for name, metric in METRICS.items():
        if name not in stats:
            result[name] = None
            continue
        values, rows = stats[name]
        result[name] = M.summarise(values, metric.statistic, song if rows is None else song[rows], n_boot, seed)
    return result


BREAKDOWN = ("perplexity", "bleu4", "onset_pitch_f1", "chord_tone_rate")  # by corpus and by folder genre


def song_groups(meta: dict) -> dict[str, np.ndarray]:
    """{"corpus": [songs] name, "folder_genre": [songs] name} from ``meta.json`` (empty when it has none)."""
    out = {}
    for kind, key in (("corpus", "song_corpus"), ("folder_genre", "song_folder_genre")):
        if key in meta:
            out[kind] = np.array([str(v) or "(none)" for v in meta[key]], dtype=object)
    return out


def breakdown(stats: dict, song: np.ndarray, groups: dict[str, np.ndarray], params: dict) -> dict:
    """``{kind: {group: {"n_songs", metric: summary}}}``: the ``BREAKDOWN`` metrics over the test pairs of
    each corpus and each folder genre, song-bootstrap intervals within the group, so that a reader
    sees whether a ranking holds outside the songs that dominate training."""
    n_boot, seed = int(params["bootstrap"]), int(params["seed"])
    out: dict = {}
    for kind, names in groups.items():
        label = names[song]
        out[kind] = {}
        for group in sorted(set(label)):
            rows = label == group
            part = {"n_songs": int(len(np.unique(song[rows]))), "n_pairs": int(rows.sum())}
            for name in BREAKDOWN:
                if name not in stats:
                    part[name] = None
                    continue
                values, subset = stats[name]
                keep = rows if subset is None else rows[subset]
                song_of = song if subset is None else song[subset]
                part[name] = M.summarise(values[keep], METRICS[name].statistic, song_of[keep], n_boot, seed)
            out[kind][group] = part
    return out


def reference_metrics(test: dict, params: dict) -> dict:
    """The musical metrics of the real bass on the same pairs (what a model should match)."""
    stats = M.musical_stats(test["tokens"].numpy(), test["drums"].numpy(), test["key"].numpy())
    stats |= M.harmony_stats(test["tokens"].numpy(), test["chords"].numpy())
    song = test["song"].numpy()
    return {name: M.summarise(stats[name], METRICS[name].statistic, song, int(params["bootstrap"]),
                              int(params["seed"])) for name in MUSICAL + HARMONY}


def notes_for(gen, stats: dict) -> list[str]:
    notes = []
    if "nll_per_step" not in stats:
        notes.append("no token distribution: NLL and perplexity n/a")
    if getattr(gen, "nll_is_bound", False):
        notes.append("perplexity_is_bound: NLL is an upper bound (ELBO), so perplexity is too")
    if "bce" not in stats:
        notes.append("no onset probabilities: BCE n/a")
        notes.append("polyphony_rate 0 by construction: output is monophonic tokens")
    if gen.deterministic:
        notes.append("deterministic by design: the K samples are identical (diversity trivial)")
    elif len(stats["distinct_samples"][0]) < len(stats["bleu4"][0]):
        notes.append(f"diversity on a seeded subset of {len(stats['distinct_samples'][0])} test pairs")
    return notes


def evaluate_one(
    name: str, kind: str, gen, test: dict, params: dict, reference: dict, groups: dict | None = None,
    val: dict | None = None,
) -> tuple[dict, pd.DataFrame, dict]:
    """The report, the per-example frame and the per-pair statistics (for comparisons).
    Ablation runs get MBR too: the previous-window run is the context model that faces
    ``repeat_previous`` on BLEU-4 MBR. ``val``: the pairs that tune the temperature."""
    start = time.time()
    run = run_generator(gen, test, params, name, val=val)
    stats, per_example = metric_stats(run, test)
    song = test["song"].numpy()
    report = {
        "name": name,
        "kind": kind,
        "status": "ok",
        "n_test_pairs": int(len(song)),
        "n_test_songs": int(len(np.unique(song))),
        "max_pairs_per_song": int(params.get("max_pairs_per_song", 0)),
        "mbr_samples": int(params.get("mbr_samples", 0)),
        "perplexity_is_bound": bool(getattr(gen, "nll_is_bound", False)),
        "tuned_temperatures": [temperature_label(parse_temperature(t)) for t in params.get("tuned_temperatures") or []]
        if val is not None else [],
        "tuned_val_pairs": dnb_data.batch_size_of(val) if val is not None else 0,
        "tuned_temperature": run.get("tuned_temperature"),
        "tuned_validation_f1": run.get("tuned_scores"),
        "metrics": summarise_all(stats, song, params),
        "reference": reference,
        "notes": notes_for(gen, stats),
        "breakdown": breakdown(stats, song, groups or {}, params),
    }
    print(f"  {name}: evaluated in {time.time() - start:.1f} s")
    frame = pd.DataFrame({"model": name, "pair": np.arange(len(song)), "song": song, **per_example})
    return report, frame, stats


def comparisons(kept: dict[str, dict], models: list[str], params: dict, song: np.ndarray) -> dict:
    """{model: {baseline: {metric: difference}}}: model minus baseline on the same pairs,
    with a paired song-bootstrap interval and whether it clears the baseline (interval
    entirely on the better side: below 0 for perplexity, above 0 otherwise)."""
    out: dict = {}
    n_boot, seed = int(params["bootstrap"]), int(params["seed"])
    for model in models:
        out[model] = {}
        for base in params.get("compare_baselines", []):
            row = {}
            for metric in params.get("compare_metrics", []):
                a, b = kept.get(model, {}).get(metric), kept.get(base, {}).get(metric)
                diff = None
                if a is not None and b is not None:  # same statistic, same rows: seeded alike
                    rows = a[1]
                    diff = M.paired_difference(a[0], b[0], METRICS[metric].statistic,
                                               song if rows is None else song[rows], n_boot, seed)
                if diff is not None:
                    diff["clears"] = bool(diff["hi"] < 0 if METRICS[metric].lower_is_better else diff["lo"] > 0)
                row[metric] = diff
            out[model][base] = row
    return out


def skipped(name: str, kind: str, status: str, test: dict, reference: dict) -> dict:
    song = test["song"].numpy()
    return {"name": name, "kind": kind, "status": status, "n_test_pairs": int(len(song)),
            "n_test_songs": int(len(np.unique(song))), "metrics": dict.fromkeys(METRICS), "reference": reference,
            "notes": [status]}


def candidates(names: dict) -> list[tuple[str, str, Path | None, str]]:
    """(name, kind, checkpoint or None, output file stem) for everything to evaluate."""
    todo = [(name, "baseline", None, name) for name in names["baselines"]]
    todo += [(name, "model", CHECKPOINTS / f"{name}.pt", name) for name in names["models"]]
    todo += [(f"ablation_{t}", "ablation", CHECKPOINTS / "ablation" / f"{t}.pt", f"ablation_{t}")
             for t in names["ablations"]]
    return todo


def seed_checkpoints(seeds: dict, main_seed: int) -> list[tuple[str, Path, int]]:
    """(stem of the main run, checkpoint, seed) of every extra seed of ``train.seeds``."""
    return [(stem, CHECKPOINTS / "seeds" / folder / f"seed{k}.pt", k)
            for stem, folder, k in seed_runs(seeds, main_seed)]


def seed_spread(values: dict[int, float]) -> dict:
    """Mean, sample standard deviation (n - 1; None below two seeds), min and max of one metric
    over the seeds of a run (seed -> value; JSON keys are strings)."""
    v = np.array(list(values.values()), dtype=np.float64)
    return {"values": {str(k): float(x) for k, x in values.items()}, "n": len(v),
            "mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "min": float(v.min()) if len(v) else None, "max": float(v.max()) if len(v) else None}


def seed_summary(reports: dict[str, dict[int, dict]], main_seed: int, names=METRICS) -> dict:
    """``{"main_seed", "runs": {stem: {"seeds", "status", "metrics": {metric: seed_spread + the
    main run's interval}}}}`` from each run's reports by seed (only status ok ones count), over the
    metrics ``names``."""
    runs = {}
    for stem, by_seed in reports.items():
        ok = {k: r for k, r in by_seed.items() if r["status"] == "ok"}
        metrics = {}
        for name in names:
            values = {k: r["metrics"][name]["value"] for k, r in ok.items() if r["metrics"].get(name)}
            if not values:
                continue
            main = (ok.get(main_seed) or {}).get("metrics", {}).get(name) or {}
            metrics[name] = {**seed_spread(values), "lo": main.get("lo"), "hi": main.get("hi")}
        runs[stem] = {"seeds": sorted(by_seed), "status": {str(k): r["status"] for k, r in sorted(by_seed.items())},
                      "metrics": metrics}
    return {"main_seed": main_seed, "runs": runs}


def evaluate_seeds(reports: dict, seeds: dict, main_seed: int, score, names=METRICS) -> dict:
    """``metrics/seeds.json``: the main runs' reports and ``score(name, path)`` of every extra seed
    (a report; a missing checkpoint is reported as such), summarised over the metrics ``names``
    (the songs stage passes its own)."""
    by_run: dict[str, dict[int, dict]] = {}
    for stem, path, k in seed_checkpoints(seeds, main_seed):
        by_run.setdefault(stem, {main_seed: reports.get(stem) or {"status": "not evaluated", "metrics": {}}})
        if not path.exists():
            print(f"  {stem} seed {k}: missing checkpoint {path}: skipped")
            by_run[stem][k] = {"status": "missing checkpoint", "metrics": {}}
            continue
        try:
            by_run[stem][k] = score(f"{stem}_seed{k}", path)
        except Exception as err:  # one broken run must not hide the others' results
            traceback.print_exc()
            by_run[stem][k] = {"status": f"failed: {type(err).__name__}: {err}", "metrics": {}}
    return seed_summary(by_run, main_seed, names)


def headline(report: dict) -> dict:
    """The selected model's metrics flattened for ``dvc metrics show``: name, status, m, m_lo, m_hi."""
    flat = {"name": report["name"], "status": report["status"]}
    for metric, value in report["metrics"].items():
        if value is not None:
            flat[metric] = value["value"]
            flat[f"{metric}_lo"] = value["lo"]
            flat[f"{metric}_hi"] = value["hi"]
    return flat


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_piano_rolls(path: Path, names: list[str], params: dict) -> None:
    """The figure's test loops (drums, real bass) and every model's first seeded sample of them."""
    loops = load_loops(TENSORS, int(params["roll_loops"]), int(params["seed"]))
    samples = sample_models(names, loops, CHECKPOINTS, int(params["seed"]), float(params["temperature"]))
    arrays = {"drums": loops["drums"].numpy().astype(np.uint8), "tokens": loops["tokens"].numpy().astype(np.int64)}
    arrays |= {f"sample_{name}": tokens for name, tokens in samples.items() if tokens is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def main() -> None:
    everything = load_params()
    params, model = everything["evaluate"], everything["model"]
    names = {"models": list(everything["models"]), "baselines": list(everything["baselines"]),
             "ablations": list(everything["train"]["ablation"])}
    torch.set_num_threads(int(params.get("threads", 1)))
    device = pick_device(params.get("device", "auto"))
    start = time.time()
    train, test = dnb_data.load_split(TENSORS, "train"), dnb_data.load_split(TENSORS, "test")
    all_pairs = dnb_data.batch_size_of(test)
    test = cap_per_song(test, int(params.get("max_pairs_per_song", 0)), int(params["seed"]))
    info = dnb_data.data_info(TENSORS)
    print(f"evaluate: {dnb_data.batch_size_of(test)} of {all_pairs} test pairs, {len(test['song'].unique())} songs; "
          f"fitting baselines on {dnb_data.batch_size_of(train)} train pairs")
    val = tuning_pairs(dnb_data.load_split(TENSORS, "val"), params)
    print(f"evaluate: {dnb_data.batch_size_of(val)} validation pairs tune the temperature of every sampler")
    reference = reference_metrics(test, params)
    groups = song_groups(dnb_data.load_meta(TENSORS))
    reports, frames, kept = {}, [], {}
    for name, kind, path, stem in candidates(names):
        try:
            if path is None:
                gen = build(name, params, info).fit(train)
            elif not path.exists():
                print(f"  {name}: missing checkpoint {path}: skipped")
                reports[stem] = skipped(name, kind, "missing checkpoint", test, reference)
                write_json(OUT / f"{stem}.json", reports[stem])
                continue
            else:
                gen = load_trained(path).to(device)
            report, frame, stats = evaluate_one(name, kind, gen, test, params, reference, groups, val)
            frames.append(frame)
            if kind != "baseline" or name in params.get("compare_baselines", []):
                kept[stem] = {m: stats[m] for m in params.get("compare_metrics", []) if m in stats}
        except Exception as err:  # one broken model must not hide the others' results
            traceback.print_exc()
            print(f"  {name}: FAILED ({type(err).__name__}: {err})")
            report = skipped(name, kind, f"failed: {type(err).__name__}: {err}", test, reference)
        reports[stem] = report
        write_json(OUT / f"{stem}.json", report)
        m = report["metrics"]
        shown = {k: round(m[k]["value"], 4) for k in ("bleu4", "onset_f1", "nll_per_step") if m.get(k)}
        print(f"  {name} ({kind}, {report['status']}): {shown}")
    summary = {stem: {"kind": r["kind"], "status": r["status"],
                      **{k: (v["value"] if v else None) for k, v in r["metrics"].items()}}
               for stem, r in reports.items()}
    summary["reference"] = {k: (v["value"] if v else None) for k, v in reference.items()}
    write_json(OUT / "summary.json", summary)
    compared = names["models"] + [f"ablation_{t}" for t in names["ablations"]]
    write_json(OUT / "comparisons.json", comparisons(kept, compared, params, test["song"].numpy()))

    def score(name: str, path: Path) -> dict:
        return evaluate_one(name, "seed", load_trained(path).to(device), test, params, reference, groups, val)[0]

    main_seed = int(everything["train"]["common"]["seed"])
    write_json(OUT / "seeds.json", evaluate_seeds(reports, everything["train"].get("seeds") or {}, main_seed, score))
    chosen = reports.get(model) or skipped(model, "model", "not evaluated", test, reference)
    write_json(Path("metrics.json"), headline(chosen))
    per_example = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    EVALUATION.mkdir(parents=True, exist_ok=True)
    per_example.to_parquet(EVALUATION / "per_example.parquet", index=False)
    write_piano_rolls(EVALUATION / "piano_rolls.npz", names["models"], params)
    statuses = pd.Series([r["status"].split(":")[0] for r in reports.values()]).value_counts().to_dict()
    print(f"evaluate: wrote {len(reports)} reports {statuses} and {len(per_example)} per-example rows "
          f"in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
