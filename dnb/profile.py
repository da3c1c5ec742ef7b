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
        # Training: epochs of 20k freshly drawn pairs out of ~327k, validation on 5k seeded
        # pairs; epoch counts sized from measured epoch times on one core (ffnn ~12 s, cnn
        # ~20 s, lstm_fcnn ~30 s, lstm ~90 s, pix2pix ~110 s, cvae/transformer ~130 s) so
        # that every run stops by epochs well inside the 20-minute guard (results do not
        # depend on machine speed) and the whole profile fits about 90 minutes.
        "train.common.threads": 2,  # alone on 2 cores: 1.53x one thread (transformer, benchmarks/train_speed.py)
        "train.common.max_minutes": 20.0,
        "train.common.max_train_pairs": 0,
        "train.common.epoch_pairs": 20_000,
        "train.common.max_val_pairs": 5_000,
        "train.lstm.max_epochs": 4,
        "train.lstm_fcnn.max_epochs": 12,
        "train.cvae.max_epochs": 4,
        "train.pix2pix.max_epochs": 4,
        "train.transformer.max_epochs": 6,
        "train.ablation_params.max_epochs": 2,  # four conditioning runs of the transformer
        # Two extra training seeds (train.seeds.extra) of the headline runs: the transformer, the CVAE
        # and the context model: 2 x (13 + 9 + 5) minutes more training at the one-core epoch times above,
        # and six more model evaluations (two per run).
        "train.seeds.models": ["transformer", "cvae"],
        "train.seeds.ablations": ["previous"],
        # Evaluation: every test song, at most 8 seeded pairs of each (sampling all 73k
        # pairs from each autoregressive model would take longer than training it).
        "evaluate.max_pairs_per_song": 8,
        "evaluate.threads": 1,
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
