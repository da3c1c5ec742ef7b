"""The tables stage on fake metrics files: formatting, bold best, n/a, macros and computed sentences."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import tables
from pipeline.report import latex, prose


def metrics_file(name: str, kind: str, values: dict) -> dict:
    return {
        "name": name,
        "kind": kind,
        "status": "ok",
        "n_test_pairs": 321,
        "n_test_songs": 12,
        "metrics": {m: (None if v is None else {"value": v[0], "lo": v[1], "hi": v[2]}) for m, v in values.items()},
        "reference": {"empty_bar_rate": {"value": 0.05, "lo": 0.03, "hi": 0.07},
                      "kick_lock": {"value": 0.6, "lo": 0.5, "hi": 0.7}},
        "notes": [],
    }


FAKE = {
    "transformer": ("model", {"perplexity": (3.1, 2.9, 3.3), "bleu4": (0.30, 0.25, 0.35), "bce": (0.02, 0.019, 0.021),
                              "empty_bar_rate": (0.04, 0.02, 0.06), "kick_lock": (0.55, 0.5, 0.6),
                              "onset_f1": (0.5, 0.45, 0.55)}),
    "pix2pix": ("model", {"perplexity": None, "bleu4": (0.10, 0.08, 0.12), "bce": (0.05, 0.04, 0.06),
                          "empty_bar_rate": (0.8, 0.7, 0.9), "onset_f1": (0.2, 0.1, 0.3)}),
    "lstm": ("model", {"perplexity": (4.0, 3.8, 4.2), "bleu4": (0.2, 0.1, 0.28), "bce": (0.03, 0.02, 0.04),
                       "onset_f1": (0.4, 0.3, 0.5)}),
    "knn": ("baseline", {"perplexity": None, "bleu4": (0.28, 0.2, 0.32)}),
    "bigram": ("baseline", {"perplexity": (6.0, 5.5, 6.5), "bleu4": (0.05, 0.03, 0.07)}),
    "silence": ("baseline", {"bce": (0.5, 0.5, 0.5), "bleu4": (0.0, 0.0, 0.0)}),
}


def diff(value, lo, hi, lower_is_better=False):
    return {"value": value, "lo": lo, "hi": hi, "clears": hi < 0 if lower_is_better else lo > 0}


COMPARISONS = {
    "transformer": {
        "bigram": {"perplexity": diff(-2.9, -3.2, -2.5, True), "bleu4": diff(0.01, -0.002, 0.02),
                   "bleu4_mbr": diff(0.05, 0.04, 0.06)},
        "knn": {"perplexity": diff(-4.0, -4.5, -3.5, True), "bleu4": diff(0.02, 0.01, 0.03),
                "bleu4_mbr": diff(0.03, 0.02, 0.04)},
    },
    "pix2pix": {"bigram": {"perplexity": None, "bleu4": diff(0.05, 0.04, 0.06), "bleu4_mbr": diff(0.05, 0.04, 0.06)},
                "knn": {"perplexity": None, "bleu4": diff(0.05, 0.04, 0.06), "bleu4_mbr": diff(0.05, 0.04, 0.06)}},
}


@pytest.fixture()
def results(tmp_path: Path) -> dict:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    for name, (kind, values) in FAKE.items():
        (metrics_dir / f"{name}.json").write_text(json.dumps(metrics_file(name, kind, values)))
    for tag, ppl in (("none", (5.0, 4.8, 5.2)), ("style", (3.0, 2.9, 3.1))):
        ablation = metrics_file(tag, "ablation", {"perplexity": ppl})
        (metrics_dir / f"ablation_{tag}.json").write_text(json.dumps(ablation))
    (metrics_dir / "comparisons.json").write_text(json.dumps(COMPARISONS))
    return tables.load_results(metrics_dir, ["transformer", "pix2pix", "lstm"],
                               ["knn", "bigram", "silence"], ["none", "style"])


def test_macro_names_are_letters_only():
    assert latex.macro_name("lstm_fcnn", "bleu4") == "lstmFcnnBleuFour"
    assert latex.macro_name("pix2pix", "onset_f1", "ci") == "pixTwoPixOnsetFOneCi"
    assert latex.macro_name("n", "test", "pairs") == "nTestPairs"


def test_cells_intervals_and_na():
    assert latex.cell({"value": 0.12345, "lo": 0.1, "hi": 0.15}, 3) == r"0.123 {\scriptsize[0.100, 0.150]}"
    assert latex.cell(None, 3) == "n/a"
    assert latex.entry({"bleu4": None}, "bleu4") is None
    assert latex.entry({}, "bleu4") is None


def test_main_table_bold_best_and_na(results, tmp_path):
    out = tmp_path / "generated"
    tables.write_tables(results, {"train": {"pairs": 10, "songs": 2}}, {"pairs_kept": 14}, {}, out, SONGS)
    main = (out / "table_main.tex").read_text()
    rows = {line.split(" & ")[0]: line for line in main.splitlines() if " & " in line}
    # lowest perplexity (transformer) and highest BLEU-4 (transformer, 0.30 > knn 0.28) in bold
    assert r"\textbf{3.10 {\scriptsize[2.90, 3.30]}}" in rows["Transformer"]
    assert r"\textbf{0.300" in rows["Transformer"]
    assert r"\textbf" not in rows["kNN"]
    assert rows["pix2pix"].split(" & ")[1] == "n/a"  # pix2pix has no perplexity
    assert r"\textbf{0.02 {\scriptsize[0.02, 0.02]}}" in rows["Transformer"]  # lowest BCE
    music = (out / "table_music.tex").read_text()
    # empty bars: closest to the real 0.05 is the transformer's 0.04
    assert r"\textbf{0.040" in music and r"\textbf{0.800" not in music
    assert r"\emph{real bass}" in music
    data = (out / "table_data.tex").read_text()
    assert "train & 10 & 2" in data and "test & n/a & n/a" in data


def test_macros_and_sentences(results, tmp_path):
    out = tmp_path / "generated"
    tables.write_tables(results, {}, {}, {}, out, SONGS)
    text = (out / "macros.tex").read_text()
    defs = dict(re.findall(r"\\newcommand\{\\([^}]*)\}\{(.*)\}", text))
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in defs)
    assert defs["bestModelName"] == "Transformer"
    assert defs["nTestPairs"] == "321"
    assert defs["silenceBce"] == "0.50"
    assert defs["pixTwoPixPerplexity"] == "n/a"
    assert defs["bestBleu"] == "0.300"
    lead = defs["leadSentence"]
    # knn: no perplexity, BLEU-4 0.30 vs 0.28 with overlapping intervals; bigram: both better, disjoint
    assert "against kNN it has a better BLEU-4 (95\\% intervals overlap)" in lead
    assert ("against bigram it has a better perplexity (95\\% intervals disjoint) "
            "and a better BLEU-4 (95\\% intervals disjoint)") in lead
    assert "a worse onset F1" in defs["pixSentence"] and " and a worse roll BCE" in defs["pixSentence"]
    assert defs["ablationSentence"] == ("With tempo, program, key and drum style the model has a better perplexity "
                                        "(95\\% intervals disjoint) than with no conditioning.")
    assert "0.800 (pix2pix)" in defs["silenceSentence"] and "pix2pix leave at least half" in defs["silenceSentence"]


def test_quality_table_and_sentence(results):
    text = latex.quality_table(results["comparisons"], ["bigram", "knn"], ["perplexity", "bleu4", "bleu4_mbr"])
    transformer = next(line for line in text.splitlines() if line.startswith("Transformer"))
    cells = transformer.rstrip(" \\").split(" & ")[1:]
    assert cells[0] == r"\textbf{$-$2.90 {\scriptsize[$-$3.20, $-$2.50]}}"  # perplexity lower: clears
    assert cells[1] == r"+0.010 {\scriptsize[$-$0.002, +0.020]}"  # interval straddles 0: not bold
    assert cells[2].startswith(r"\textbf{+0.050")
    assert "pix2pix & n/a &" in text and r"\cmidrule(lr){2-4}\cmidrule(lr){5-7}" in text
    sentence = prose.quality_sentence(results["comparisons"], ["bigram", "knn"])
    assert sentence == ("Judged by the paired intervals of Table~\\ref{tab:quality}, on perplexity and BLEU-4 of "
                        "the first sample, no neural model clears both bigram and kNN; on perplexity and BLEU-4 of "
                        "the MBR choice, Transformer clears both bigram and kNN.")
    assert prose.quality_sentence({}, []) == "The paired comparison with the baselines was not computed."
    assert prose.quality_sentence(results["comparisons"], ["knn"], "By pairs").startswith(
        "By pairs, on perplexity and BLEU-4 of the first sample, Transformer clears kNN;")
    two = {**results["comparisons"], "lstm": results["comparisons"]["transformer"]}
    assert "MBR choice, Transformer and LSTM seq2seq clear both bigram and kNN." in prose.quality_sentence(
        two, ["bigram", "knn"])


def test_sentences_flag_differences_the_training_seed_can_explain(results):
    comparisons = results["comparisons"]  # transformer minus bigram / kNN on BLEU-4 MBR: +0.05 / +0.03
    loose = prose.quality_sentence(comparisons, ["bigram", "knn"], spreads={"bleu4_mbr": 0.04, "perplexity": 0.1})
    assert loose.endswith("MBR choice, Transformer clears both bigram and kNN (Transformer: by less than the "
                          "training-seed spread).")
    tight = prose.quality_sentence(comparisons, ["bigram", "knn"], spreads={"bleu4_mbr": 0.02, "perplexity": 0.1})
    assert tight == prose.quality_sentence(comparisons, ["bigram", "knn"])
    assert prose.context_sentence(comparisons, "bigram", {"bleu4_mbr": 0.06}).endswith(
        "(paired song bootstrap) (Transformer: by less than the training-seed spread).")
    assert prose.context_sentence(comparisons, "bigram", {"bleu4_mbr": 0.05}).endswith("(paired song bootstrap).")
    lead = prose.lead_sentence(results, {"bleu4": 0.05})  # BLEU-4 0.30 against kNN's 0.28
    assert "against kNN it has a better BLEU-4 (95\\% intervals overlap, within the training-seed spread)" in lead
    assert "within" not in prose.lead_sentence(results, {"bleu4": 0.01})
    assert prose.within_seeds(-0.03, "bleu4", {"bleu4": 0.04}) and not prose.within_seeds(0.03, "bleu4", {})


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_generated_tables_compile(results, tmp_path):
    out = tmp_path / "generated"
    tables.write_tables(results, {}, {}, {}, out, SONGS)
    body = "\n".join(rf"\input{{generated/{p.stem}}}" for p in sorted(out.glob("table_*.tex")))
    doc = (r"\documentclass{article}\usepackage{booktabs,graphicx}\begin{document}\input{generated/macros}"
           r"\leadSentence\ \pixSentence\ \ablationSentence\ \silenceSentence\ \qualitySentence\ \qualityAbstract"
           + "\n" + body + r"\end{document}")
    (tmp_path / "doc.tex").write_text(doc)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]


def test_paper_stage_names_the_apt_command_when_latexmk_is_missing(monkeypatch, tmp_path):
    from pipeline import paper

    monkeypatch.setattr(paper.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install -y --no-install-recommends texlive-latex-base"):
        paper.compile_pdf(tmp_path / "main.tex", tmp_path / "build")


def test_metric_names_are_the_evaluations_and_a_missing_or_failed_file_stops_the_stage(tmp_path):
    d = tmp_path / "metrics"
    d.mkdir()
    ok = metrics_file("ffnn", "model", {"nll_per_step": (1.5, 1.4, 1.6), "pitch_class_accuracy": (0.4, 0.3, 0.5)})
    (d / "ffnn.json").write_text(json.dumps(ok))
    (d / "comparisons.json").write_text("{}")
    results = tables.load_results(d, ["ffnn"], [], [])
    out = tmp_path / "generated"
    tables.write_tables(results, {}, {}, {}, out, SONGS)
    defs = dict(re.findall(r"\\newcommand\{\\([^}]*)\}\{(.*)\}", (out / "macros.tex").read_text()))
    assert defs["ffnnNllPerStep"] == "1.500" and defs["ffnnPitchClassAccuracy"] == "0.400"
    with pytest.raises(SystemExit, match=r"metrics/cnn.json missing.*run `dvc repro evaluate`"):
        tables.load_results(d, ["ffnn", "cnn"], [], [])
    (d / "cnn.json").write_text(json.dumps({**metrics_file("cnn", "model", {}), "status": "failed: ValueError: x"}))
    with pytest.raises(SystemExit, match=r"cnn.json: failed: ValueError: x"):
        tables.load_results(d, ["ffnn", "cnn"], [], [])
    (d / "comparisons.json").unlink()
    with pytest.raises(SystemExit, match=r"comparisons.json is missing"):
        tables.load_results(d, ["ffnn"], [], [])


def test_skip_sentence_lists_reasons_by_count():
    report = {"skipped_by_reason": {"no_bass": 10, "unreadable": 0, "no_four_four": 11, "weird_reason": 1},
              "windows_dropped": {"sparse": 373, "absurd_tempo": 0}}
    assert prose.skip_sentence(report) == (
        "Files left out: 11 without a 4/4 window, 10 without a bass track, 1 weird reason. "
        "Windows dropped: 373 sparse.")
    assert prose.skip_sentence({}) == "The extraction report is not available."


def test_corpus_and_evaluation_sentences():
    extract = {"corpora": {"freedoom": "data/raw/freedoom", "ultimate": "/x.tar.gz", "my_set": "/y"},
               "files_by_corpus": {"freedoom": 112, "ultimate": 14697, "my_set": 3},
               "pairs_by_corpus": {"freedoom": 2995, "ultimate": 469344}}
    text = prose.corpus_sentence(extract)
    assert text.startswith("The pairs come from the music of the Freedoom project~\\citep{freedoom} (112 files, 2,995")
    assert "\\citep{ultimatemidi} (14,697 files, 469,344 pairs) and the corpus my\\_set (3 files, 0 pairs)." in text
    assert prose.corpus_sentence({}) == "The corpus is not known (no extraction report)."
    results = {"models": {"x": {"n_test_pairs": 12000, "n_test_songs": 1604, "max_pairs_per_song": 8}},
               "baselines": {}}
    stats = {"pairs_per_split": {"test": 73315}}
    sentence = prose.evaluation_sentence(results, stats)
    assert "all 73,315 test pairs" in sentence
    assert "at most 8 pairs of each test song: 12,000 pairs covering all 1,604" in sentence
    results["models"]["x"]["n_test_pairs"] = 73315
    assert prose.evaluation_sentence(results, stats) == "Every pair of the test split is evaluated."


def _song(kind: str, takes: bool, line: float, rhythm: float, distinct: float, critic: float | None,
          val_score: float | None = None) -> dict:
    def item(v):
        return {"value": v, "lo": v - 0.01, "hi": v + 0.01}
    metrics = {"identical_line_rate": item(line), "identical_rhythm_rate": item(rhythm),
               "distinct_line_rate": item(distinct), "consecutive_bleu4": item(line + 0.2),
               "onset_pitch_f1": item(0.1), "bleu4": item(0.4),
               "critic_accuracy": item(critic) if critic is not None else None}
    # the validation score (worst of the repetition and critic gaps) picks the paper's model, not the repetition gap
    chosen = ({"temperature": "0.9", "validation_gaps": {"1": 9.0, "0.9": 0.1}, "validation_scores": {"0.9": val_score},
               "validation_missed": {"0.9": int(val_score > 1)}} if val_score is not None else {})
    return {"kind": kind, "status": "ok", "takes_previous": takes, "metrics": metrics,
            "n_test_songs": 12, "n_test_windows": 150, "max_windows": 16} | chosen


SONGS = {
    "real": _song("reference", False, 0.25, 0.55, 0.37, None),
    "transformer": _song("model", False, 0.0, 0.02, 1.0, 0.95),
    "ablation_previous": _song("ablation", True, 0.30, 0.50, 0.40, 0.60, val_score=0.8),
    "ablation_chords": _song("ablation", False, 0.0, 0.01, 1.0, 0.9),
    "repeat_previous": _song("baseline", True, 1.0, 1.0, 0.06, 0.99, val_score=0.0),
}


def test_song_table_and_sentences(results, tmp_path):
    out = tmp_path / "generated"
    tables.write_tables(results, {}, {}, {}, out, SONGS)
    text = (out / "table_songs.tex").read_text()
    rows = {line.split(" & ")[0]: line for line in text.splitlines() if " & " in line}
    # closest to the real 0.25 identical lines: the context run (0.30), not the copy (1.0); lowest critic accuracy
    assert r"\textbf{0.300" in rows["ablation + previous window"]
    assert r"\textbf{0.600" in rows["ablation + previous window"]
    assert not any(r"\textbf" in c for c in rows["repeat previous"].split(" & ")[1:4])  # (equal F1/BLEU: all bold)
    assert rows[r"\emph{real bass}"].split(" & ")[-1].startswith("n/a")  # no critic for the real bass
    assert prose.best_song_system(SONGS) == "ablation_previous"  # baselines are never the best context model
    # the validation songs pick it, at the decoding chosen there: a run closer on the test songs but
    # farther on validation is not the paper's context model
    closer_on_test = _song("ablation", True, 0.25, 0.55, 0.37, 0.55, val_score=1.2)
    assert prose.best_song_system({**SONGS, "ablation_recall": closer_on_test}) == "ablation_previous"
    assert prose.best_song_system({**SONGS, "ablation_recall": {**closer_on_test, "validation_scores": {"0.9": 0.3},
                                                                 "validation_missed": {"0.9": 0}}}) \
        == "ablation_recall"
    # ... by its score (repetition and critic), not by its repetition gap alone
    repeats_closer = {**closer_on_test, "validation_gaps": {"0.9": 0.01}}
    assert prose.best_song_system({**SONGS, "ablation_recall": repeats_closer}) == "ablation_previous"
    # ... and the goals reached first: a smaller worst gap that misses more goals loses
    misses_more = {**closer_on_test, "validation_scores": {"0.9": 0.5}, "validation_missed": {"0.9": 2}}
    assert prose.best_song_system({**SONGS, "ablation_recall": misses_more}) == "ablation_previous"
    sentence = prose.song_sentence(SONGS)
    assert "real bass repeats the line of the window before in 0.250" in sentence
    assert "ablation + previous window" in sentence and "0.050" in sentence  # |0.30 - 0.25|
    assert "at most 0.000" in sentence
    critic = prose.critic_sentence(SONGS)
    assert "from 0.600" in critic and "to 0.990" in critic and "0.600 [0.590, 0.610]" in critic
    assert "differ most" not in critic  # no giveaways recorded: no claim
    assert "For scale" not in critic  # no controls recorded: no claim
    given = [{"feature": "chord_root", "real": 0.567, "fake": 0.333, "d": -0.93}]
    controls = {"same_song": {"critic_accuracy": {"value": 0.722, "lo": 0.699, "hi": 0.744}, "critic_giveaways": given},
                "other_song": {"critic_accuracy": None, "critic_giveaways": []}}
    scaled = prose.critic_sentence({**SONGS, "real": {**SONGS["real"], "critic_controls": controls}})
    assert scaled.endswith("For scale, real lines over drums and chords they were not played with are told apart "
                           "too: the real bass of the same song from other 8 bars at 0.722 [0.699, 0.744] "
                           "(share of onsets on the chord root 0.33 against 0.57).")
    seeds = {"runs": {"ablation_previous": {
        "metrics": {"identical_line_rate": {"n": 3, "min": 0.136, "max": 0.208},
                    "identical_rhythm_rate": {"n": 3, "min": 0.402, "max": 0.541},
                    "distinct_line_rate": {"n": 3, "min": 0.663, "max": 0.738}},
        "temperature": {"0": "0.9/0.3", "1": "1/0.5", "2": "1 top-p 0.93"},
        "test_target_gap": {"0": 0.89, "1": 0.68, "10": 1.61, "2": 0.5}}}}
    spread = prose.song_seed_sentence(seeds, prose.best_song_system(SONGS))
    assert "Over its 4 training seeds" in spread and "0.402--0.541" in spread
    assert "3 of 4 seeds come within every tolerance" in spread and "0.89, 0.68, 0.50 and 1.61, by seed" in spread
    assert prose.song_seed_sentence(seeds, "transformer") == "" == prose.song_seed_sentence(None, "ablation_previous")
    # a closest context model with one seed (a run trained longer): the paper gives the seeds of the context run
    # that has them, by name; the closest model itself is named by the song sentence
    longer = {**SONGS, "ablation_recall_long": _song("ablation", True, 0.20, 0.45, 0.60, 0.55, val_score=0.3)}
    out_long = tmp_path / "longer"
    tables.write_tables(results, {}, {}, {}, out_long, longer, song_seeds=seeds)
    macros = (out_long / "macros.tex").read_text()
    seed_line = next(line for line in macros.splitlines() if r"{\songSeedSentence}" in line)
    assert "Over its 4 training seeds" in seed_line and "ablation + previous window repeats" in seed_line
    assert ("{The closest context model, ablation + recalled window, trained longer, has one training seed. "
            "Over its 4") in seed_line
    assert "ablation + recalled window, trained longer" in next(
        line for line in macros.splitlines() if r"{\bestSongSystem}" in line)
    given = {**SONGS, "ablation_previous": {**SONGS["ablation_previous"], "critic_giveaways": [
        {"feature": "distinct_pitch_classes", "real": 5.02, "fake": 2.69, "d": -1.46},
        {"feature": "interval_0", "real": 0.46, "fake": 0.79, "d": 1.29}]}}
    assert ("in distinct pitch classes (2.69 against 5.02, d = -1.46) and share of repeated pitches "
            "(0.79 against 0.46, d = +1.29).") in prose.critic_sentence(given)
    macros = (out / "macros.tex").read_text()
    assert r"\newcommand{\bestSongSystem}{ablation + previous window}" in macros


def test_compute_table_gives_every_run_its_compute():
    runs = {"transformer": {"epochs": 6, "pairs_presented": 120000, "wall_seconds": 208.04, "stopped_early": 0,
                            "best_val_loss": 0.6021, "ranks": 2, "threads": 1, "bf16": 1},
            "ffnn": {"epochs": 9, "pairs_presented": 20268, "wall_seconds": 3.4, "stopped_early": 1,
                     "best_val_loss": 1.3692, "ranks": 1, "threads": 2, "bf16": 0},
            "cnn": {"epochs": 3, "pairs_presented": 6756, "wall_seconds": 1.0, "stopped_early": 1,
                    "best_val_loss": 1.5},  # a log from before the setup was recorded
            "ablation_previous": None}
    rows = {line.split(" & ")[0]: line for line in latex.compute_table(runs).splitlines() if " & " in line}
    assert rows["Transformer"] == r"Transformer & 6 & 120,000 & 208.0 & 2$\times$1T bf16 & epoch limit & 0.602 \\"
    assert rows["FFNN"] == r"FFNN & 9 & 20,268 & 3.4 & 2T fp32 & early stopping & 1.369 \\"
    assert rows["CNN"] == r"CNN & 3 & 6,756 & 1.0 & n/a & early stopping & 1.500 \\"
    assert rows["ablation + previous window"].endswith(r"n/a & n/a & n/a & n/a & n/a & n/a \\")


def test_training_runs_list_the_extra_seeds_after_the_main_runs(tmp_path):
    from pipeline.tables import training_runs

    for folder, epochs in [("transformer", 6), ("ablation/recall", 4), ("seeds/transformer/seed2", 5),
                           ("seeds/ablation/recall/seed2", 3)]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text(json.dumps({"epochs": epochs, "stopped_early": 1}))
    seeds = {"models": ["transformer"], "ablations": ["recall"], "extra": [0, 1, 2]}
    runs = training_runs(tmp_path, ["transformer"], ["recall"], seeds, main_seed=0)
    assert list(runs) == ["transformer", "ablation_recall", "transformer_seed1", "transformer_seed2",
                          "ablation_recall_seed1", "ablation_recall_seed2"]
    assert [r and r["epochs"] for r in runs.values()] == [6, 4, None, 5, None, 3]
    rows = [line.split(" & ")[0] for line in latex.compute_table(runs).splitlines() if " & " in line][1:]
    assert rows == ["Transformer", "ablation + recalled window", "Transformer, seed 1", "Transformer, seed 2",
                    "ablation + recalled window, seed 1", "ablation + recalled window, seed 2"]


def test_stop_sentence_counts_the_runs_early_stopping_ended():
    from pipeline.report.prose import stop_sentence

    runs = {"ffnn": {"stopped_early": 1}, "cnn": {"stopped_early": 0}, "lstm": {"stopped_early": 1}, "cvae": None}
    assert stop_sentence(runs, {"patience": 1, "min_improvement": 0.02}) == (
        "2 of 3 training runs were stopped by early stopping (the first epoch that lowers the best validation "
        "loss by less than 2\\%); 1 by their epoch limit or the wall-clock guard.")
    assert "4 epochs in a row without a lower validation loss" in stop_sentence(runs, {"patience": 4})
    assert "2 epochs in a row that lower the best validation loss by less than 1\\%" in stop_sentence(
        runs, {"patience": 2, "min_improvement": 0.01})
    assert stop_sentence({}, {"patience": 4}) == "No training run was logged."


def test_the_chord_model_is_the_chord_run_without_past_windows_with_the_lowest_validation_loss(results, tmp_path):
    ablation = {"none": [], "chords": ["key", "chords"], "long": {"labels": ["key", "chords"], "budget": {}},
                "previous": ["chords", "previous"]}
    runs = {"ablation_none": {"best_val_loss": 0.1}, "ablation_chords": {"best_val_loss": 0.50},
            "ablation_long": {"best_val_loss": 0.45}, "ablation_previous": {"best_val_loss": 0.2}}
    assert tables.headline_chord_run(ablation, runs) == "long"
    assert tables.headline_chord_run(ablation, {**runs, "ablation_long": {"best_val_loss": 0.6}}) == "chords"
    assert tables.headline_chord_run(ablation, {}) == "chords"  # no logs: the first chord run
    assert tables.headline_chord_run({"none": [], "previous": ["chords", "previous"]}, runs) is None
    rule = metrics_file("chord_root_on_kick", "baseline", {"bleu4": (0.49, 0.48, 0.50)})
    mine = metrics_file("long", "ablation", {"bleu4": (0.51, 0.50, 0.52)})
    text = prose.harmony_sentence({"ablation": {"long": mine}, "baselines": {"chord_root_on_kick": rule}}, None,
                                  tag="long")
    assert text.startswith("The chord-conditioned model is the ablation row ``long'', the chord run with the "
                           "lowest validation loss. Against chord root on kick it has a better BLEU-4")
    assert prose.harmony_sentence({"ablation": {}, "baselines": {"chord_root_on_kick": rule}}, None, tag=None) == (
        "The chord-conditioned model or the chord-aware rule was not evaluated.")
