"""Sentences of the paper computed from the results, so that the prose stays true whatever the numbers are."""

from __future__ import annotations

from dnb.critic import CONTROLS
from dnb.metrics import METRICS, SONG_METRICS, SONG_TARGETS
from pipeline.report.latex import entry, latex_escape
from pipeline.report.names import ABLATION_PROSE, ABLATION_ROWS, CORPUS_TEXT, display


def evaluated(data: dict | None) -> bool:
    """A metrics file of a run that was actually evaluated (status ok, at least one number)."""
    if not data or data.get("status", "ok") != "ok":
        return False
    return any(entry(data.get("metrics"), m) is not None for m in (data.get("metrics") or {}))


def comparison_baselines(comparisons: dict) -> list[str]:
    """The baselines the models were compared with (in file order)."""
    return list(next(iter(comparisons.values()), {}))


def seed_close(comparisons: dict, winners: list[str], baselines: list[str], metrics: tuple[str, ...],
               spreads: dict[str, float] | None) -> list[str]:
    """The winners whose paired margin over one of ``baselines`` on one of ``metrics`` is within the
    seed spread: the interval clears, but another training seed could close the gap."""
    return [m for m in winners
            if any(within_seeds(((comparisons[m].get(b) or {}).get(k) or {}).get("value", 0.0), k, spreads)
                   for b in baselines for k in metrics)]


def close_clause(close: list[str]) -> str:
    """' (X and Y: by less than the training-seed spread)' for the winners of ``seed_close``."""
    return f" ({join([display(m) for m in close])}: by less than the training-seed spread)" if close else ""


def quality_sentence(comparisons: dict, baselines: list[str],
                     lead: str = "Judged by the paired intervals of Table~\\ref{tab:quality}",
                     spreads: dict[str, float] | None = None) -> str:
    """Which models clear every compared baseline on perplexity and on BLEU-4 (first sample,
    and MBR), judged by the paired intervals; those that clear by less than the seed spread are named."""
    if not comparisons or not baselines:
        return "The paired comparison with the baselines was not computed."
    names = {"bleu4": "BLEU-4 of the first sample", "bleu4_mbr": "BLEU-4 of the MBR choice"}
    parts = []
    for bleu in ("bleu4", "bleu4_mbr"):
        winners = [m for m, against in comparisons.items()
                   if all(((against.get(b) or {}).get(k) or {}).get("clears") for b in baselines
                          for k in ("perplexity", bleu))]
        who = join([display(m) for m in winners]) if winners else "no neural model"
        both = "both " if len(baselines) == 2 else ""
        verb = "clear" if len(winners) > 1 else "clears"
        close = seed_close(comparisons, winners, baselines, ("perplexity", bleu), spreads)
        parts.append(f"on perplexity and {names[bleu]}, {who} {verb} {both}"
                     + join([display(b) for b in baselines]) + close_clause(close))
    return f"{lead}, " + "; ".join(parts) + "."


SEED_CAVEAT = "within the training-seed spread"


def within_seeds(difference: float, metric: str, spreads: dict[str, float] | None) -> bool:
    """Whether a difference between two runs is smaller than the largest spread that retraining
    one run with another seed gave on ``metric`` (``seed_spreads``), so the seed alone can explain it."""
    spread = (spreads or {}).get(metric)
    return spread is not None and abs(difference) < spread


def compare(a: dict | None, b: dict | None, metric: str, spreads: dict[str, float] | None = None) -> str | None:
    """'lower than X (intervals disjoint)' style phrase comparing a to b on ``metric``; a difference
    smaller than the seed spread of ``metric`` says so."""
    ea, eb = entry(a, metric), entry(b, metric)
    if ea is None or eb is None:
        return None
    better = METRICS[metric].better
    if ea["value"] == eb["value"]:
        word = "the same"
    elif (ea["value"] < eb["value"]) == (better == "min"):
        word = "a better"
    else:
        word = "a worse"
    have = all(isinstance(e.get(k), int | float) for e in (ea, eb) for k in ("lo", "hi"))
    if not have:
        overlap = "no interval available"
    elif ea["hi"] < eb["lo"] or eb["hi"] < ea["lo"]:
        overlap = "95\\% intervals disjoint"
    else:
        overlap = "95\\% intervals overlap"
    if word != "the same" and within_seeds(ea["value"] - eb["value"], metric, spreads):
        overlap += f", {SEED_CAVEAT}"
    return f"{word} {METRICS[metric].words} ({overlap})"


def best_model(models: dict[str, dict], metric: str = "perplexity") -> str | None:
    """The neural model with the lowest ``metric`` (falls back to BLEU-4 when none has it)."""
    scored = {n: e["value"] for n, m in models.items() if (e := entry(m.get("metrics"), metric)) is not None}
    if scored:
        return min(scored, key=scored.get)
    scored = {n: e["value"] for n, m in models.items() if (e := entry(m.get("metrics"), "bleu4")) is not None}
    return max(scored, key=scored.get) if scored else None


def lead_sentence(results: dict, spreads: dict[str, float] | None = None) -> str:
    """Whether the best neural model beats kNN and bigram on perplexity and BLEU-4."""
    best = best_model(results["models"])
    if best is None:
        return "No neural model has been evaluated yet."
    mine = results["models"][best].get("metrics")
    parts = []
    for base in ("knn", "bigram"):
        other = results["baselines"].get(base, {}).get("metrics")
        if not evaluated(results["baselines"].get(base)):
            parts.append(f"the {display(base)} baseline was not evaluated")
            continue
        phrases = [p for m in ("perplexity", "bleu4") if (p := compare(mine, other, m, spreads)) is not None]
        if phrases:
            parts.append(f"against {display(base)} it has " + " and ".join(phrases))
        else:
            parts.append(f"it cannot be compared with {display(base)} on perplexity or BLEU-4")
    return (f"The neural model with the lowest test perplexity is the {display(best)}; "
            + "; ".join(parts) + ".")


def join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def pix_sentence(results: dict, spreads: dict[str, float] | None = None) -> str:
    pix, lstm = results["models"].get("pix2pix"), results["models"].get("lstm")
    if not evaluated(pix) or not evaluated(lstm):
        return "The pix2pix and seq2seq comparison is not available because one of the two models was not evaluated."
    phrases = [p for m in ("onset_f1", "bleu4", "bce")
               if (p := compare(pix.get("metrics"), lstm.get("metrics"), m, spreads))]
    if not phrases:
        return "pix2pix and the LSTM seq2seq model share no metric to compare."
    return "Against the LSTM seq2seq model, pix2pix has " + join(phrases) + "."


LADDER = ("none", "tempo_program", "key", "style", "chords")  # labels added one at a time
LADDER_CHORD_RUN = LADDER[-1]  # the harmony sentence's run unless the tables stage names another (headline_chord_run)


def ablation_sentence(results: dict, spreads: dict[str, float] | None = None) -> str:
    """The ladder's last run against its first (perplexity, else BLEU-4), and what the key adds
    to a model that has the chords."""
    ab = results["ablation"]
    present = [t for t in LADDER if evaluated(ab.get(t))]
    if len(present) < 2:
        return "The conditioning ablation was not evaluated."
    first, last = present[0], present[-1]
    phrase = compare(ab[last].get("metrics"), ab[first].get("metrics"), "perplexity", spreads) or compare(
        ab[last].get("metrics"), ab[first].get("metrics"), "bleu4", spreads)
    if phrase is None:
        return "The ablation runs share no metric to compare."
    text = f"With {ABLATION_PROSE[last]} the model has {phrase} than with {ABLATION_PROSE[first]}."
    if evaluated(ab.get("chords")) and evaluated(ab.get("chords_no_key")):
        keyless = compare(ab["chords_no_key"].get("metrics"), ab["chords"].get("metrics"), "perplexity", spreads)
        if keyless:
            text += f" Given the chords, dropping the key leaves the model with {keyless}."
    return text


def harmony_sentence(results: dict, reference: dict | None, spreads: dict[str, float] | None = None,
                     tag: str | None = LADDER_CHORD_RUN) -> str:
    """How the chord-conditioned run ``tag`` (the ablation run chosen by validation NLL) compares with
    the chord-aware rule and the real bass."""
    chords = results["ablation"].get(tag) if tag else None
    rule = results["baselines"].get("chord_root_on_kick")
    if not evaluated(chords) or not evaluated(rule):
        return "The chord-conditioned model or the chord-aware rule was not evaluated."
    mine = chords.get("metrics")
    parts = [p for m in ("onset_pitch_f1", "onset_pitch_f1_mbr", "onset_pitch_f1_tuned", "bleu4", "bleu4_mbr",
                         "bleu4_tuned")
             if (p := compare(mine, rule.get("metrics"), m, spreads))]
    tone, real = entry(mine, "chord_tone_rate"), entry(reference, "chord_tone_rate")
    row = ABLATION_ROWS.get(tag, tag)
    text = (f"The chord-conditioned model is the ablation row ``{row}'', the chord run with the lowest "
            f"validation loss. Against chord root on kick it has " + join(parts) + ".")
    if tone and real:
        text += (f" Its bass onsets fall on a chord tone at a rate of {tone['value']:.3f}, "
                 f"against {real['value']:.3f} for the real bass lines.")
    return text


def silence_sentence(results: dict, reference: dict | None) -> str:
    """Does any neural model fall into the 2019 failure (mostly empty bars)?"""
    ref = entry(reference, "empty_bar_rate")
    rates = {n: e["value"] for n, m in results["models"].items() if (e := entry(m.get("metrics"), "empty_bar_rate"))}
    if ref is None or not rates:
        return "The empty-bar rate is not available."
    worst = max(rates, key=rates.get)
    silent = [display(n) for n, v in rates.items() if v >= 0.5]
    head = (f"The highest empty-bar rate of a neural model is {rates[worst]:.3f} ({display(worst)}), "
            f"against {ref['value']:.3f} for the real bass lines")
    tail = (f"; {', '.join(silent)} leave at least half of the bars empty." if silent
            else "; no neural model leaves half of the bars empty, the failure mode of 2019.")
    return head + tail


def skip_sentence(extract: dict) -> str:
    """Why files and windows were left out, from the extraction report."""
    reasons = {k: v for k, v in (extract.get("skipped_by_reason") or {}).items() if v}
    dropped = {k: v for k, v in (extract.get("windows_dropped") or {}).items() if v}
    if not extract:
        return "The extraction report is not available."
    words = {"no_bass": "without a bass track", "no_drums": "without drums", "no_four_four": "without a 4/4 window",
             "unreadable": "unreadable", "absurd_tempo": "with an absurd tempo", "no_dense_window": "too sparse",
             "too_many_notes": "with too many notes", "zero_tracks": "without tracks"}
    parts = [f"{v} {words.get(k, k.replace('_', ' '))}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    text = ("Files left out: " + ", ".join(parts) + ".") if parts else "No file was left out."
    if dropped:
        text += " Windows dropped: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(dropped.items())) + "."
    return latex_escape(text)


def corpus_sentence(extract: dict) -> str:
    """Which corpora the pairs come from, with their file counts."""
    files = extract.get("files_by_corpus") or {}
    pairs = extract.get("pairs_by_corpus") or {}
    names = list(extract.get("corpora") or files)
    if not names:
        return "The corpus is not known (no extraction report)."
    parts = [f"{CORPUS_TEXT.get(n, 'the corpus ' + latex_escape(n))} ({files.get(n, 0):,} files, "
             f"{pairs.get(n, 0):,} pairs)" for n in names]
    return "The pairs come from " + join(parts) + "."


def evaluation_sentence(results: dict, stats: dict) -> str:
    """How many test pairs the evaluation used: all, or a seeded few per song."""
    first = next(iter(list(results["models"].values()) + list(results["baselines"].values())), {})
    used, songs = first.get("n_test_pairs"), first.get("n_test_songs")
    total = (stats.get("pairs_per_split") or {}).get("test")
    if used is None or total is None or used >= total:
        return "Every pair of the test split is evaluated."
    cap = first.get("max_pairs_per_song")
    few = f"at most {cap} pairs" if cap else "a fixed maximum number of pairs"
    return (f"Sampling every autoregressive model on all {total:,} test pairs would take longer than training it, "
            f"so every system is evaluated on the same seeded subset of {few} of each test song: "
            f"{used:,} pairs covering all {songs:,} test songs, which the song bootstrap resamples.")


def best_song_system(songs: dict) -> str | None:
    """The context-taking model whose VALIDATION songs, at the decoding it chose there, come closest to
    the whole-song goals (its ``validation_missed`` and ``validation_scores`` entries: the goals missed, then
    the worst gap of the repetition targets and the cross-fitted critic, each over its tolerance, as
    ``songs`` picks decodings, ``pipeline.songs.goal_key``): the test songs never pick the model the paper
    reports. Baselines are not candidates; a tie goes to the first listed."""
    gaps = {}
    for stem, data in songs.items():
        if stem == "real" or data.get("kind") == "baseline" or not data.get("takes_previous"):
            continue
        chosen = data.get("temperature")
        missed, worst = ((data.get(k) or {}).get(chosen) for k in ("validation_missed", "validation_scores"))
        if missed is not None and worst is not None:
            gaps[stem] = (missed, worst)
    return min(gaps, key=gaps.get) if gaps else None


def song_sentence(songs: dict) -> str:
    """The real bass's repetition over consecutive windows against the best context model's and
    the systems that write every window alone."""
    real = (songs.get("real") or {}).get("metrics")
    if not real or not entry(real, "identical_line_rate"):
        return "The song-level evaluation is not available."

    def stats(metrics: dict) -> str:
        return (f"repeats the line of the window before in {entry(metrics, 'identical_line_rate')['value']:.3f} "
                f"of consecutive windows and its rhythm in {entry(metrics, 'identical_rhythm_rate')['value']:.3f}, "
                f"with {entry(metrics, 'distinct_line_rate')['value']:.3f} distinct lines per window")

    text = f"Written window by window, the real bass {stats(real)}."
    best = best_song_system(songs)
    if best:
        mine = songs[best]["metrics"]
        gaps = [f"{SONG_METRICS[m].words} {abs(entry(mine, m)['value'] - entry(real, m)['value']):.3f}"
                for m in SONG_TARGETS]
        words = decoding_words(songs[best].get("temperature"))
        at = f" {words} (chosen on the validation songs)" if words else ""
        text += (f" The context model closest to the goals on the validation songs, {display(best)}{at}, {stats(mine)} "
                 f"on the test songs (gaps: {join(gaps)}).")
    alone = [entry(d.get("metrics"), "identical_line_rate")["value"] for s, d in songs.items()
             if s != "real" and d.get("kind") != "baseline" and not d.get("takes_previous")
             and entry(d.get("metrics"), "identical_line_rate")]
    if alone:
        text += (f" Models that write every window alone repeat a line in at most {max(alone):.3f} "
                 "of consecutive windows.")
    return text


def song_seed_sentence(song_seeds: dict | None, stem: str | None, songs: dict | None = None) -> str:
    """How the closest context model's (``best_song_system``) whole songs vary over its training seeds
    (``songs/seeds.json``), each seed at its own validation-chosen decoding, and how many reach all three
    repetition targets. Given ``songs``, a ``stem`` with one seed (a run trained longer) is said to have
    one, and the seeds of the first context run that has them are given instead, by name."""
    runs = (song_seeds or {}).get("runs") or {}
    seeded = [s for s in runs if ((songs or {}).get(s) or {}).get("takes_previous")]
    if stem and stem not in runs and seeded:
        text = song_seed_sentence(song_seeds, seeded[0])
        return f"The closest context model, {display(stem)}, has one training seed. {text}" if text else ""
    run = runs.get(stem) if stem else None
    gaps = (run or {}).get("test_target_gap") or {}
    if len(gaps) < 2:
        return ""

    def spread(metric: str) -> str:
        item = (run.get("metrics") or {}).get(metric) or {}
        return f"{item['min']:.3f}--{item['max']:.3f}" if item.get("n") else "n/a"

    reached = sum(gap <= 1 for gap in gaps.values())
    decodings = join([decoding_words(t) or t for t in run["temperature"].values()])
    listed = join([f"{gap:.2f}" for _, gap in sorted(gaps.items(), key=lambda kv: int(kv[0]))])
    return (f"Over its {len(gaps)} training seeds, each at its own decoding chosen on the validation songs "
            f"({decodings}), {display(stem)} repeats the line of the window before in {spread('identical_line_rate')} "
            f"of consecutive windows and its rhythm in {spread('identical_rhythm_rate')}, with "
            f"{spread('distinct_line_rate')} distinct lines per window; {reached} of {len(gaps)} seeds come within "
            f"every tolerance (worst gap over its tolerance: {listed}, by seed).")


def decoding_words(temperature) -> str:
    """``at temperature 0.8``, ``at temperature 1 for rhythm and 0.4 for pitch`` for a split one
    (``songs`` writes its label ``1/0.4``), ``at temperature 1 with top-p 0.9 sampling`` (label
    ``1 top-p 0.9``); empty when there is none."""
    if temperature is None:
        return ""
    label = f"{temperature:g}" if isinstance(temperature, (int, float)) else str(temperature)
    if " top-p " in label:  # ``1 top-p 0.9`` (models.base.temperature_label)
        inner, top_p = label.split(" top-p ")
        return f"{decoding_words(inner)} with top-p {top_p} sampling"
    if "/" in label:
        rhythm, pitch = label.split("/")
        return f"at temperature {rhythm} for rhythm and {pitch} for pitch"
    return f"at temperature {label}"


def feature_words(name: str) -> str:
    """A critic feature (``dnb.critic.FEATURE_NAMES``) in words: the interval shares by their size."""
    if name == "interval_0":
        return "share of repeated pitches"
    if name == "interval_octave":
        return "share of octave leaps"
    if name == "pc_entropy":
        return "pitch-class entropy in bits"
    if name == "top_pc_share":
        return "share of the commonest pitch class"
    if name == "chord_root":
        return "share of onsets on the chord root"
    if name == "chord_tone":
        return "share of onsets on a chord tone"
    if name.startswith("interval_") and name[9:].isdigit():
        return f"share of {name[9:]}-semitone steps"
    return name.replace("_", " ")


def critic_sentence(songs: dict) -> str:
    """The critic's accuracy on the best context model and the range over all systems."""
    accuracy = {s: e for s, d in songs.items() if s != "real" and (e := entry(d.get("metrics"), "critic_accuracy"))}
    if not accuracy:
        return "The critic's test was not run (too few 8-bar lines)."
    low, high = min(accuracy, key=lambda s: accuracy[s]["value"]), max(accuracy, key=lambda s: accuracy[s]["value"])
    text = (f"The critic tells real from generated 8-bar lines with an accuracy from "
            f"{accuracy[low]['value']:.3f} ({display(low)}) to {accuracy[high]['value']:.3f} ({display(high)})")
    best = best_song_system(songs)
    if best in accuracy:
        item = accuracy[best]
        interval = f" [{item['lo']:.3f}, {item['hi']:.3f}]" if item.get("lo") is not None else ""
        text += (f"; on the context model closest to the goals on the validation songs, {display(best)}, "
                 f"{item['value']:.3f}{interval}")
    text += " (0.5: indistinguishable)."
    given = (songs.get(best) or {}).get("critic_giveaways") if best in accuracy else None
    if given:
        shown = [f"{feature_words(g['feature'])} ({g['fake']:.2f} against {g['real']:.2f}, d = {g['d']:+.2f})"
                 for g in given]
        text += (f" Its lines differ most from the real bass's, one feature at a time (standardised mean difference "
                 f"d over the test lines), in {join(shown)}.")
    return text + control_clause((songs.get("real") or {}).get("critic_controls") or {})


def control_clause(controls: dict) -> str:
    """' For scale, ...': the critic's accuracy on real lines put over drums and chords they were not
    played with (``dnb.critic.CONTROLS``), each with the feature that gives it away most."""
    shown = []
    for control, words in CONTROLS.items():
        item = entry(controls.get(control), "critic_accuracy")
        if item is None:
            continue
        text = f"{words} at {item['value']:.3f}"
        if item.get("lo") is not None:
            text += f" [{item['lo']:.3f}, {item['hi']:.3f}]"
        given = (controls[control].get("critic_giveaways") or [None])[0]
        if given:
            text += f" ({feature_words(given['feature'])} {given['fake']:.2f} against {given['real']:.2f})"
        shown.append(text)
    if not shown:
        return ""
    return (f" For scale, real lines over drums and chords they were not played with are told apart too: "
            f"{join(shown)}.")


def context_sentence(comparisons: dict, baseline: str = "repeat_previous",
                     spreads: dict[str, float] | None = None) -> str:
    """Which systems clear the copy of the previous window on perplexity and BLEU-4 MBR (paired);
    those that clear it by less than the seed spread are named."""
    rows = {m: against.get(baseline) or {} for m, against in comparisons.items()}
    if not any(rows.values()):
        return f"The paired comparison with {display(baseline)} was not computed."
    winners = [m for m, row in rows.items()
               if all((row.get(k) or {}).get("clears") for k in ("perplexity", "bleu4_mbr"))]
    who = join([display(m) for m in winners]) if winners else "no neural model"
    verb = "clear" if len(winners) > 1 else "clears"
    close = seed_close(comparisons, winners, [baseline], ("perplexity", "bleu4_mbr"), spreads)
    return (f"With the real previous window, {who} {verb} {display(baseline)} on both perplexity and BLEU-4 of "
            f"the MBR choice (paired song bootstrap){close_clause(close)}.")


def seed_spreads(seeds: dict, metrics: list[str]) -> dict[str, float]:
    """{metric: the largest spread (max - min) over the seeds of one run}, among the runs with two seeds or more."""
    out: dict[str, float] = {}
    for run in ((seeds or {}).get("runs") or {}).values():
        for metric in metrics:
            item = (run.get("metrics") or {}).get(metric)
            if item and item["n"] >= 2:
                out[metric] = max(out.get(metric, 0.0), item["max"] - item["min"])
    return out


def seed_sentence(seeds: dict, metrics: list[str]) -> str:
    """How far the training seed alone moves each metric: the largest spread of one run's seeds."""
    runs = {stem: run for stem, run in ((seeds or {}).get("runs") or {}).items()
            if any((m or {}).get("n", 0) >= 2 for m in (run.get("metrics") or {}).values())}
    spreads = seed_spreads({"runs": runs}, metrics)
    if not spreads:
        return "No run was trained with more than one seed."
    counts = sorted({run["metrics"][m]["n"] for run in runs.values() for m in metrics if m in run["metrics"]})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    parts = [f"{spreads[m]:.{METRICS[m].digits + 1}f} in {METRICS[m].words}" for m in metrics if m in spreads]
    return (f"Over {n} training seeds of {join([display(s) for s in runs])} (Table~\\ref{{tab:seeds}}), the largest "
            f"spread (max $-$ min) of one run is {join(parts)}: a difference between two models smaller than "
            "that can come from the training seed alone.")


def stop_sentence(runs: dict, common: dict) -> str:
    """How many training runs early stopping ended, under which rule (``train.common``)."""
    done = [run for run in (runs or {}).values() if run]
    if not done:
        return "No training run was logged."
    early = sum(int(run.get("stopped_early") or 0) for run in done)
    patience, tolerance = int(common.get("patience", 0)), float(common.get("min_improvement", 0.0) or 0.0)
    if tolerance > 0:
        what = f"the best validation loss by less than {100 * tolerance:g}\\%"
        rule = (f"the first epoch that lowers {what}" if patience == 1
                else f"{patience} epochs in a row that lower {what}")
    else:
        rule = f"{patience} epochs in a row without a lower validation loss"
    return (f"{early} of {len(done)} training runs were stopped by early stopping ({rule}); "
            f"{len(done) - early} by their epoch limit or the wall-clock guard.")
