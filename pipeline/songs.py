"""Stage `songs`: whole songs written window by window, as `dnb generate` writes them.

Pair metrics score every 2-bar window alone, so they cannot see whether a song repeats its
riff. Here every model, ablation run and baseline writes each test song from its first kept
window on, every window conditioned on the system's OWN previous output
(``models.base.sample_song``; a system without the previous window writes each window
alone), and is scored over consecutive windows (``dnb.metrics.SONG_METRICS``: identical
line, identical rhythm, distinct lines per window, BLEU-4 of a window against the one
before) beside the real bass, plus the usual pair metrics of the free-running output
against the real bass (``SONG_PAIR_METRICS``). Then the critic's test (``dnb.critic``): for
each system a classifier trained on VALIDATION songs to tell the real 8-bar line from the
system's (same drums and chords), scored on test songs; 0.5 = indistinguishable.

Decoding is chosen on the VALIDATION songs, per system: of ``temperatures``, the one whose
free-running songs come closest to the whole-song goals (``pick_temperature``, ``goal_key``): the
gaps to the real bass's identical-line and identical-rhythm rates and distinct lines per window
(``dnb.metrics.song_target_gaps``, tolerances ``SONG_TARGETS``) and of the critic's accuracy
above chance (``dnb.critic.goal_gap``, cross-fitted on the validation songs), each over its
tolerance: the fewest goals missed, then the smallest worst gap; ties go to the earlier entry.
Repetition alone chose pitch-cooled decodings whose lines repeat like the real bass's but whose
notes a listener tells apart (the same pitch again and again). A line sampled token by token at
temperature 1 rarely repeats note for note even when the model mostly copies; a lower
temperature repeats more, for a model without context too (the same drums give the same line).
One temperature cools rhythm and pitch together, and a context model cooled until its notes
repeat like the real bass's repeats its rhythm far more than the real bass does; so an entry may
also be a pair ``[T_rhythm, T_pitch]`` (``models.base.tempered_logits``), or top-p sampling
(``{temperature, top_p}``, ``models.base.Nucleus``), which keeps a copied riff exact without
cooling the likely choices. The test songs are scored once, at the chosen entry.

A song is its kept windows in order; a window whose previous window was not kept (too
sparse) or is not contiguous starts a new chain, with no context, as a file with a
metre change does in `dnb generate`. ``max_windows`` windows per song (from the first) and
``max_songs`` seeded songs per split bound the cost. Intervals: song bootstrap.

Writes ``songs/<stem>.json`` per system and ``songs/real.json`` (dvc metrics),
``songs/summary.json`` and ``evaluation/song_rolls.npz`` (one test song's drums, real bass
and every system's free-running line, for the paper's figure; a song of ``SHAREABLE_CORPORA``
only: the figure is committed).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dnb import critic
from dnb import data as dnb_data
from dnb import metrics as M
from dnb.device import pick_device, to_device
from dnb.metrics import METRICS, SONG_METRICS, SONG_PAIR_METRICS, SONG_TARGETS
from dnb.params import load_params
from models import build
from models.base import Temperature, parse_temperature, sample_song, temperature_label
from models.checkpoint import load_trained
from pipeline.evaluate import candidates, evaluate_seeds, metric_stats, write_json
from pipeline.sampling import shareable_songs

TENSORS = Path("data/tensors")
CHECKPOINTS = Path("checkpoints")
OUT = Path("songs")
ROLLS = Path("evaluation/song_rolls.npz")


def song_windows(split: dict, max_windows: int, max_songs: int, seed: int) -> dict:
    """The first ``max_windows`` kept windows of every song (of ``max_songs`` seeded songs),
    in song order, with ``previous_row``: the row of a window's previous window, -1 where the
    window starts a chain (first window, previous one not kept, or not contiguous)."""
    song, position = split["song"].numpy(), split["position"].numpy()
    songs = np.unique(song)
    if 0 < max_songs < len(songs):
        songs = np.sort(np.random.default_rng(seed).choice(songs, max_songs, replace=False))
    order = np.lexsort((position, song))
    order = order[np.isin(song[order], songs)]
    rank = np.arange(len(order)) - np.searchsorted(song[order], song[order])  # window number within its song
    if max_windows > 0:
        order = order[rank < max_windows]
    part = dnb_data.subset(split, torch.as_tensor(order))
    s, p, has = part["song"].numpy(), part["position"].numpy(), part["has_prev"].numpy() > 0
    follows = np.zeros(len(order), dtype=bool)
    follows[1:] = (s[1:] == s[:-1]) & (p[1:] == p[:-1] + 1) & has[1:]
    part["previous_row"] = torch.as_tensor(np.where(follows, np.arange(len(order)) - 1, -1))
    return part


def free_run(gen, part: dict, params: dict, device, temperature: Temperature) -> np.ndarray:
    """``[W, 64]`` tokens of every song of ``part`` written window by window (seeded)."""
    batch = {k: v for k, v in part.items() if k != "previous_row"}
    if isinstance(gen, torch.nn.Module):
        gen.eval()
        batch = to_device(batch, device)
    generator = torch.Generator(device=device if isinstance(gen, torch.nn.Module) else "cpu")
    generator.manual_seed(int(params["seed"]))
    with torch.no_grad():
        out = sample_song(gen, batch, part["previous_row"], k=1, temperature=temperature, generator=generator)
    return out[:, 0].cpu().numpy().astype(np.int64)


def song_metrics(tokens: np.ndarray, part: dict, params: dict) -> dict:
    """Song-level metrics of ``tokens`` (and, unless they are the real bass, their pair
    metrics against it), each ``{"value", "lo", "hi"}`` by song bootstrap."""
    n_boot, seed = int(params["bootstrap"]), int(params["seed"])
    stats = M.song_stats(tokens, part["previous_row"].numpy(), part["song"].numpy())
    out = {name: M.summarise(values, SONG_METRICS[name].statistic, song, n_boot, seed)
           for name, (values, song) in stats.items()}
    run = {"first": tokens, "bce": None, "nll": None, "mbr": None, "poly": None, "diversity": None}
    pairs, _ = metric_stats(run, part)
    song = part["song"].numpy()
    out |= {name: M.summarise(pairs[name][0], METRICS[name].statistic, song, n_boot, seed)
            for name in SONG_PAIR_METRICS}
    return out


def target_values(tokens: np.ndarray, part: dict) -> dict[str, float]:
    """{``SONG_TARGETS`` name: value} of the lines ``tokens`` of the songs of ``part``."""
    stats = M.song_stats(tokens, part["previous_row"].numpy(), part["song"].numpy())
    return {name: float(SONG_METRICS[name].statistic(stats[name][0].sum(0))) for name in SONG_TARGETS}


def rounded(values: dict[str, float]) -> dict[str, float]:
    """``values`` as the reports write them (4 decimals); choices are made on the unrounded ones."""
    return {name: round(value, 4) for name, value in values.items()}


def temperature_grid(params: dict) -> list[Temperature]:
    """``params["temperatures"]`` parsed; a bad entry is one ``SystemExit`` line."""
    try:
        grid = [parse_temperature(t) for t in params["temperatures"]]
    except (TypeError, ValueError) as err:
        raise SystemExit(f"songs.temperatures: {err}") from None
    if not grid:
        raise SystemExit("songs.temperatures: give at least one temperature")
    return grid


def goal_key(gaps: list[float]) -> tuple[int, float]:
    """How far a decoding is from the whole-song goals, given each goal's gap over its tolerance (<= 1:
    reached): (goals missed, worst gap). Fewer goals missed first: a worst gap alone let a critic that
    misses its goal everywhere (accuracies 0.95 to 0.97, their differences noise) trade a decoding that
    reaches every repetition goal for one that reaches none."""
    return sum(g > 1 for g in gaps), max(gaps)


def choose_decoding(gaps: list[list[float]], critic_gap: Callable[[int], float]) -> tuple[int, dict[int, tuple]]:
    """(index of the chosen entry, {index: ``goal_key``} of the entries scored): the entry with the lowest
    ``goal_key`` over its repetition gaps ``gaps[i]`` and its critic gap ``critic_gap(i)``; ties go to the
    earlier entry. ``critic_gap`` (a critic to fit) is called only where it can change the choice: entries
    are visited by the key of their repetition gaps alone (a lower bound of the whole key), and once that
    bound exceeds the best key so far no later entry can win."""
    bound = [goal_key(g) for g in gaps]
    keys: dict[int, tuple] = {}
    best = None
    for i in sorted(range(len(gaps)), key=lambda i: (bound[i], i)):
        if best is not None and (bound[i], i) > (keys[best], best):
            break
        keys[i] = goal_key([*gaps[i], critic_gap(i)])
        if best is None or (keys[i], i) < (keys[best], best):
            best = i
    if best is None:
        raise ValueError("no decoding to choose from")
    return best, keys


def pick_temperature(gen, part: dict, real: dict[str, float], real_lines: tuple[np.ndarray, np.ndarray],
                     params: dict, device) -> tuple[Temperature, dict, np.ndarray]:
    """(temperature, its validation report, validation lines at it): the decoding of
    ``params["temperatures"]`` whose validation songs come closest to the whole-song goals (``goal_key`` of
    the repetition gaps, ``dnb.metrics.song_target_gaps`` against ``real``, the real bass's
    ``target_values`` on ``part``, and of the critic's gap, ``dnb.critic.goal_gap`` of the critic's accuracy
    cross-fitted on the validation songs, ``dnb.critic.cross_fitted_accuracy``, against ``real_lines``,
    the real lines' ``critic_lines``; ``choose_decoding``, which fits the critic only where it can change
    the choice); ties go to the earlier entry. The report, by ``temperature_label``: ``validation_gaps``
    (worst repetition gap) and ``validation_targets`` for every entry; ``validation_critic``,
    ``validation_missed`` (goals missed) and ``validation_scores`` (worst gap of all four) for the entries
    the critic was fitted on."""
    temperatures = temperature_grid(params)
    if gen.deterministic:
        temperatures = temperatures[:1]
    lines = [free_run(gen, part, params, device, t) for t in temperatures]
    values = [target_values(line, part) for line in lines]
    gaps = [M.song_target_gaps(v, real) for v in values]
    accuracy: dict[int, float | None] = {}

    def critic_gap(i: int) -> float:
        accuracy[i] = critic.cross_fitted_accuracy(*real_lines, *critic_lines(lines[i], part), seed=int(params["seed"]))
        return critic.goal_gap(accuracy[i])

    best, keys = choose_decoding(gaps, critic_gap)
    labels = [temperature_label(t) for t in temperatures]
    report = {"validation_gaps": rounded({label: max(g) for label, g in zip(labels, gaps, strict=True)}),
              "validation_targets": {label: rounded(v) for label, v in zip(labels, values, strict=True)},
              "validation_critic": {labels[i]: None if a is None else round(a, 4) for i, a in accuracy.items()},
              "validation_missed": {labels[i]: k[0] for i, k in keys.items()},
              "validation_scores": rounded({labels[i]: k[1] for i, k in keys.items()})}
    return temperatures[best], report, lines[best]


def critic_rows(part: dict, control: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(``[S, 4]`` rows of every 8-bar segment of the songs of ``part``, ``[S, 4]`` the rows whose
    line each segment plays): its own, or with a ``dnb.critic.CONTROLS`` name those of the segment
    ``dnb.critic.control_rows`` names (``seed``), segments without one left out."""
    song = part["song"].numpy()
    rows = critic.segments(part["previous_row"].numpy() >= 0, song)
    if control is None:
        return rows, rows
    source = critic.control_rows(song[rows[:, 0]], control, seed)
    return rows[source >= 0], rows[source[source >= 0]]


def critic_lines(tokens: np.ndarray, part: dict,
                 segments: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(critic features of every 8-bar line of the songs of ``part``, their songs); ``segments``:
    ``critic_rows`` (default: every segment playing its own line)."""
    rows, played = critic_rows(part) if segments is None else segments
    if len(rows) == 0:
        return np.zeros((0, len(critic.FEATURE_NAMES))), np.zeros(0, dtype=np.int64)
    features = critic.features(tokens[played], part["drums"].numpy()[rows], part["chords"].numpy()[rows])
    return features, part["song"].numpy()[rows[:, 0]]


def critic_accuracy(fake: dict, real: dict, params: dict) -> dict | None:
    """The critic's test accuracy on the test songs, trained on the validation songs."""
    result = critic.critic_test(real["val"][0], fake["val"][0], real["test"][0], fake["test"][0],
                                real["test"][1], fake["test"][1], seed=int(params["seed"]))
    if result is None:
        return None
    return result["accuracy"] | {"n_real": result["n_real"], "n_fake": result["n_fake"]}


def critic_controls(parts: dict, params: dict) -> dict:
    """{``dnb.critic.CONTROLS`` name: the critic's accuracy on real lines put where they were not
    played (against the real lines of the same segments), and the features that give them away}:
    the scale of every system's accuracy."""
    out = {}
    tokens = {split: part["tokens"].numpy().astype(np.int64) for split, part in parts.items()}
    for control in critic.CONTROLS:
        own, moved = {}, {}
        for split, part in parts.items():
            rows, played = critic_rows(part, control, int(params["seed"]))
            own[split] = critic_lines(tokens[split], part, (rows, rows))
            moved[split] = critic_lines(tokens[split], part, (rows, played))
        out[control] = {"critic_accuracy": critic_accuracy(moved, own, params),
                        "critic_giveaways": critic.giveaways(own["test"][0], moved["test"][0])}
    return out


def score_system(gen, parts: dict, real_val: dict, real_lines: dict, params: dict,
                 device) -> tuple[dict, Temperature]:
    """(report, decoding) of one system: its decoding chosen on the validation songs
    (``pick_temperature``), then the test songs written once at it, their song and pair metrics, the
    critic's accuracy and the features that give its lines away (``dnb.critic.giveaways``)."""
    temperature, chosen, val_lines = pick_temperature(gen, parts["val"], real_val, real_lines["val"], params, device)
    lines = {"val": val_lines, "test": free_run(gen, parts["test"], params, device, temperature)}
    report = {"status": "ok", "takes_previous": bool(gen.takes_previous), "temperature": temperature_label(temperature),
              **chosen, "metrics": song_metrics(lines["test"], parts["test"], params)}
    fake = {split: critic_lines(lines[split], part) for split, part in parts.items()}
    report["metrics"]["critic_accuracy"] = critic_accuracy(fake, real_lines, params)
    report["critic_giveaways"] = critic.giveaways(real_lines["test"][0], fake["test"][0])
    return report, temperature


def song_seeds(reports: dict, train: dict, parts: dict, real_val: dict, real_lines: dict, params: dict,
               device) -> dict:
    """``songs/seeds.json``: every extra training seed of ``train.seeds`` written as whole songs the
    main run's way (its own decoding chosen on validation, the test songs once), summarised over the
    seeds as ``metrics/seeds.json`` is; per seed also the decoding and the test songs' worst target
    gap over its tolerance (``dnb.metrics.song_target_gap``: <= 1 when all three repetition targets
    are reached)."""
    main_seed = int(train["common"]["seed"])
    chosen: dict[str, dict] = {}

    def score(label: str, path: Path) -> dict:
        chosen[label] = score_system(load_trained(path).to(device), parts, real_val, real_lines, params, device)[0]
        return chosen[label]

    out = evaluate_seeds(reports, train.get("seeds") or {}, main_seed, score, [*SONG_METRICS, *SONG_PAIR_METRICS])
    real = {name: reports["real"]["metrics"][name]["value"] for name in SONG_TARGETS}
    for stem, run in out["runs"].items():
        by_seed = {k: reports.get(stem) if k == main_seed else chosen.get(f"{stem}_seed{k}") for k in run["seeds"]}
        ok = {k: r for k, r in by_seed.items() if r and r["status"] == "ok"}
        run["temperature"] = {str(k): r["temperature"] for k, r in ok.items()}
        run["test_target_gap"] = {str(k): round(M.song_target_gap(
            {name: r["metrics"][name]["value"] for name in SONG_TARGETS}, real), 4) for k, r in ok.items()}
    return out


def figure_song(split: dict, windows: int, shown: np.ndarray | None) -> dict:
    """The paper's whole-song figure: the first ``windows`` windows of the first test song of a
    shareable corpus (``shown`` [songs] bool; the figure is committed) that has that many in one
    chain (else the longest such chain), as a part of ``song_windows``; empty when no song may be shown."""
    whole = song_windows(split, 0, 0, 0)
    prev, song = whole["previous_row"].numpy(), whole["song"].numpy()
    starts = np.flatnonzero(prev < 0)
    ends = np.r_[starts[1:], len(prev)]
    lengths = ends - starts if shown is None else np.where(shown[song[starts]], ends - starts, 0)
    long_enough = np.flatnonzero(lengths >= windows)
    best = int(long_enough[0]) if len(long_enough) else int(np.argmax(lengths)) if len(lengths) else 0
    rows = np.arange(starts[best], starts[best] + min(windows, lengths[best])) if len(lengths) else np.zeros(0, int)
    part = dnb_data.subset(whole, torch.as_tensor(rows, dtype=torch.long))
    part["previous_row"] = torch.as_tensor(np.r_[-1, np.arange(len(rows) - 1)] if len(rows) else np.zeros(0, int))
    return part


def main() -> None:
    everything = load_params()
    params = everything["songs"]
    grid = temperature_grid(params)  # a bad entry stops the stage here with one line, not once per system
    names = {"models": list(everything["models"]), "baselines": list(everything["baselines"]),
             "ablations": list(everything["train"]["ablation"])}
    torch.set_num_threads(int(params.get("threads", 1)))
    device = pick_device(params.get("device", "auto"))
    start = time.time()
    train = dnb_data.load_split(TENSORS, "train")
    info = dnb_data.data_info(TENSORS)
    parts = {split: song_windows(dnb_data.load_split(TENSORS, split), int(params["max_windows"]),
                                 int(params["max_songs"]), int(params["seed"])) for split in ("val", "test")}
    test = parts["test"]
    figure = figure_song(dnb_data.load_split(TENSORS, "test"), int(params["figure_windows"]), shareable_songs(TENSORS))
    print(f"songs: {len(test['song'])} test windows of {len(np.unique(test['song'].numpy()))} songs, "
          f"{int((test['previous_row'] >= 0).sum())} with the window before them")
    val = parts["val"]
    real_val = target_values(val["tokens"].numpy().astype(np.int64), val)
    real_lines = {split: critic_lines(part["tokens"].numpy().astype(np.int64), part) for split, part in parts.items()}
    reports = {"real": {"name": "real", "kind": "reference", "status": "ok",
                        "validation_targets": rounded(real_val),
                        "metrics": song_metrics(test["tokens"].numpy().astype(np.int64), test, params)
                        | {"critic_accuracy": None}}}
    for name in SONG_PAIR_METRICS:  # the real bass against itself is perfect by definition: not a result
        reports["real"]["metrics"][name] = None
    reports["real"]["critic_controls"] = critic_controls(parts, params)
    arrays = {"drums": figure["drums"].numpy().astype(np.uint8), "tokens": figure["tokens"].numpy().astype(np.int64)}
    for name, kind, path, stem in tqdm(candidates(names), desc="songs", unit="system"):
        report = {"name": name, "kind": kind, "status": "ok"}
        try:
            if path is None:
                gen = build(name, everything["evaluate"], info).fit(train)
            elif not path.exists():
                raise FileNotFoundError(f"missing checkpoint {path}")
            else:
                gen = load_trained(path).to(device)
            scored, temperature = score_system(gen, parts, real_val, real_lines, params, device)
            report |= scored
            if len(figure["song"]):
                arrays[f"sample_{stem}"] = free_run(gen, figure, params, device, temperature)
        except Exception as err:  # one broken system must not hide the others
            traceback.print_exc()
            report |= {"status": f"failed: {type(err).__name__}: {err}",
                       "metrics": dict.fromkeys(list(SONG_METRICS) + list(SONG_PAIR_METRICS))}
        reports[stem] = report
        m = report["metrics"]
        shown = {k: round(m[k]["value"], 3) for k in ("identical_line_rate", "distinct_line_rate", "critic_accuracy")
                 if m.get(k)}
        print(f"  {name} ({report['status']}): {shown}")
    seeds = song_seeds(reports, everything["train"], parts, real_val, real_lines, params, device)
    for stem, report in reports.items():
        report |= {"n_test_songs": int(len(np.unique(test["song"].numpy()))), "n_test_windows": int(len(test["song"])),
                   "max_windows": int(params["max_windows"]),
                   "temperatures": [temperature_label(t) for t in grid]}
        write_json(OUT / f"{stem}.json", report)
    summary = {stem: {k: (v["value"] if v else None) for k, v in r["metrics"].items()} for stem, r in reports.items()}
    write_json(OUT / "summary.json", summary)
    write_json(OUT / "seeds.json", seeds)
    ROLLS.parent.mkdir(parents=True, exist_ok=True)
    np.savez(ROLLS, **arrays)
    print(f"songs: {len(reports)} systems in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
