"""Stage `tables`: LaTeX tables, number macros and figures for the paper.

Reads ``metrics/*.json`` (one file per model, baseline and ablation run of the name
lists in params.yaml, and ``metrics/seeds.json``, the spread of the extra training seeds),
the data reports, the dvclive logs and the piano-roll samples of `evaluate`, and writes
``paper/generated/*.tex`` and ``paper/generated/figures/*.png``.
The paper text quotes numbers only through the macros of ``macros.tex``, and every
comparative sentence is computed (``pipeline/report/prose.py``). A metrics file that
is missing or whose system failed stops the stage with one line naming it: a green
``dvc repro`` never typesets "n/a" for a system that should have numbers. "n/a" is
left only for a metric a system does not define (pix2pix has no perplexity).
"""

from __future__ import annotations

import json
from pathlib import Path

from dnb.metrics import METRICS, REPORTED
from dnb.params import ablation_run, load_params, seed_runs
from dnb.schema import SOURCES
from pipeline.report.figures import song_roll, write_figures
from pipeline.report.latex import (
    breakdown_table,
    cell,
    compute_table,
    data_table,
    entry,
    latex_escape,
    macro_name,
    number,
    percent,
    quality_table,
    seed_table,
    split_counts,
    table,
)
from pipeline.report.names import ABLATION_ROWS, display
from pipeline.report.prose import (
    LADDER_CHORD_RUN,
    ablation_sentence,
    best_model,
    best_song_system,
    comparison_baselines,
    context_sentence,
    corpus_sentence,
    critic_sentence,
    evaluation_sentence,
    harmony_sentence,
    lead_sentence,
    pix_sentence,
    quality_sentence,
    seed_sentence,
    seed_spreads,
    silence_sentence,
    skip_sentence,
    song_seed_sentence,
    song_sentence,
    stop_sentence,
)

ACCURACY_COLUMNS = ["perplexity", "bce", "bleu4", "bleu4_mbr", "bleu4_tuned", "onset_f1", "onset_pitch_f1",
                    "onset_pitch_f1_mbr", "onset_pitch_f1_tuned", "pitch_class_accuracy"]
MUSIC_COLUMNS = ["key_consistency", "chord_tone_rate", "chord_root_rate", "kick_lock", "empty_bar_rate", "upc",
                 "qualified_note_rate"]
DIVERSITY_COLUMNS = ["distinct_samples", "self_bleu4", "pairwise_f1_distance"]
PIX_COLUMNS = ["bce", "onset_f1", "onset_pitch_f1", "bleu4", "polyphony_rate", "distinct_samples"]
ABLATION_COLUMNS = ["perplexity", "bleu4", "onset_f1", "onset_pitch_f1", "pitch_class_accuracy", "key_consistency",
                    "chord_tone_rate"]
QUALITY_METRICS = ["perplexity", "bleu4", "bleu4_mbr", "bleu4_tuned"]  # the quality bar: model minus baseline, paired
RULES = ["root_on_kick", "chord_root_on_kick"]  # the rules a bassist starts from: no perplexity, one line
# the bars of the models given the song's past (own table)
CONTEXT_BASELINES = ["repeat_previous", "repeat_matching", "context_knn"]
SONG_COLUMNS = ["identical_line_rate", "identical_rhythm_rate", "distinct_line_rate", "consecutive_bleu4",
                "onset_pitch_f1", "bleu4", "critic_accuracy"]
SONG_CAPTION = (r"Whole test songs written window by window, each window conditioned on the system's own "
                r"previous output (free running, as \texttt{dnb generate} writes a song; systems without "
                r"the previous window write each window alone), at the decoding whose validation songs come "
                r"closest to the goals (repetition and critic; per system, of \texttt{songs.temperatures}). Over "
                r"consecutive windows: share with the "
                r"identical line and the identical onset rhythm, distinct lines per window, BLEU-4 of a "
                r"window against the one before; note F1 and BLEU-4 of the free-running output against the "
                r"real bass; the critic's accuracy telling real from generated 8-bar lines (0.5: "
                r"indistinguishable). 95\% song-bootstrap intervals; bold: closest to the real bass "
                r"(critic: lowest).")
CONTEXT_CAPTION = (r"Against the baselines given the song's past: each model and ablation run minus the copy of "
                   r"the previous window (repeat previous), of the closer of the previous and the recalled window "
                   r"(repeat matching) and the retrieval told the chords and the previous window (context kNN), "
                   r"on the same test pairs, given the real previous window (teacher-forced context), paired "
                   r"song bootstrap as in Table~\ref{tab:quality}.")
SEED_COLUMNS = ["perplexity", "bleu4", "bleu4_mbr", "bleu4_tuned", "onset_f1", "onset_pitch_f1", "onset_pitch_f1_mbr",
                "onset_pitch_f1_tuned",
                "chord_tone_rate"]
RULE_METRICS = ["bleu4", "bleu4_mbr", "bleu4_tuned", "onset_pitch_f1", "onset_pitch_f1_mbr", "onset_pitch_f1_tuned"]
RULE_CAPTION = (r"Against the rules: each model and ablation run minus root on kick (the key's tonic on every "
                r"kick) and chord root on kick (the annotated chord's root on every kick), paired song bootstrap "
                r"as in Table~\ref{tab:quality}.")


# --------------------------------------------------------------------------- inputs


def read_json(path: Path) -> dict:
    """A JSON file that must exist: a missing or broken one stops the stage with one line."""
    try:
        return json.loads(Path(path).read_text())
    except OSError:
        raise SystemExit(f"tables: {path} is missing: run `dvc repro` (the stage that writes it)") from None
    except ValueError as err:
        raise SystemExit(f"tables: {path} is not valid JSON ({err}): run `dvc repro` again") from None


def load_results(metrics_dir: Path, models: list[str], baselines: list[str], tags: list[str]) -> dict:
    """{"models": {name: file}, "baselines": {...}, "ablation": {tag: file}, "comparisons": file}.
    Every file must exist with status ok: the error names all that do not."""
    metrics_dir = Path(metrics_dir)
    results: dict = {"models": {}, "baselines": {}, "ablation": {}}
    problems = []
    wanted = [("models", n, n) for n in models] + [("baselines", n, n) for n in baselines]
    wanted += [("ablation", t, f"ablation_{t}") for t in tags]
    for group, name, stem in wanted:
        path = metrics_dir / f"{stem}.json"
        if not path.exists():
            problems.append(f"{path} missing")
            continue
        data = read_json(path)
        if data.get("status") != "ok":
            problems.append(f"{path}: {data.get('status', 'no status')}")
        results[group][name] = data
    if problems:
        raise SystemExit("tables: not every system was evaluated (" + "; ".join(problems)
                         + "): run `dvc repro evaluate` and read its log")
    results["comparisons"] = read_json(metrics_dir / "comparisons.json")
    return results


def load_seeds(path: Path, stage: str = "evaluate") -> dict:
    """``metrics/seeds.json`` (or ``songs/seeds.json``, written by ``stage``); a seed run that is
    missing or failed stops the stage, as a system does."""
    seeds = read_json(path)
    problems = [f"{stem} seed {k}: {status}" for stem, run in (seeds.get("runs") or {}).items()
                for k, status in (run.get("status") or {}).items() if status != "ok"]
    if problems:
        raise SystemExit("tables: not every training seed was evaluated (" + "; ".join(problems)
                         + f"): run `dvc repro {stage}` and read its log")
    return seeds


def load_songs(songs_dir: Path, stems: list[str]) -> dict:
    """{stem: songs/<stem>.json} of every system and of the real bass; missing or failed ones stop the stage."""
    songs, problems = {}, []
    for stem in ["real"] + stems:
        path = Path(songs_dir) / f"{stem}.json"
        if not path.exists():
            problems.append(f"{path} missing")
            continue
        songs[stem] = read_json(path)
        if songs[stem].get("status") != "ok":
            problems.append(f"{path}: {songs[stem].get('status', 'no status')}")
    if problems:
        raise SystemExit("tables: not every system wrote its songs (" + "; ".join(problems)
                         + "): run `dvc repro songs` and read its log")
    return songs


def reference_of(results: dict) -> dict | None:
    """Real-bass values of the musical metrics (taken from the first file that has them)."""
    for group in ("models", "baselines", "ablation"):
        for data in results[group].values():
            if data.get("reference"):
                return data["reference"]
    return None


# --------------------------------------------------------------------------- macros


def macros(results: dict, reference: dict | None, stats: dict, extract: dict, annotate: dict,
           songs: dict, seeds: dict | None = None, song_seeds: dict | None = None,
           chord_run: str | None = LADDER_CHORD_RUN) -> str:
    """``\\newcommand`` for every number and computed sentence the text quotes; ``chord_run`` as
    ``write_tables``."""
    out: dict[str, str] = {}
    out["seedSentence"] = seed_sentence(seeds or {}, SEED_COLUMNS)
    spreads = seed_spreads(seeds or {}, SEED_COLUMNS)
    for metric in SEED_COLUMNS:
        out[macro_name("seed", "spread", metric)] = number(spreads.get(metric), METRICS[metric].digits + 1)
    for stem, data in songs.items():
        for metric, spec in REPORTED.items():
            item = entry(data.get("metrics"), metric)
            if item is not None:
                out[macro_name("song", stem, metric)] = number(item["value"], spec.digits)
    best_song = best_song_system(songs)
    out["songSentence"] = song_sentence(songs)
    out["criticSentence"] = critic_sentence(songs)
    out["songSeedSentence"] = song_seed_sentence(song_seeds, best_song, songs)
    out["contextSentence"] = context_sentence(results.get("comparisons") or {}, spreads=spreads)
    out["matchingSentence"] = context_sentence(results.get("comparisons") or {}, "repeat_matching", spreads)
    out["contextKnnSentence"] = context_sentence(results.get("comparisons") or {}, "context_knn", spreads)
    out["bestSongSystem"] = display(best_song) if best_song else "n/a"
    real_songs = songs.get("real") or {}
    out["nSongTestSongs"] = str(real_songs.get("n_test_songs", "n/a"))
    out["nSongTestWindows"] = str(real_songs.get("n_test_windows", "n/a"))
    out["songMaxWindows"] = str(real_songs.get("max_windows", "n/a"))
    out["songTemperatures"] = ", ".join(real_songs.get("temperatures") or []) or "n/a"
    for group in ("models", "baselines"):
        for name, data in results[group].items():
            for metric, spec in METRICS.items():
                item = entry(data.get("metrics"), metric)
                out[macro_name(name, metric)] = number(item["value"] if item else None, spec.digits)
                out[macro_name(name, metric, "ci")] = cell(item, spec.digits)
    for tag, data in results["ablation"].items():
        for metric, spec in METRICS.items():
            item = entry(data.get("metrics"), metric)
            out[macro_name("ablation", tag, metric)] = number(item["value"] if item else None, spec.digits)
    for metric, spec in METRICS.items():
        item = entry(reference, metric)
        out[macro_name("real", metric)] = number(item["value"] if item else None, spec.digits)
    any_file = next(iter(list(results["models"].values()) + list(results["baselines"].values())), {})
    out["nBaselines"] = str(len(results["baselines"]))
    out["nTestPairs"] = str(any_file.get("n_test_pairs", "n/a"))
    out["nTestSongs"] = str(any_file.get("n_test_songs", "n/a"))
    out["mbrSamples"] = str(any_file.get("mbr_samples", "n/a"))
    out["tunedTemperatures"] = ", ".join(any_file.get("tuned_temperatures") or []) or "n/a"  # evaluate's labels
    out["tunedValPairs"] = f"{any_file['tuned_val_pairs']:,}" if any_file.get("tuned_val_pairs") else "n/a"
    for split in ("train", "val", "test"):
        pairs, songs = split_counts(stats, split)
        out[macro_name("n", split, "pairs", "split")] = pairs
        out[macro_name("n", split, "songs", "split")] = songs
    out["nPairsTotal"] = str(extract.get("pairs_kept", "n/a"))
    out["nSongsTotal"] = str(extract.get("songs_kept", "n/a"))
    out["nFilesSeen"] = str(extract.get("files_seen", "n/a"))
    clf = annotate.get("classifier") or {}
    out["styleAccuracy"] = number(clf.get("test_accuracy"), 3)
    out["styleMacroFOne"] = number(clf.get("test_macro_f1"), 3)
    out["styleMajorityAccuracy"] = number(clf.get("majority_accuracy"), 3)
    out["styleMajorityMacroFOne"] = number(clf.get("majority_macro_f1"), 3)
    out["nStyles"] = str(len(clf.get("per_class_f1") or {}) or "n/a")
    best = best_model(results["models"])
    out["bestModelName"] = display(best) if best else "n/a"
    bleus = [e["value"] for g in ("models", "baselines") for m in results[g].values()
             if (e := entry(m.get("metrics"), "bleu4"))]
    out["bestBleu"] = number(max(bleus) if bleus else None, 3)
    out["leadSentence"] = lead_sentence(results, spreads)
    out["skipSentence"] = skip_sentence(extract)
    out["corpusSentence"] = corpus_sentence(extract)
    out["evaluationSentence"] = evaluation_sentence(results, stats)
    out["largeCorpus"] = "1" if (extract.get("pairs_kept") or 0) > 100_000 else "0"
    out["styleClassifier"] = latex_escape(str(clf.get("chosen", "n/a")))
    out["pixSentence"] = pix_sentence(results, spreads)
    out["ablationSentence"] = ablation_sentence(results, spreads)
    out["harmonySentence"] = harmony_sentence(results, reference, spreads, chord_run)
    repeats = ((stats.get("splits") or {}).get("val") or {}).get("repeats") or {}
    out["valRepeatsPrevious"] = percent(repeats.get("line_of_previous_window"))
    out["valRepeatsRecalled"] = percent(repeats.get("line_of_recalled_window_only"))
    harmony = extract.get("chords") or {}
    out["chordSyntheticAccuracy"] = number(harmony.get("synthetic_accuracy"), 3)
    out["bassChordRootRate"] = number(harmony.get("bass_root_rate"), 3)
    out["bassChordToneRate"] = number(harmony.get("bass_chord_tone_rate"), 3)
    half_bars = harmony.get("half_bars_by_quality") or {}
    out["chordShareN"] = number(half_bars.get("N", 0) / max(1, sum(half_bars.values())) if half_bars else None, 3)
    out["silenceSentence"] = silence_sentence(results, reference)
    compared = [b for b in comparison_baselines(results.get("comparisons") or {})
                if b not in RULES + CONTEXT_BASELINES]
    out["qualitySentence"] = quality_sentence(results.get("comparisons") or {}, compared, spreads=spreads)
    out["qualityAbstract"] = quality_sentence(results.get("comparisons") or {}, compared,
                                              "Judged by a paired song bootstrap", spreads)
    lines = ["% Generated by pipeline/tables.py: do not edit."]
    lines += [rf"\newcommand{{\{name}}}{{{value}}}" for name, value in sorted(out.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- stage


def headline_chord_run(ablation: dict, runs: dict[str, dict | None]) -> str | None:
    """The tag of the paper's chord-conditioned model: of the ablation runs given the chords and no past
    window (``dnb.schema.SOURCES``), the one whose validation NLL (dvclive ``best_val_loss``) is lowest,
    so the test split does not pick it; without logs the first such run. None when there is none."""
    tags = [t for t, e in ablation.items()
            if "chords" in (labels := ablation_run(e)[0]) and not set(labels) & set(SOURCES)]
    logged = [t for t in tags if (runs.get(f"ablation_{t}") or {}).get("best_val_loss") is not None]
    if logged:
        return min(logged, key=lambda t: runs[f"ablation_{t}"]["best_val_loss"])  # a tie: the first listed
    return tags[0] if tags else None


def training_runs(dvclive_dir: Path, models: list[str], tags: list[str], seeds: dict | None = None,
                  main_seed: int = 0) -> dict[str, dict | None]:
    """{model, ablation_<tag> or <either>_seed<k>: its dvclive metrics.json, or None when it has none};
    the extra seeds of ``train.seeds`` follow the main runs, so the compute table and the count of
    runs that early stopping ended cover every run the pipeline trained."""
    listed = [(m, m) for m in models] + [(f"ablation_{t}", f"ablation/{t}") for t in tags]
    listed += [(f"{stem}_seed{k}", f"seeds/{folder}/seed{k}") for stem, folder, k in seed_runs(seeds, main_seed)]
    runs = {}
    for name, folder in listed:
        path = Path(dvclive_dir) / folder / "metrics.json"
        runs[name] = json.loads(path.read_text()) if path.exists() else None
    return runs


def write_tables(results: dict, stats: dict, extract: dict, annotate: dict, out_dir: Path, songs: dict,
                 runs: dict[str, dict | None] | None = None, seeds: dict | None = None,
                 common: dict | None = None, song_seeds: dict | None = None,
                 chord_run: str | None = LADDER_CHORD_RUN) -> list[Path]:
    """Every table and the macros; returns the files written. ``chord_run``: the ablation tag of the
    chord-conditioned model the harmony sentence reports (``headline_chord_run``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = reference_of(results)
    rows = {**{n: d.get("metrics") for n, d in results["models"].items()},
            **{n: d.get("metrics") for n, d in results["baselines"].items()}}
    groups = {**{n: "model" for n in results["models"]}, **{n: "baseline" for n in results["baselines"]}}
    n_pairs = next(iter(list(results["models"].values()) + list(results["baselines"].values())), {}).get(
        "n_test_pairs", "n/a")
    comparisons = results.get("comparisons") or {}
    compared = comparison_baselines(comparisons)
    systems = {**results["models"], **{f"ablation_{t}": d for t, d in results["ablation"].items()},
               **results["baselines"]}
    files = {
        "table_main.tex": table(
            rows, ACCURACY_COLUMNS,
            rf"Test results ({n_pairs} pairs): neural models (top) and baselines (bottom). Value with its 95\% "
            r"song-level bootstrap interval; best in bold; n/a: undefined for that model (no token distribution).",
            "tab:main", groups=groups),
        "table_music.tex": table(
            rows, MUSIC_COLUMNS,
            r"Musical statistics of the generated bass lines; bold: closest to the real bass lines (last row).",
            "tab:music", reference=reference, groups=groups),
        "table_diversity.tex": table(
            rows, DIVERSITY_COLUMNS,
            r"Diversity of the samples drawn for the same drum loop (distinct bass lines among the samples, "
            r"self-BLEU between them, mean pairwise onset distance).",
            "tab:diversity", groups=groups),
        "table_ablation.tex": table(
            {ABLATION_ROWS.get(t, t): data.get("metrics") for t, data in results["ablation"].items()},
            ABLATION_COLUMNS, r"Conditioning ablation of the headline architecture (labels added cumulatively).",
            "tab:ablation", first="Conditioning"),
        "table_pix2pix.tex": table(
            {n: results["models"][n].get("metrics") for n in ("pix2pix", "lstm") if n in results["models"]},
            PIX_COLUMNS, r"pix2pix (image-to-image) against the LSTM seq2seq model.", "tab:pix2pix"),
        "table_quality.tex": quality_table(comparisons, [b for b in compared if b not in RULES + CONTEXT_BASELINES],
                                           QUALITY_METRICS),
        "table_context.tex": quality_table(comparisons, [b for b in compared if b in CONTEXT_BASELINES],
                                           QUALITY_METRICS, CONTEXT_CAPTION, "tab:context"),
        "table_songs.tex": table(
            {stem: data.get("metrics") for stem, data in songs.items() if stem != "real"}, SONG_COLUMNS,
            SONG_CAPTION, "tab:songs", reference=(songs.get("real") or {}).get("metrics"),
            groups={stem: data.get("kind") for stem, data in songs.items()}),
        "table_rules.tex": quality_table(comparisons, [b for b in compared if b in RULES], RULE_METRICS,
                                         RULE_CAPTION, "tab:rules"),
        "table_data.tex": data_table(stats, extract, annotate),
        "table_compute.tex": compute_table(runs or {}),
        "table_seeds.tex": seed_table(seeds or {}, SEED_COLUMNS),
        "table_corpus.tex": breakdown_table(
            systems, "corpus", ["bleu4", "onset_pitch_f1"],
            r"Test metrics by corpus (test songs in brackets): does a ranking hold outside the songs that "
            r"dominate training? Value only; song-bootstrap intervals are in the metrics files.", "tab:corpus"),
        "table_genre.tex": breakdown_table(
            systems, "folder_genre", ["onset_pitch_f1"],
            r"Note F1 by the folder genre of the test songs (test songs in brackets; ``(none)'': a "
            r"corpus without genre folders).", "tab:genre"),
        "macros.tex": macros(results, reference, stats, extract, annotate, songs, seeds, song_seeds, chord_run)
        + rf"\newcommand{{\stopSentence}}{{{stop_sentence(runs or {}, common or {})}}}" + "\n",
    }
    written = []
    for name, text in files.items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    return written


def main() -> None:
    everything = load_params()
    params = everything["tables"]
    models, baselines = list(everything["models"]), list(everything["baselines"])
    results = load_results(Path(params["metrics_dir"]), models, baselines, list(everything["train"]["ablation"]))
    stats = read_json(Path(params["stats"]))
    extract = read_json(Path(params["extract_report"]))
    annotate = read_json(Path(params["annotate_report"]))
    out_dir = Path(params["out_dir"])
    stems = models + [f"ablation_{t}" for t in everything["train"]["ablation"]] + baselines
    songs = load_songs(Path(params["songs_dir"]), stems)
    train = everything["train"]
    runs = training_runs(Path(params["dvclive_dir"]), models, list(train["ablation"]), train.get("seeds"),
                         int(train["common"].get("seed", 0)))
    seeds = load_seeds(Path(params["metrics_dir"]) / "seeds.json")
    song_seeds = load_seeds(Path(params["songs_dir"]) / "seeds.json", "songs")
    written = write_tables(results, stats, extract, annotate, out_dir, songs, runs, seeds,
                           everything["train"]["common"], song_seeds, headline_chord_run(train["ablation"], runs))
    print(f"tables: {len(results['models'])} models, {len(results['baselines'])} baselines, "
          f"{len(results['ablation'])} ablation runs -> {len(written)} files in {out_dir}")
    write_figures(results, annotate, models, Path(params["dvclive_dir"]), Path(params["piano_rolls"]),
                  out_dir / "figures")
    song_roll(Path(params["song_rolls"]), best_song_system(songs), out_dir / "figures" / "song_roll.png")


if __name__ == "__main__":
    main()
