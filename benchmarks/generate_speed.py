"""Wall time of `dnb generate` on a 100-bar drum file, per non-autoregressive model.

Each run is a fresh process (what a user waits for), printed beside the time of
``python -c "import torch"`` measured in the same run as the reference. Goal: <= 5 s.
Uses ``checkpoints/<model>.pt`` when present, else an untrained checkpoint of the same
architecture built from params.yaml (speed does not depend on the weights).

    python benchmarks/generate_speed.py [--bars 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pretty_midi

from dnb.params import load_params

MODELS = ["ffnn", "cnn", "lstm_fcnn", "cvae", "pix2pix"]
ROOT = Path(__file__).resolve().parents[1]


def drum_file(path: Path, bars: int, bpm: float = 120.0, seed: int = 0) -> None:
    """A seeded rock-ish pattern with random ghost notes, ``bars`` bars of 4/4."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    sixteenth = 60.0 / bpm / 4
    for bar in range(bars):
        for step in range(16):
            t = (bar * 16 + step) * sixteenth
            hits = [42] if step % 2 == 0 else []
            hits += [36] if step in (0, 8) or rng.random() < 0.08 else []
            hits += [38] if step in (4, 12) else []
            for key in hits:
                kit.notes.append(pretty_midi.Note(100, key, t, t + sixteenth))
    pm.instruments.append(kit)
    pm.write(str(path))


def untrained_checkpoint(name: str, folder: Path) -> None:
    from dnb.schema import DataInfo
    from models import build
    from models.checkpoint import save_checkpoint

    train = load_params(ROOT / "params.yaml")["train"]
    params = {**train["common"], **train.get(name, {})}
    info = DataInfo(n_styles=1, style_names=["other"])
    save_checkpoint(folder / f"{name}.pt", build(name, params, info), name, params, info)


def timed(cmd: list[str], cwd: Path) -> float:
    # this work tree's code first: an editable install may point at another checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-1000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        drums = tmp / "drums.mid"
        drum_file(drums, args.bars)
        ckpt = tmp / "checkpoints"
        for name in MODELS:
            real = ROOT / "checkpoints" / f"{name}.pt"
            if real.exists():
                ckpt.mkdir(exist_ok=True)
                (ckpt / f"{name}.pt").symlink_to(real)
            else:
                print(f"{name}: no trained checkpoint, timing an untrained one")
                untrained_checkpoint(name, ckpt)
        reference = statistics.median(timed([sys.executable, "-c", "import torch"], tmp) for _ in range(args.repeat))
        print(f"reference  python -c 'import torch': {reference:.2f} s")
        print(f"{'model':<10} {'median s':>9} {'x import torch':>15}   ({args.bars} bars, {args.repeat} runs)")
        classifier = ROOT / "data" / "style_classifier.npz"
        for name in MODELS:
            cmd = [sys.executable, "-m", "producer.cli", "generate", str(drums), "--model", name,
                   "--checkpoint-dir", str(ckpt), "--classifier", str(classifier), "--out", str(tmp / f"{name}.mid")]
            wall = statistics.median(timed(cmd, tmp) for _ in range(args.repeat))
            flag = "ok" if wall <= 5.0 else "over the 5 s goal"
            print(f"{name:<10} {wall:>9.2f} {wall / reference:>15.2f}   {flag}")


if __name__ == "__main__":
    main()
