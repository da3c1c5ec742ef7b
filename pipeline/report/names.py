"""How the paper names systems, corpora and ablation runs (display text only)."""

from __future__ import annotations

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
    "chord_knn": "chord kNN",
    "root_on_kick": "root on kick",
    "chord_root_on_kick": "chord root on kick",
    "bigram": "bigram",
    "repeat_previous": "repeat previous",
    "repeat_matching": "repeat matching",
    "context_knn": "context kNN",
    "real": "real bass",
}
ABLATION_ROWS = {"none": "none", "tempo_program": "tempo + program", "key": "+ key", "style": "+ style",
                 "chords": "+ chords", "chords_no_key": "+ chords $-$ key",
                 "chords_long": "+ chords, trained longer", "previous": "+ previous window",
                 "recall": "+ recalled window", "recall_long": "+ recalled window, trained longer"}
ABLATION_PROSE = {"none": "no conditioning", "tempo_program": "tempo and program only",
                  "key": "tempo, program and key", "style": "tempo, program, key and drum style",
                  "chords": "all five labels", "chords_no_key": "chords but no key",
                  "chords_long": "all five labels, trained longer",
                  "previous": "all five labels and the previous window",
                  "recall": "all five labels, the previous and the recalled window",
                  "recall_long": "all five labels, the previous and the recalled window, trained longer"}
CORPUS_TEXT = {  # corpus name in extract.corpora -> how the paper names it
    "freedoom": r"the music of the Freedoom project~\citep{freedoom}",
    "ultimate": r"the Ultimate MIDI collection of popular songs in six genre folders~\citep{ultimatemidi}",
}


def display(name: str) -> str:
    """The paper's name of a system, as LaTeX (its registry name when it has none); an ablation run
    ``ablation_<tag>`` is named by its labels."""
    run, _, seed = name.rpartition("_seed")
    if run and seed.isdigit():  # an extra training seed of a run (train.seeds)
        return f"{display(run)}, seed {seed}"
    if name.startswith("ablation_") and name[len("ablation_"):] in ABLATION_ROWS:
        return f"ablation {ABLATION_ROWS[name[len('ablation_'):]]}"
    return DISPLAY.get(name, name.replace("_", r"\_"))  # a name without one is typeset as is
