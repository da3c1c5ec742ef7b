"""Stage `tables`: LaTeX tables, number macros and figures for the paper.

Reads ``metrics/*.json`` (one file per model, baseline and ablation), the data
reports and the dvclive logs, and writes ``paper/generated/*.tex`` and
``paper/generated/figures/*.png``. The paper text quotes numbers only through the
macros of ``macros.tex``, and every comparative sentence is computed here, so the
prose stays true whatever the numbers are. A missing or null metric prints "n/a".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

# metric -> (column label, digits, better): better is "min", "max", "ref" (closest to real bass) or None
METRICS = {
    "token_nll": ("NLL", 3, "min"),
    "perplexity": ("PPL", 2, "min"),
    "bce": ("BCE", 2, "min"),
    "bleu1": ("BLEU-1", 3, "max"),
    "bleu2": ("BLEU-2", 3, "max"),
    "bleu3": ("BLEU-3", 3, "max"),
    "bleu4": ("BLEU-4", 3, "max"),
    "bleu4_mbr": ("BLEU-4 MBR", 3, "max"),
    "onset_precision": ("Onset P", 3, "max"),
    "onset_recall": ("Onset R", 3, "max"),
    "onset_f1": ("Onset F1", 3, "max"),
    "onset_pitch_f1": ("Note F1", 3, "max"),
    "pc_accuracy": ("PC acc.", 3, "max"),
    "key_consistency": ("In key", 3, "ref"),
    "kick_lock": ("Kick lock", 3, "ref"),
    "empty_bar_rate": ("Empty bars", 3, "ref"),
    "upc_per_bar": ("UPC/bar", 2, "ref"),
    "qualified_note_rate": ("Qual. notes", 3, "ref"),
    "polyphony_rate": ("Polyphony", 3, "ref"),
    "distinct_samples": ("Distinct", 2, "max"),
    "self_bleu": ("Self-BLEU", 3, "min"),
    "pairwise_onset_distance": ("Onset dist.", 3, "ref"),
}
ACCURACY_COLUMNS = ["perplexity", "bce", "bleu4", "bleu4_mbr", "onset_f1", "onset_pitch_f1", "pc_accuracy"]
MUSIC_COLUMNS = ["key_consistency", "kick_lock", "empty_bar_rate", "upc_per_bar", "qualified_note_rate"]
DIVERSITY_COLUMNS = ["distinct_samples", "self_bleu", "pairwise_onset_distance"]
PIX_COLUMNS = ["bce", "onset_f1", "onset_pitch_f1", "bleu4", "polyphony_rate", "distinct_samples"]
ABLATION_COLUMNS = ["perplexity", "bleu4", "onset_f1", "pc_accuracy", "key_consistency"]
DISPLAY = {
    "ffnn": "FFNN",
    "cnn": "CNN",
    "lstm": "LSTM seq2seq",
    "lstm_fcnn": "LSTM+FCNN",
    "cvae": "CVAE",
    "pix2pix": "pix2pix",
    "transformer": "Transformer",
    "silence": "silence",
    "constant_density": "constant density",
    "repaired": "2019 repaired",
    "knn": "kNN",
    "root_on_kick": "root on kick",
    "bigram": "bigram",
    "real": "real bass",
}
PROSE = {"perplexity": "perplexity", "onset_f1": "onset F1", "bce": "roll BCE", "token_nll": "NLL"}
QUALITY_METRICS = ["perplexity", "bleu4", "bleu4_mbr"]  # the quality bar: model minus baseline, paired
ABLATION_TAGS = {"none": "none", "tempo_program": "tempo + program", "key": "+ key", "genre": "+ genre"}
DIGITS = "Zero One Two Three Four Five Six Seven Eight Nine".split()


# --------------------------------------------------------------------------- formatting


def macro_name(*parts: str) -> str:
    """'lstm_fcnn', 'bleu4' -> 'lstmFcnnBleuFour' (LaTeX macro names are letters only)."""
    words = []
    for part in parts:
        for token in re.split(r"[^A-Za-z0-9]+", part):
            for piece in re.findall(r"[A-Za-z]+|[0-9]", token):
                words.append(DIGITS[int(piece)] if piece.isdigit() else piece)
    text = "".join(w[:1].upper() + w[1:] for w in words)
    return text[:1].lower() + text[1:]


ALIASES = {
    "token_nll": ["nll_per_step"],
    "pc_accuracy": ["pitch_class_accuracy"],
    "upc_per_bar": ["upc"],
    "self_bleu": ["self_bleu4"],
    "pairwise_onset_distance": ["pairwise_f1_distance"],
}


def entry(metrics: dict | None, metric: str) -> dict | None:
    """The {value, lo, hi} of a metric (or of an alias name), or None when missing/null/non-numeric."""
    metrics = metrics or {}
    item = next((metrics[n] for n in [metric, *ALIASES.get(metric, [])] if metrics.get(n) is not None), None)
    if isinstance(item, int | float):
        item = {"value": item}
    if not isinstance(item, dict) or not isinstance(item.get("value"), int | float):
        return None
    return item


def number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def cell(item: dict | None, digits: int, interval: bool = True) -> str:
    """'0.123 [0.100, 0.140]' as LaTeX (interval in script size), or 'n/a'."""
    if item is None:
        return "n/a"
    text = number(item["value"], digits)
    lo, hi = item.get("lo"), item.get("hi")
    if interval and isinstance(lo, int | float) and isinstance(hi, int | float):
        text += rf" {{\scriptsize[{lo:.{digits}f}, {hi:.{digits}f}]}}"
    return text


def latex_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", str(text))


def best_rows(rows: dict[str, dict], metric: str, reference: dict | None) -> set[str]:
    """Names of the rows holding the best value of ``metric`` (ties all bold)."""
    better = METRICS[metric][2]
    values = {n: e["value"] for n, m in rows.items() if (e := entry(m, metric)) is not None}
    if not values or better is None:
        return set()
    if better == "ref":
        ref = entry(reference, metric)
        if ref is None:
            return set()
        score = {n: abs(v - ref["value"]) for n, v in values.items()}
        target = min(score.values())
    else:
        score = {n: (v if better == "min" else -v) for n, v in values.items()}
        target = min(score.values())
    digits = METRICS[metric][1]
    return {n for n, s in score.items() if round(s, digits) == round(target, digits)}


def table(rows: dict[str, dict], columns: list[str], caption: str, label: str, reference: dict | None = None,
          first: str = "Model", groups: dict[str, str] | None = None, missing: set[str] | None = None) -> str:
    """A booktabs table: one row per entry of ``rows`` (name -> metrics dict), best in bold.
    ``reference`` adds a final real-bass row; ``groups`` (name -> group) draws a rule between groups;
    ``missing`` rows (not evaluated, e.g. no checkpoint) are labelled so."""
    bold = {c: best_rows(rows, c, reference) for c in columns}
    spec = "l" + "r" * len(columns)
    lines = [
        r"\begin{table}[tbp]",
        r"\centering\footnotesize",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join([first] + [METRICS[c][0] for c in columns]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for name, metrics in rows.items():
        group = (groups or {}).get(name)
        if previous is not None and group != previous:
            lines.append(r"\midrule")
        previous = group
        cells = []
        for c in columns:
            text = cell(entry(metrics, c), METRICS[c][1])
            cells.append(rf"\textbf{{{text}}}" if name in bold[c] and text != "n/a" else text)
        label = latex_escape(DISPLAY.get(name, name)) + (" (not evaluated)" if name in (missing or set()) else "")
        lines.append(" & ".join([label] + cells) + r" \\")
    if reference is not None:
        lines.append(r"\midrule")
        ref_cells = [cell(entry(reference, c), METRICS[c][1]) for c in columns]
        lines.append(" & ".join([r"\emph{real bass}"] + ref_cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def difference_cell(item: dict | None, digits: int) -> str:
    """'+0.012 [+0.004, +0.020]', bold when the paired interval clears the baseline."""
    if not item or not isinstance(item.get("value"), int | float):
        return "n/a"
    text = f"{item['value']:+.{digits}f} {{\\scriptsize[{item['lo']:+.{digits}f}, {item['hi']:+.{digits}f}]}}"
    text = text.replace("-", "$-$")  # a minus sign, not a hyphen
    return rf"\textbf{{{text}}}" if item.get("clears") else text


def quality_table(comparisons: dict, baselines: list[str]) -> str:
    """Each model minus each baseline (perplexity, BLEU-4, BLEU-4 MBR), paired song-bootstrap
    intervals; bold where the interval lies entirely on the better side."""
    columns = [(b, m) for b in baselines for m in QUALITY_METRICS]
    lines = [
        r"\begin{table}[tbp]",
        r"\centering\footnotesize",
        r"\caption{Quality bar: each model minus a baseline on the same test pairs, with the 95\% interval of "
        r"the paired song bootstrap. Bold: the interval lies entirely on the better side (perplexity lower, "
        r"BLEU higher). The CVAE's perplexity is an upper bound. n/a: the model defines no perplexity.}",
        r"\label{tab:quality}",
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{l{'r' * len(columns)}}}",
        r"\toprule",
        " & ".join(["Model"] + [rf"\multicolumn{{{len(QUALITY_METRICS)}}}{{c}}{{$-$ {DISPLAY.get(b, b)}}}"
                                for b in baselines]) + r" \\",
        "".join(rf"\cmidrule(lr){{{2 + i * len(QUALITY_METRICS)}-{1 + (i + 1) * len(QUALITY_METRICS)}}}"
                for i in range(len(baselines))),
        " & ".join([""] + [rf"$\Delta$ {METRICS[m][0]}" for _, m in columns]) + r" \\",
        r"\midrule",
    ]
    for model, against in comparisons.items():
        cells = [difference_cell((against.get(b) or {}).get(m), METRICS[m][1]) for b, m in columns]
        lines.append(" & ".join([latex_escape(DISPLAY.get(model, model))] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def comparison_baselines(comparisons: dict) -> list[str]:
    """The baselines the models were compared with (in file order)."""
    return list(next(iter(comparisons.values()), {}))


def quality_sentence(comparisons: dict, baselines: list[str],
                     lead: str = "Judged by the paired intervals of Table~\\ref{tab:quality}") -> str:
    """Which models clear every compared baseline on perplexity and on BLEU-4 (first sample,
    and MBR), judged by the paired intervals."""
    if not comparisons or not baselines:
        return "The paired comparison with the baselines was not computed."
    names = {"bleu4": "BLEU-4 of the first sample", "bleu4_mbr": "BLEU-4 of the MBR choice"}
    parts = []
    for bleu in ("bleu4", "bleu4_mbr"):
        winners = [DISPLAY.get(m, m) for m, against in comparisons.items()
                   if all(((against.get(b) or {}).get(k) or {}).get("clears") for b in baselines
                          for k in ("perplexity", bleu))]
        who = join(winners) if winners else "no neural model"
        both = "both " if len(baselines) == 2 else ""
        verb = "clear" if len(winners) > 1 else "clears"
        parts.append(f"on perplexity and {names[bleu]}, {who} {verb} {both}"
                     + join([DISPLAY.get(b, b) for b in baselines]))
    return f"{lead}, " + "; ".join(parts) + "."


# --------------------------------------------------------------------------- inputs


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def evaluated(data: dict | None) -> bool:
    """A metrics file of a run that was actually evaluated (status ok, at least one number)."""
    if not data or data.get("status", "ok") != "ok":
        return False
    return any(entry(data.get("metrics"), m) is not None for m in (data.get("metrics") or {}))


def load_results(metrics_dir: Path, models: list[str], baselines: list[str], tags: list[str]) -> dict:
    """{"models": {name: file}, "baselines": {...}, "ablation": {tag: file}}; absent files are left out."""
    def load(names: list[str], prefix: str = "") -> dict:
        out = {}
        for name in names:
            data = read_json(Path(metrics_dir) / f"{prefix}{name}.json")
            if data:
                out[name] = data
        return out

    return {"models": load(models), "baselines": load(baselines), "ablation": load(tags, "ablation_"),
            "comparisons": read_json(Path(metrics_dir) / "comparisons.json")}


def reference_of(results: dict) -> dict | None:
    """Real-bass values of the musical metrics (taken from the first file that has them)."""
    for group in ("models", "baselines", "ablation"):
        for data in results[group].values():
            if data.get("reference"):
                return data["reference"]
    return None


# --------------------------------------------------------------------------- sentences


def compare(a: dict | None, b: dict | None, metric: str) -> str | None:
    """'lower than X (intervals disjoint)' style phrase comparing a to b on ``metric``."""
    ea, eb = entry(a, metric), entry(b, metric)
    if ea is None or eb is None:
        return None
    better = METRICS[metric][2]
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
    return f"{word} {PROSE.get(metric, METRICS[metric][0])} ({overlap})"


def best_model(models: dict[str, dict], metric: str = "perplexity") -> str | None:
    """The neural model with the lowest ``metric`` (falls back to BLEU-4 when none has it)."""
    scored = {n: e["value"] for n, m in models.items() if (e := entry(m.get("metrics"), metric)) is not None}
    if scored:
        return min(scored, key=scored.get)
    scored = {n: e["value"] for n, m in models.items() if (e := entry(m.get("metrics"), "bleu4")) is not None}
    return max(scored, key=scored.get) if scored else None


def lead_sentence(results: dict) -> str:
    """Whether the best neural model beats kNN and bigram on perplexity and BLEU-4."""
    best = best_model(results["models"])
    if best is None:
        return "No neural model has been evaluated yet."
    mine = results["models"][best].get("metrics")
    parts = []
    for base in ("knn", "bigram"):
        other = results["baselines"].get(base, {}).get("metrics")
        if not evaluated(results["baselines"].get(base)):
            parts.append(f"the {DISPLAY[base]} baseline was not evaluated")
            continue
        phrases = [p for m in ("perplexity", "bleu4") if (p := compare(mine, other, m)) is not None]
        if phrases:
            parts.append(f"against {DISPLAY[base]} it has " + " and ".join(phrases))
        else:
            parts.append(f"it cannot be compared with {DISPLAY[base]} on perplexity or BLEU-4")
    return (f"The neural model with the lowest test perplexity is the {DISPLAY.get(best, best)}; "
            + "; ".join(parts) + ".")


def join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def pix_sentence(results: dict) -> str:
    pix, lstm = results["models"].get("pix2pix"), results["models"].get("lstm")
    if not evaluated(pix) or not evaluated(lstm):
        return "The pix2pix and seq2seq comparison is not available because one of the two models was not evaluated."
    phrases = [p for m in ("onset_f1", "bleu4", "bce") if (p := compare(pix.get("metrics"), lstm.get("metrics"), m))]
    if not phrases:
        return "pix2pix and the LSTM seq2seq model share no metric to compare."
    return "Against the LSTM seq2seq model, pix2pix has " + join(phrases) + "."


def ablation_sentence(results: dict) -> str:
    ab = results["ablation"]
    present = [t for t in ABLATION_TAGS if evaluated(ab.get(t))]
    if len(present) < 2:
        return "The conditioning ablation was not evaluated."
    first, last = present[0], present[-1]
    phrase = compare(ab[last].get("metrics"), ab[first].get("metrics"), "perplexity") or compare(
        ab[last].get("metrics"), ab[first].get("metrics"), "bleu4")
    if phrase is None:
        return "The ablation runs share no metric to compare."
    prose = {"none": "no conditioning", "tempo_program": "tempo and program only",
             "key": "tempo, program and key", "genre": "all four labels"}
    return f"With {prose[last]} the model has {phrase} than with {prose[first]}."


def silence_sentence(results: dict, reference: dict | None) -> str:
    """Does any neural model fall into the 2019 failure (mostly empty bars)?"""
    ref = entry(reference, "empty_bar_rate")
    rates = {n: e["value"] for n, m in results["models"].items() if (e := entry(m.get("metrics"), "empty_bar_rate"))}
    if ref is None or not rates:
        return "The empty-bar rate is not available."
    worst = max(rates, key=rates.get)
    silent = [DISPLAY.get(n, n) for n, v in rates.items() if v >= 0.5]
    head = (f"The highest empty-bar rate of a neural model is {rates[worst]:.3f} ({DISPLAY.get(worst, worst)}), "
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


CORPUS_TEXT = {  # corpus name in extract.corpora -> how the paper names it
    "freedoom": r"the music of the Freedoom project~\citep{freedoom}",
    "ultimate": r"the Ultimate MIDI collection of popular songs in six genre folders~\citep{ultimatemidi}",
}


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


# --------------------------------------------------------------------------- data tables


def data_table(stats: dict, extract: dict, annotate: dict) -> str:
    """Pairs and songs per split, pairs per corpus, genre classifier against the majority class."""
    lines = [
        r"\begin{table}[tbp]",
        r"\centering\footnotesize",
        r"\caption{Data. Pairs are 2-bar 4/4 windows with drums and bass; splits are by song. "
        r"The drum-style classifier is trained and tested on the Groove MIDI Dataset splits.}",
        r"\label{tab:data}",
        r"\begin{tabular}{lrr}",
        r"\toprule",
        r"Split & Pairs & Songs \\",
        r"\midrule",
    ]
    for split in ("train", "val", "test"):
        pairs, songs = split_counts(stats, split)
        lines.append(f"{split} & {pairs} & {songs} " + r"\\")
    by_corpus = extract.get("pairs_by_corpus") or {}
    if by_corpus:
        lines += [r"\midrule", r"Corpus & Pairs & \\"]
        for corpus, n in sorted(by_corpus.items()):
            lines.append(f"{latex_escape(corpus)} & {n} & " + r"\\")
    clf = annotate.get("classifier") or {}
    lines += [r"\midrule", r"Drum-style classifier (test) & Accuracy & Macro-F1 \\"]
    chosen = latex_escape(str(clf.get("chosen", "classifier")))
    lines.append(f"{chosen} & {number(clf.get('test_accuracy'), 3)} & {number(clf.get('test_macro_f1'), 3)} " + r"\\")
    majority = latex_escape(str(clf.get("majority_class", "")))
    lines.append(f"majority class ({majority}) & {number(clf.get('majority_accuracy'), 3)} & "
                 f"{number(clf.get('majority_macro_f1'), 3)} " + r"\\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def split_counts(stats: dict, split: str) -> tuple[str, str]:
    """(pairs, songs) of a split from data/stats.json, whichever of the usual layouts it uses."""
    node = stats.get(split) or (stats.get("splits") or {}).get(split) or {}
    pairs = node.get("pairs") if isinstance(node, dict) else node
    songs = node.get("songs") if isinstance(node, dict) else None
    pairs = pairs if pairs is not None else (stats.get("pairs") or {}).get(split)
    songs = songs if songs is not None else (stats.get("songs") or {}).get(split)
    return ("n/a" if pairs is None else str(pairs)), ("n/a" if songs is None else str(songs))


# --------------------------------------------------------------------------- macros


def macros(results: dict, reference: dict | None, stats: dict, extract: dict, annotate: dict) -> str:
    """``\\newcommand`` for every number and computed sentence the text quotes."""
    out: dict[str, str] = {}
    for group in ("models", "baselines"):
        for name, data in results[group].items():
            for metric, (_, digits, _) in METRICS.items():
                item = entry(data.get("metrics"), metric)
                out[macro_name(name, metric)] = number(item["value"] if item else None, digits)
                out[macro_name(name, metric, "ci")] = cell(item, digits)
    for tag, data in results["ablation"].items():
        for metric, (_, digits, _) in METRICS.items():
            item = entry(data.get("metrics"), metric)
            out[macro_name("ablation", tag, metric)] = number(item["value"] if item else None, digits)
    for metric, (_, digits, _) in METRICS.items():
        item = entry(reference, metric)
        out[macro_name("real", metric)] = number(item["value"] if item else None, digits)
    any_file = next(iter(list(results["models"].values()) + list(results["baselines"].values())), {})
    out["nTestPairs"] = str(any_file.get("n_test_pairs", "n/a"))
    out["nTestSongs"] = str(any_file.get("n_test_songs", "n/a"))
    out["mbrSamples"] = str(any_file.get("mbr_samples", "n/a"))
    for split in ("train", "val", "test"):
        pairs, songs = split_counts(stats, split)
        out[macro_name("n", split, "pairs", "split")] = pairs
        out[macro_name("n", split, "songs", "split")] = songs
    out["nPairsTotal"] = str(extract.get("pairs_kept", "n/a"))
    out["nSongsTotal"] = str(extract.get("songs_kept", "n/a"))
    out["nFilesSeen"] = str(extract.get("files_seen", "n/a"))
    clf = annotate.get("classifier") or {}
    out["genreAccuracy"] = number(clf.get("test_accuracy"), 3)
    out["genreMacroFOne"] = number(clf.get("test_macro_f1"), 3)
    out["genreMajorityAccuracy"] = number(clf.get("majority_accuracy"), 3)
    out["genreMajorityMacroFOne"] = number(clf.get("majority_macro_f1"), 3)
    out["nGenres"] = str(len(clf.get("per_class_f1") or {}) or "n/a")
    best = best_model(results["models"])
    out["bestModelName"] = DISPLAY.get(best, best) if best else "n/a"
    bleus = [e["value"] for g in ("models", "baselines") for m in results[g].values()
             if (e := entry(m.get("metrics"), "bleu4"))]
    out["bestBleu"] = number(max(bleus) if bleus else None, 3)
    out["leadSentence"] = lead_sentence(results)
    out["skipSentence"] = skip_sentence(extract)
    out["corpusSentence"] = corpus_sentence(extract)
    out["evaluationSentence"] = evaluation_sentence(results, stats)
    out["largeCorpus"] = "1" if (extract.get("pairs_kept") or 0) > 100_000 else "0"
    out["genreClassifier"] = latex_escape(str(clf.get("chosen", "n/a")))
    out["pixSentence"] = pix_sentence(results)
    out["ablationSentence"] = ablation_sentence(results)
    out["silenceSentence"] = silence_sentence(results, reference)
    compared = comparison_baselines(results.get("comparisons") or {})
    out["qualitySentence"] = quality_sentence(results.get("comparisons") or {}, compared)
    out["qualityAbstract"] = quality_sentence(results.get("comparisons") or {}, compared,
                                              "Judged by a paired song bootstrap")
    lines = ["% Generated by pipeline/tables.py: do not edit."]
    lines += [rf"\newcommand{{\{name}}}{{{value}}}" for name, value in sorted(out.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- stage


def write_tables(results: dict, stats: dict, extract: dict, annotate: dict, out_dir: Path) -> list[Path]:
    """Every table and the macros; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = reference_of(results)
    rows = {**{n: d.get("metrics") for n, d in results["models"].items()},
            **{n: d.get("metrics") for n, d in results["baselines"].items()}}
    groups = {**{n: "model" for n in results["models"]}, **{n: "baseline" for n in results["baselines"]}}
    missing = {n for g in ("models", "baselines") for n, d in results[g].items() if not evaluated(d)}
    missing |= {ABLATION_TAGS.get(t, t) for t, d in results["ablation"].items() if not evaluated(d)}
    n_pairs = next(iter(list(results["models"].values()) + list(results["baselines"].values())), {}).get(
        "n_test_pairs", "n/a")
    files = {
        "table_main.tex": table(
            rows, ACCURACY_COLUMNS,
            rf"Test results ({n_pairs} pairs): neural models (top) and baselines (bottom). Value with its 95\% "
            r"song-level bootstrap interval; best in bold; n/a: undefined for that model (no token distribution).",
            "tab:main", groups=groups, missing=missing),
        "table_music.tex": table(
            rows, MUSIC_COLUMNS,
            r"Musical statistics of the generated bass lines; bold: closest to the real bass lines (last row).",
            "tab:music", reference=reference, groups=groups, missing=missing),
        "table_diversity.tex": table(
            rows, DIVERSITY_COLUMNS,
            r"Diversity of the samples drawn for the same drum loop (distinct bass lines among the samples, "
            r"self-BLEU between them, mean pairwise onset distance).",
            "tab:diversity", groups=groups, missing=missing),
        "table_ablation.tex": table(
            {ABLATION_TAGS.get(t, t): results["ablation"][t].get("metrics") for t in ABLATION_TAGS
             if t in results["ablation"]},
            ABLATION_COLUMNS, r"Conditioning ablation of the headline architecture (labels added cumulatively).",
            "tab:ablation", first="Conditioning", missing=missing),
        "table_pix2pix.tex": table(
            {n: results["models"][n].get("metrics") for n in ("pix2pix", "lstm") if n in results["models"]},
            PIX_COLUMNS, r"pix2pix (image-to-image) against the LSTM seq2seq model.", "tab:pix2pix"),
        "table_quality.tex": quality_table(results.get("comparisons") or {},
                                           comparison_baselines(results.get("comparisons") or {})),
        "table_data.tex": data_table(stats, extract, annotate),
        "macros.tex": macros(results, reference, stats, extract, annotate),
    }
    written = []
    for name, text in files.items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    return written


def main() -> None:
    params = yaml.safe_load(open("params.yaml"))["tables"]
    results = load_results(Path(params["metrics_dir"]), params["models"], params["baselines"], params["ablation_tags"])
    stats = read_json(Path(params["stats"]))
    extract = read_json(Path(params["extract_report"]))
    annotate = read_json(Path(params["annotate_report"]))
    out_dir = Path(params["out_dir"])
    written = write_tables(results, stats, extract, annotate, out_dir)
    print(f"tables: {len(results['models'])} models, {len(results['baselines'])} baselines, "
          f"{len(results['ablation'])} ablation runs -> {len(written)} files in {out_dir}")
    from pipeline import figures

    figures.write_figures(params, results, annotate, out_dir / "figures")


if __name__ == "__main__":
    main()
