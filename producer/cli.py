"""The ``dnb`` command line: ``dnb generate`` (``producer.generate``) and ``dnb serve`` (``producer.serve``).

Errors are one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from dnb.schema import DEFAULT_PROGRAM
from producer import serve
from producer.dynamics import VELOCITY_MODES
from producer.generate import CliError, generate


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dnb", description="drum_and_bass: bass lines for drum parts")
    sub = top.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a bass line for a drum MIDI file")
    gen.add_argument("drums", help="drum MIDI file (or a full song: its drum tracks are used)")
    gen.add_argument("--model", required=True,
                     help="trained model (<checkpoint dir>/<model>.pt) or baseline (fitted on <tensors>/train.npz)")
    gen.add_argument("--samples", type=int, default=1,
                     help="K whole-song bass lines (each its own chain of windows) -> K files OUT-1.mid .. OUT-K.mid")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (<= 0: greedy)")
    gen.add_argument("--pitch-temperature", type=float, metavar="P",
                     help="a separate temperature for WHICH pitch a note takes (--temperature then decides only "
                          "whether a note starts): e.g. --temperature 1 --pitch-temperature 0.4 keeps a riff's "
                          "notes while its rhythm still varies (the paper's split temperature)")
    gen.add_argument("--top-p", type=float, default=1.0, metavar="P",
                     help="top-p (nucleus) sampling: each step draws only from the likeliest tokens whose "
                          "probabilities sum to P (1: no cut); e.g. --top-p 0.93 keeps a repeated riff exact "
                          "(the paper's whole-song decoding)")
    gen.add_argument("--mbr", type=int, default=0, metavar="N",
                     help="draw N candidates per window and keep the most typical one (highest mean BLEU-4 "
                          "against the others, as the paper's BLEU-4 MBR); with context window by window, the "
                          "candidates conditioned on the line chosen for the window before; one output file")
    gen.add_argument("--context", action=argparse.BooleanOptionalAction, default=True,
                     help="each window conditioned on the line just written for the window before (models "
                          "trained with the previous window; others ignore it); --no-context: every window "
                          "independently")
    gen.add_argument("--key", help="e.g. Am, C, F#m; default: estimated from pitched notes, else C major")
    gen.add_argument("--chords", help='chord progression looped over the file, e.g. "Am F C G" (one chord per bar; '
                                      'N for none); default: annotated from the file\'s pitched tracks, if any')
    gen.add_argument("--chords-per-bar", type=int, default=1, choices=(1, 2), help="2: the chords are half bars")
    gen.add_argument("--style", help="drum style name; default: predicted per window by the style classifier")
    gen.add_argument("--program", type=int, default=DEFAULT_PROGRAM, help="GM bass program (default 33)")
    gen.add_argument("--velocity", choices=VELOCITY_MODES, default="rule",
                     help="rule: accents on kicks and downbeats, soft ghost notes (producer/dynamics.py); "
                          "fixed: every note at 100")
    gen.add_argument("--humanize", type=float, default=0.0, metavar="MS",
                     help="seeded timing jitter of the bass, uniform in +-MS milliseconds (0 = off)")
    gen.add_argument("--out", help="output MIDI (default <input stem>.<model>.mid)")
    gen.add_argument("--wav", help="also render WAV with fluidsynth")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    where = "default: $%s, else the installed repository's %s, else ./%s"
    gen.add_argument("--checkpoint-dir", help=where % ("DNB_CHECKPOINTS", "checkpoints/", "checkpoints"))
    gen.add_argument("--classifier", help=where % ("DNB_CLASSIFIER", "data/style_classifier.npz",
                                                   "data/style_classifier.npz"))
    gen.add_argument("--tensors", help="baselines are fitted on its train split; " + where % (
        "DNB_TENSORS", "data/tensors", "data/tensors"))
    serve.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "serve":
            serve.main(args)
        else:
            generate(args)
    except CliError as err:
        print(f"dnb: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
