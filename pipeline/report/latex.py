"""LaTeX formatting of results: numbers, interval cells, macro names and booktabs tables.

A results entry is ``{"value", "lo", "hi"}`` from ``metrics/<system>.json``; metric
labels, digits and directions come from ``dnb.metrics.REPORTED``.
"""

from __future__ import annotations

import re

from dnb.metrics import REPORTED
from pipeline.report.names import display

DIGITS = "Zero One Two Three Four Five Six Seven Eight Nine".split()


def macro_name(*parts: str) -> str:
    """'lstm_fcnn', 'bleu4' -> 'lstmFcnnBleuFour' (LaTeX macro names are letters only)."""
    words = []
    for part in parts:
        for token in re.split(r"[^A-Za-z0-9]+", part):
            for piece in re.findall(r"[A-Za-z]+|[0-9]", token):
                words.append(DIGITS[int(piece)] if piece.isdigit() else piece)
    text = "".join(w[:1].upper() + w[1:] for w in words)
    return text[:1].lower() + text[1:]


def entry(metrics: dict | None, metric: str) -> dict | None:
    """The {value, lo, hi} of a metric, or None when missing/null/non-numeric."""
    item = (metrics or {}).get(metric)
    if isinstance(item, int | float):
        item = {"value": item}
    if not isinstance(item, dict) or not isinstance(item.get("value"), int | float):
        return None
    return item


def number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(share: float | None) -> str:
    """A share as a whole LaTeX percentage ('14\\%'), or 'n/a'."""
    return "n/a" if share is None else f"{100 * share:.0f}\\%"


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
    better = REPORTED[metric].better
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
    digits = REPORTED[metric].digits
    return {n for n, s in score.items() if round(s, digits) == round(target, digits)}


def table_head(caption: str, label: str, spec: str) -> list[str]:
    """The opening lines of every results table: float, caption, label, shrink-to-fit, tabular, top rule."""
    return [
        r"\begin{table}[tbp]",
        r"\centering\footnotesize",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
    ]


def table(rows: dict[str, dict], columns: list[str], caption: str, label: str, reference: dict | None = None,
          first: str = "Model", groups: dict[str, str] | None = None) -> str:
    """A booktabs table: one row per entry of ``rows`` (name -> metrics dict), best in bold.
    ``reference`` adds a final real-bass row; ``groups`` (name -> group) draws a rule between groups.
    Every row was evaluated: ``tables.load_results`` refuses a missing or failed file."""
    bold = {c: best_rows(rows, c, reference) for c in columns}
    lines = [
        *table_head(caption, label, "l" + "r" * len(columns)),
        " & ".join([first] + [REPORTED[c].label for c in columns]) + r" \\",
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
            text = cell(entry(metrics, c), REPORTED[c].digits)
            cells.append(rf"\textbf{{{text}}}" if name in bold[c] and text != "n/a" else text)
        label = display(name)
        lines.append(" & ".join([label] + cells) + r" \\")
    if reference is not None:
        lines.append(r"\midrule")
        ref_cells = [cell(entry(reference, c), REPORTED[c].digits) for c in columns]
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


QUALITY_CAPTION = (r"Quality bar: each model minus a baseline on the same test pairs, with the 95\% interval of "
                   r"the paired song bootstrap. Bold: the interval lies entirely on the better side (perplexity "
                   r"lower, BLEU higher). The CVAE's perplexity is an upper bound. n/a: the model defines no "
                   r"perplexity.")


def quality_table(comparisons: dict, baselines: list[str], metrics: list[str], caption: str = QUALITY_CAPTION,
                  label: str = "tab:quality") -> str:
    """Each model minus each baseline on ``metrics``, paired song-bootstrap intervals; bold where
    the interval lies entirely on the better side. Rows without any number are left out."""
    columns = [(b, m) for b in baselines for m in metrics]
    lines = [
        *table_head(caption, label, "l" + "r" * len(columns)),
        " & ".join(["Model"] + [rf"\multicolumn{{{len(metrics)}}}{{c}}{{$-$ {display(b)}}}"
                                for b in baselines]) + r" \\",
        "".join(rf"\cmidrule(lr){{{2 + i * len(metrics)}-{1 + (i + 1) * len(metrics)}}}"
                for i in range(len(baselines))),
        " & ".join([""] + [rf"$\Delta$ {REPORTED[m].label}" for _, m in columns]) + r" \\",
        r"\midrule",
    ]
    for model, against in comparisons.items():
        cells = [difference_cell((against.get(b) or {}).get(m), REPORTED[m].digits) for b, m in columns]
        if all(c == "n/a" for c in cells):
            continue
        lines.append(" & ".join([display(model)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def split_counts(stats: dict, split: str) -> tuple[str, str]:
    """(pairs, songs) of a split from data/stats.json, whichever of the usual layouts it uses."""
    node = stats.get(split) or (stats.get("splits") or {}).get(split) or {}
    pairs = node.get("pairs") if isinstance(node, dict) else node
    songs = node.get("songs") if isinstance(node, dict) else None
    pairs = pairs if pairs is not None else (stats.get("pairs") or {}).get(split)
    songs = songs if songs is not None else (stats.get("songs") or {}).get(split)
    return ("n/a" if pairs is None else str(pairs)), ("n/a" if songs is None else str(songs))


def data_table(stats: dict, extract: dict, annotate: dict) -> str:
    """Pairs and songs per split, pairs per corpus, drum-style classifier against the majority class."""
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


COMPUTE_CAPTION = (r"Compute of every training run (dvclive): epochs, training pairs presented, wall-clock "
                   r"seconds on this machine and the setup they were measured with (data-parallel ranks $\times$ "
                   r"threads, bf16 autocast or fp32), what stopped it (early stopping on validation NLL, or the "
                   r"epoch limit) and the best validation loss (token NLL per step; pix2pix: its own loss).")


def run_setup(run: dict) -> str:
    """``2$\times$1T bf16``-style label of a run's setup; n/a for a log that predates it."""
    if run.get("ranks") is None or run.get("threads") is None:
        return "n/a"
    ranks, threads = int(run["ranks"]), int(run["threads"])
    where = f"{ranks}$\\times${threads}T" if ranks > 1 else f"{threads}T"
    return f"{where} {'bf16' if run.get('bf16') else 'fp32'}"


def compute_table(runs: dict[str, dict | None]) -> str:
    """One row per training run (name -> its dvclive ``metrics.json``, None when it has none)."""
    lines = [*table_head(COMPUTE_CAPTION, "tab:compute", "lrrrllr"),
             r"Run & Epochs & Pairs presented & Seconds & Setup & Stopped by & Best val. \\", r"\midrule"]
    for name, run in runs.items():
        if not run:
            lines.append(" & ".join([display(name)] + ["n/a"] * 6) + r" \\")
            continue
        presented = run.get("pairs_presented")
        stopped = {1: "early stopping", 0: "epoch limit"}.get(run.get("stopped_early"), "n/a")
        cells = [str(run.get("epochs", "n/a")), f"{presented:,}" if presented is not None else "n/a",
                 number(run.get("wall_seconds"), 1), run_setup(run), stopped, number(run.get("best_val_loss"), 3)]
        lines.append(" & ".join([display(name)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


SEED_CAPTION = (r"Training seeds: each run trained again with only its seed changed (\texttt{train.seeds}) and "
                r"scored on the same test pairs with the same sampling seed. Over the $n$ seeds of a run: mean "
                r"$\pm$ sample standard deviation, range, spread (max $-$ min), and beside it the half-width of "
                r"the main run's 95\% song-bootstrap interval. A difference between two runs smaller than the "
                r"seed spread can come from the training seed alone.")


def half_width(item: dict) -> float | None:
    """Half the width of the main run's bootstrap interval (None without one)."""
    lo, hi = item.get("lo"), item.get("hi")
    return (hi - lo) / 2 if isinstance(lo, int | float) and isinstance(hi, int | float) else None


def seed_table(seeds: dict, metrics: list[str]) -> str:
    """One row per run of ``metrics/seeds.json`` and metric; spreads get one digit more than values."""
    lines = [*table_head(SEED_CAPTION, "tab:seeds", "llrrrrr"),
             r"Run & Metric & $n$ & Mean $\pm$ sd & Range & Spread & Bootstrap $\pm$ \\", r"\midrule"]
    runs = (seeds or {}).get("runs") or {}
    if not runs:
        lines.append(r"\multicolumn{7}{c}{no run was trained with extra seeds} \\")
    for i, (stem, run) in enumerate(runs.items()):
        if i:
            lines.append(r"\midrule")
        first = True
        for metric in metrics:
            item = (run.get("metrics") or {}).get(metric)
            if not item:
                continue
            d = REPORTED[metric].digits
            spread = item["max"] - item["min"]
            sd = number(item.get("sd"), d + 1)
            cells = [display(stem) if first else "", REPORTED[metric].label, str(item["n"]),
                     rf"{number(item['mean'], d)} $\pm$ {sd}", f"{number(item['min'], d)}--{number(item['max'], d)}",
                     number(spread, d + 1), number(half_width(item), d + 1)]
            lines.append(" & ".join(cells) + r" \\")
            first = False
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def breakdown_table(reports: dict[str, dict], kind: str, metrics: list[str], caption: str, label: str) -> str:
    """Each system's ``metrics`` within each group of ``kind`` (corpus, folder genre) of its
    ``breakdown``; values only (the intervals are in the metrics files), best per column in bold."""
    groups: list[str] = []
    for report in reports.values():
        for group in (report.get("breakdown") or {}).get(kind, {}):
            if group not in groups:
                groups.append(group)
    columns = [(g, m) for g in groups for m in metrics]

    def item(name: str, group: str, metric: str) -> dict | None:
        return entry(((reports[name].get("breakdown") or {}).get(kind) or {}).get(group), metric)

    best = {}
    for g, m in columns:
        values = {n: e["value"] for n in reports if (e := item(n, g, m))}
        if values:
            pick = min if REPORTED[m].lower_is_better else max
            best[(g, m)] = pick(values.values())
    songs = {g: next((((r.get("breakdown") or {}).get(kind) or {}).get(g, {}).get("n_songs")
                      for r in reports.values() if ((r.get("breakdown") or {}).get(kind) or {}).get(g)), 0)
             for g in groups}
    lines = [*table_head(caption, label, "l" + "r" * len(columns)),
             " & ".join(["System"] + [rf"\multicolumn{{{len(metrics)}}}{{c}}{{{latex_escape(g)} ({songs[g]})}}"
                                      for g in groups]) + r" \\",
             " & ".join([""] + [REPORTED[m].label for _, m in columns]) + r" \\", r"\midrule"]
    for name in reports:
        cells = []
        for g, m in columns:
            e = item(name, g, m)
            text = number(e["value"] if e else None, REPORTED[m].digits)
            cells.append(rf"\textbf{{{text}}}" if e and e["value"] == best.get((g, m)) else text)
        lines.append(" & ".join([display(name)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)
