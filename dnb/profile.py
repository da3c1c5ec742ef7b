"""Run profiles: the ``dvc exp run -S`` overrides that switch the pipeline to a setting.

``python -m dnb.profile large --corpus PATH | xargs dvc exp run`` adds the large
corpus next to Freedoom and gives training the larger budget. The overrides of each
profile live only in ``PROFILES``. Overrides use Hydra's ``++key=value`` (DVC's
``-S`` grammar): plain ``key=value`` cannot add the new ``extract.corpora`` entry
and ``+key`` fails when it already exists. Each printed line is escaped for xargs,
which would otherwise eat quotes and split on blanks.
"""

from __future__ import annotations

import argparse
import os
import sys

# profile -> {dotted params.yaml key: value}
PROFILES: dict[str, dict[str, object]] = {
    "large": {
        # Training: epochs of 20k freshly drawn pairs out of ~327k (100k for the three fast
        # architectures), validation on 5k seeded pairs, and EARLY STOPPING: a run stops at the
        # first epoch that lowers its best validation loss by less than 1% (min_improvement,
        # patience 1); max_epochs is only a cap it does not reach. History: the runs of 2026-12-02
        # to 12-04 used 2%, which fitted the first measured epoch times (41-46 s per 20k-pair epoch
        # of the transformer, one process x 2 threads) into the 120-minute run, but stopped every
        # curve while it still fell 1-2% per epoch (results/large at 3ed545b: 76 min 48 s, of which
        # 40 min 35 s training). With the per-model setups of params.yaml (data-parallel ranks,
        # fused Adam, fast dropout masks, bf16 autocast where validation NLL is not worse) the
        # same epochs are faster, and a power-law fit to those 23 validation curves projected the
        # 1% rule at about 66 min of fp32 training (2 to 8 more epochs a run): 1% is what the
        # 120-minute budget affords. results/large/README.md gives the measured run.
        "train.common.max_minutes": 20.0,  # wall-clock guard only
        "train.common.max_train_pairs": 0,
        "train.common.epoch_pairs": 20_000,
        "train.common.max_val_pairs": 5_000,
        "train.common.max_epochs": 30,
        "train.common.patience": 1,
        "train.common.min_improvement": 0.01,
        "train.ffnn.epoch_pairs": 100_000,
        "train.cnn.epoch_pairs": 100_000,
        "train.lstm_fcnn.epoch_pairs": 100_000,
        "train.cvae.max_epochs": 30,  # the model sections' own caps of the embedded run
        "train.pix2pix.max_epochs": 30,
        "train.transformer.max_epochs": 30,  # and of the ablation runs, which take the transformer's params
        # Two extra training seeds (train.seeds.extra) of the headline runs: the transformer, the CVAE,
        # the context model with the recalled window and the ladder's chord run (whose margins over
        # chord_root_on_kick are smaller than the other runs' seed spread), all at the ladder's budget:
        # eight more runs, about 30 minutes, and eight more model evaluations. The runs trained longer
        # (chords_long, recall_long: 15-21 min each) have one seed; their seeds would cost over an hour.
        "train.seeds.models": ["transformer", "cvae"],
        "train.seeds.ablations": ["recall", "chords"],
        # Evaluation: every test song, at most 4 seeded pairs of each (sampling all 73k pairs from
        # each autoregressive model would take longer than training it); MBR and diversity on 1,000
        # of them; the tuned temperature chosen on 1,000 validation pairs; whole songs: 300 seeded
        # validation and 300 test songs.
        "evaluate.max_pairs_per_song": 4,
        "evaluate.diversity_max_pairs": 1_000,
        "evaluate.tuned_val_pairs": 1_000,
        "evaluate.threads": 2,
        "songs.max_songs": 300,
    },
}
CORPUS_KEY = "extract.corpora"


def hydra_value(value: object) -> str:
    """A value in Hydra's override grammar; strings are always quoted, so paths with
    blanks, commas (a sweep otherwise), ``=`` or quotes stay one string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if "\n" in text:
        raise ValueError(f"newline in parameter value {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def xargs_escape(arg: str) -> str:
    """Backslash every character xargs could treat as special (blanks, quotes, backslash)."""
    return "".join(c if c.isalnum() or c in "+-_.=/,:@%[]" else "\\" + c for c in arg)


def overrides(profile: str, corpus: str | None = None, corpus_name: str = "ultimate") -> list[str]:
    """The Hydra overrides of ``profile``; ``corpus`` (made absolute, so queued or
    ``--temp`` experiments find it too) is added to ``extract.corpora`` as ``corpus_name``."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
    items = dict(PROFILES[profile])
    if corpus is not None:
        items[f"{CORPUS_KEY}.{corpus_name}"] = os.path.abspath(corpus)
    return [f"++{key}={hydra_value(value)}" for key, value in items.items()]


def dvc_args(profile: str, corpus: str | None = None, corpus_name: str = "ultimate") -> list[str]:
    """Lines for ``xargs dvc exp run``: ``-S <escaped override>`` each."""
    return [f"-S {xargs_escape(o)}" for o in overrides(profile, corpus, corpus_name)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print `dvc exp run -S` arguments for a run profile")
    parser.add_argument("profile", choices=sorted(PROFILES))
    parser.add_argument("--corpus", help="folder or .tar.gz/.zip of MIDI files to add to extract.corpora")
    parser.add_argument("--name", default="ultimate", help="corpus name in extract.corpora (default: ultimate)")
    args = parser.parse_args(argv)
    if args.profile == "large" and not args.corpus:
        parser.error("the large profile needs --corpus PATH")
    if args.corpus and not os.path.exists(args.corpus):
        parser.error(f"corpus not found: {args.corpus}")
    sys.stdout.write("".join(line + "\n" for line in dvc_args(args.profile, args.corpus, args.name)))


if __name__ == "__main__":
    main()
