"""Test metrics broken down by corpus and folder genre (evaluate) and their table (tables)."""

import numpy as np
import pytest

from dnb import metrics as M
from pipeline.evaluate import breakdown, song_groups
from pipeline.report import latex

PARAMS = {"bootstrap": 50, "seed": 0}


def test_breakdown_scores_each_group_on_its_own_pairs():
    meta = {"song_corpus": ["freedoom", "ultimate", "ultimate"], "song_folder_genre": ["", "rock", "pop"]}
    groups = song_groups(meta)
    assert groups["folder_genre"].tolist() == ["(none)", "rock", "pop"]
    song = np.array([0, 0, 1, 2, 2, 2])
    # onset-pitch F1 statistics (true positives, predicted, actual): song 0 perfect, songs 1-2 half right
    f1 = np.array([[4, 4, 4], [2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]], dtype=float)
    nll = np.array([[64.0, 64.0]] * 6)
    stats = {"onset_pitch_f1": (f1, None), "perplexity": (nll, None), "bleu4": (np.zeros((2, 10)), np.array([0, 5]))}
    out = breakdown(stats, song, groups, PARAMS)
    assert out["corpus"]["freedoom"]["n_songs"] == 1 and out["corpus"]["ultimate"]["n_pairs"] == 4
    assert out["corpus"]["freedoom"]["onset_pitch_f1"]["value"] == pytest.approx(1.0)
    assert out["corpus"]["ultimate"]["onset_pitch_f1"]["value"] == pytest.approx(0.5)
    assert out["folder_genre"]["rock"]["perplexity"]["value"] == pytest.approx(np.e)
    assert out["corpus"]["freedoom"]["chord_tone_rate"] is None  # not among the statistics: n/a
    # a metric on a subset of rows (MBR, diversity): row 0 is freedoom's, row 5 ultimate's
    assert out["corpus"]["freedoom"]["bleu4"]["value"] == 0.0 and out["corpus"]["ultimate"]["bleu4"]["value"] == 0.0
    assert M.METRICS["onset_pitch_f1"].statistic(f1.sum(0)) == pytest.approx(10 / 14)


def test_breakdown_table_columns_per_group_and_bold_best():
    def report(a, b):
        return {"breakdown": {"corpus": {"freedoom": {"n_songs": 12, "onset_pitch_f1": {"value": a}},
                                         "ultimate": {"n_songs": 1592, "onset_pitch_f1": {"value": b}}}}}
    text = latex.breakdown_table({"transformer": report(0.2, 0.1), "bigram": report(0.05, 0.3)}, "corpus",
                                 ["onset_pitch_f1"], "caption", "tab:corpus")
    assert r"\multicolumn{1}{c}{freedoom (12)}" in text and r"\multicolumn{1}{c}{ultimate (1592)}" in text
    rows = {line.split(" & ")[0]: line for line in text.splitlines() if " & " in line}
    assert rows["Transformer"] == r"Transformer & \textbf{0.200} & 0.100 \\"
    assert rows["bigram"] == r"bigram & 0.050 & \textbf{0.300} \\"
