"""Extra training seeds: evaluate's metrics/seeds.json (values, mean, sd, range) and their table and sentence."""

import json
import math
import re
import shutil
import subprocess

import pytest

from pipeline import evaluate, tables
from pipeline.report import latex, prose


def report(status="ok", **values):
    """A metrics report as evaluate_one writes it: value with its interval (+-0.01 here)."""
    return {"status": status, "metrics": {m: {"value": v, "lo": v - 0.01, "hi": v + 0.01} for m, v in values.items()}}


def test_seed_spread_is_mean_sample_sd_and_range():
    out = evaluate.seed_spread({0: 0.40, 1: 0.42, 2: 0.45})
    assert out["values"] == {"0": 0.40, "1": 0.42, "2": 0.45} and out["n"] == 3
    assert out["mean"] == pytest.approx(0.4233333333)
    assert out["sd"] == pytest.approx(math.sqrt((0.0233333**2 + 0.0033333**2 + 0.0266667**2) / 2), rel=1e-5)
    assert out["sd"] == pytest.approx(0.0251661, rel=1e-5)
    assert (out["min"], out["max"]) == (0.40, 0.45)
    one = evaluate.seed_spread({0: 1.7})
    assert one["sd"] is None and one["mean"] == one["min"] == one["max"] == 1.7


def test_seeds_json_scores_every_extra_seed_beside_the_main_run(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "CHECKPOINTS", tmp_path)
    for path in ("seeds/transformer/seed1.pt", "seeds/transformer/seed2.pt", "seeds/ablation/previous/seed2.pt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    scored = {"transformer_seed1": report(perplexity=1.75, bleu4=0.42), "transformer_seed2": report(
        perplexity=1.73, bleu4=0.45), "ablation_previous_seed2": report(perplexity=1.5, bleu4=0.5)}
    calls = []

    def score(name, path):
        calls.append((name, path.relative_to(tmp_path).as_posix()))
        return scored[name]

    main = {"transformer": report(perplexity=1.71, bleu4=0.40), "ablation_previous": report(perplexity=1.46, bleu4=0.5)}
    seeds = {"models": ["transformer"], "ablations": ["previous"], "extra": [0, 1, 2]}  # 0: the main run itself
    out = evaluate.evaluate_seeds(main, seeds, 0, score)
    assert calls == [("transformer_seed1", "seeds/transformer/seed1.pt"),
                     ("transformer_seed2", "seeds/transformer/seed2.pt"),
                     ("ablation_previous_seed2", "seeds/ablation/previous/seed2.pt")]
    bleu = out["runs"]["transformer"]["metrics"]["bleu4"]
    assert bleu["values"] == {"0": 0.40, "1": 0.42, "2": 0.45} and bleu["n"] == 3
    assert bleu["mean"] == pytest.approx(0.4233333333) and bleu["sd"] == pytest.approx(0.0251661, rel=1e-5)
    assert (bleu["min"], bleu["max"]) == (0.40, 0.45)
    assert (bleu["lo"], bleu["hi"]) == pytest.approx((0.39, 0.41))  # the main run's bootstrap interval
    ppl = out["runs"]["transformer"]["metrics"]["perplexity"]
    assert ppl["mean"] == pytest.approx(1.73) and ppl["sd"] == pytest.approx(0.02)
    previous = out["runs"]["ablation_previous"]
    assert previous["status"] == {"0": "ok", "1": "missing checkpoint", "2": "ok"}
    assert previous["metrics"]["perplexity"]["values"] == {"0": 1.46, "2": 1.5}  # only the evaluated seeds
    assert previous["metrics"]["perplexity"]["sd"] == pytest.approx(math.sqrt(0.02**2 * 2))
    json.dumps(out, allow_nan=False)  # writable as evaluate writes it


SEEDS = {"main_seed": 0, "runs": {
    "transformer": {"seeds": [0, 1, 2], "status": {"0": "ok", "1": "ok", "2": "ok"}, "metrics": {
        "bleu4": {**evaluate.seed_spread({0: 0.40, 1: 0.42, 2: 0.45}), "lo": 0.39, "hi": 0.41},
        "perplexity": {**evaluate.seed_spread({0: 1.71, 1: 1.75, 2: 1.73}), "lo": 1.69, "hi": 1.73}}},
    "ablation_previous": {"seeds": [0, 1, 2], "status": {"0": "ok", "1": "ok", "2": "ok"}, "metrics": {
        "bleu4": {**evaluate.seed_spread({0: 0.50, 1: 0.51, 2: 0.52}), "lo": 0.49, "hi": 0.51}}}}}


def test_seed_table_and_sentence():
    text = latex.seed_table(SEEDS, tables.SEED_COLUMNS)
    rows = [line for line in text.splitlines() if " & " in line]
    assert rows[1] == r"Transformer & PPL & 3 & 1.73 $\pm$ 0.020 & 1.71--1.75 & 0.040 & 0.020 \\"
    assert rows[2] == r" & BLEU-4 & 3 & 0.423 $\pm$ 0.0252 & 0.400--0.450 & 0.0500 & 0.0100 \\"
    assert rows[3].startswith(r"ablation + previous window & BLEU-4 & 3 & 0.510 $\pm$ 0.0100 & 0.500--0.520")
    assert r"\label{tab:seeds}" in text
    assert "no run was trained with extra seeds" in latex.seed_table({"runs": {}}, tables.SEED_COLUMNS)
    assert prose.seed_spreads(SEEDS, tables.SEED_COLUMNS) == pytest.approx({"perplexity": 0.04, "bleu4": 0.05})
    assert prose.seed_sentence(SEEDS, tables.SEED_COLUMNS) == (
        "Over 3 training seeds of Transformer and ablation + previous window (Table~\\ref{tab:seeds}), the largest "
        "spread (max $-$ min) of one run is 0.040 in perplexity and 0.0500 in BLEU-4: a difference between two "
        "models smaller than that can come from the training seed alone.")
    assert prose.seed_sentence({"runs": {}}, tables.SEED_COLUMNS) == "No run was trained with more than one seed."


def test_tables_write_the_seed_table_and_macros_and_refuse_a_missing_seed(tmp_path):
    results = {"models": {}, "baselines": {}, "ablation": {}, "comparisons": {}}
    out = tmp_path / "generated"
    tables.write_tables(results, {}, {}, {}, out, {}, seeds=SEEDS)
    assert (out / "table_seeds.tex").read_text() == latex.seed_table(SEEDS, tables.SEED_COLUMNS)
    defs = dict(re.findall(r"\\newcommand\{\\([^}]*)\}\{(.*)\}", (out / "macros.tex").read_text()))
    assert defs["seedSpreadBleuFour"] == "0.0500" and defs["seedSpreadPerplexity"] == "0.040"
    assert defs["seedSpreadBleuFourMbr"] == "n/a" and defs["seedSentence"].startswith("Over 3 training seeds")
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(SEEDS))
    assert tables.load_seeds(path) == SEEDS
    broken = json.loads(json.dumps(SEEDS))
    broken["runs"]["transformer"]["status"]["2"] = "missing checkpoint"
    path.write_text(json.dumps(broken))
    with pytest.raises(SystemExit, match=r"transformer seed 2: missing checkpoint.*dvc repro evaluate"):
        tables.load_seeds(path)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_seed_table_and_sentence_compile(tmp_path):
    out = tmp_path / "generated"
    tables.write_tables({"models": {}, "baselines": {}, "ablation": {}, "comparisons": {}}, {}, {}, {}, out, {},
                        seeds=SEEDS)
    (tmp_path / "doc.tex").write_text(r"\documentclass{article}\usepackage{booktabs,graphicx}\begin{document}"
                                      r"\input{generated/macros}\seedSentence" + "\n"
                                      r"\input{generated/table_seeds}\end{document}")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
