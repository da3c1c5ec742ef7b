"""Figures of the paper, drawn by the `tables` stage from files only (no model is loaded).

Training curves from dvclive, piano rolls of the same test drum loops with the real
bass and every model's seeded sample (``evaluation/piano_rolls.npz``, written by
`evaluate`), metric bars with their intervals, and the style / key histograms of the data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dnb import representation as rep  # noqa: E402
from pipeline.report.latex import entry  # noqa: E402
from pipeline.report.names import display  # noqa: E402

BAR_METRICS = [("bleu4", "BLEU-4"), ("onset_f1", "Onset F1"), ("perplexity", "Perplexity")]


PITCH_TICKS = {28: "E1", 40: "E2", 52: "E3"}  # the octaves of the folded bass range E1..D#4


def draw_bass(ax, tokens: np.ndarray | None, label: str, pitch_labels: bool = True) -> None:
    """Bass notes of one token sequence as bars on a 64-step x pitch axis (E1 / E2 / E3 ticks)."""
    ax.set_xlim(0, rep.BASS_STEPS)
    ax.set_ylim(rep.BASS_LOW - 1, rep.BASS_HIGH + 1)
    ax.set_yticks(list(PITCH_TICKS), list(PITCH_TICKS.values()) if pitch_labels else [])
    ax.tick_params(axis="y", labelsize=5, length=2, pad=1)
    for pitch in PITCH_TICKS:
        ax.axhline(pitch, color="0.92", lw=0.4, zorder=0)
    ax.set_xticks([0, 16, 32, 48, 64])
    ax.tick_params(labelbottom=False, length=2)
    for x in (16, 32, 48):
        ax.axvline(x, color="0.85", lw=0.5, zorder=0)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    if tokens is None:
        ax.text(32, (rep.BASS_LOW + rep.BASS_HIGH) / 2, "not trained", ha="center", va="center", fontsize=7)
        return
    for start, end, pitch in rep.token_notes(tokens):
        ax.broken_barh([(start, end - start)], (pitch - 0.5, 1.0), color="C0")


def draw_drums(ax, grid: np.ndarray, label: str = "drums") -> None:
    ax.imshow(np.asarray(grid).T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(0, rep.BASS_STEPS, -0.5, rep.DRUM_CLASSES - 0.5))
    ax.set_yticks([])
    ax.set_xticks([0, 16, 32, 48, 64])
    ax.tick_params(labelbottom=False, length=2)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)


def piano_rolls(batch: dict, samples: dict, path: Path, numbers: list[int] | None = None) -> None:
    """One column per loop: drum grid, real bass, then every model's bass. ``numbers``: the
    loops' numbers in the titles (default 1..n; the listening page draws one loop at a time)."""
    n = int(batch["drums"].shape[0])
    numbers = list(range(1, n + 1)) if numbers is None else list(numbers)
    rows = ["real"] + list(samples)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(7.0, 0.62 * (len(rows) + 1) + 0.4), squeeze=False)
    for j in range(n):
        draw_drums(axes[0, j], np.asarray(batch["drums"][j]), "drums" if j == 0 else "")
        axes[0, j].set_title(f"test loop {numbers[j]}", fontsize=8)
        for i, name in enumerate(rows):
            if name == "real":
                seq = np.asarray(batch["tokens"][j])
            else:
                seq = None if samples[name] is None else samples[name][j]
            draw_bass(axes[i + 1, j], seq, display(name) if j == 0 else "", pitch_labels=j == 0)
    fig.tight_layout(pad=0.3, h_pad=0.15, w_pad=0.3)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def training_curves(dvclive_dir: Path, models: list[str], path: Path) -> int:
    """Train/validation loss per epoch of every model from its dvclive tsv files; returns models drawn."""
    import pandas as pd

    cols = 4
    rows = max(1, (len(models) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.0, 1.7 * rows), squeeze=False)
    drawn = 0
    for ax, name in zip(axes.flat, models):
        folder = Path(dvclive_dir) / name / "plots" / "metrics"
        files = sorted(f for f in folder.rglob("*.tsv") if "loss" in f.stem or "nll" in f.stem)
        for f in files:
            frame = pd.read_csv(f, sep="\t")
            label = str(f.relative_to(folder).with_suffix(""))
            ax.plot(frame["step"], frame[frame.columns[-1]], label=label, lw=1)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        if files:
            drawn += 1
            ax.legend(fontsize=5, frameon=False)
        else:
            ax.text(0.5, 0.5, "not trained", ha="center", va="center", transform=ax.transAxes, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.supxlabel("epoch", fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return drawn


def metric_bars(results: dict, path: Path) -> None:
    """Horizontal bars with 95% intervals for a few headline metrics, models and baselines."""
    names = list(results["models"]) + list(results["baselines"])
    fig, axes = plt.subplots(1, len(BAR_METRICS), figsize=(7.0, 0.25 * max(len(names), 4) + 0.8), sharey=True)
    for ax, (metric, label) in zip(np.atleast_1d(axes), BAR_METRICS):
        for y, name in enumerate(names):
            group = "models" if name in results["models"] else "baselines"
            item = entry(results[group][name].get("metrics"), metric)
            if item is None:
                ax.text(0, y, " n/a", va="center", fontsize=6)
                continue
            err = None
            if isinstance(item.get("lo"), int | float) and isinstance(item.get("hi"), int | float):
                err = [[item["value"] - item["lo"]], [item["hi"] - item["value"]]]
            ax.barh(y, item["value"], xerr=err, color="C0" if group == "models" else "C7", capsize=2)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)
    ax0 = np.atleast_1d(axes)[0]
    ax0.set_yticks(range(len(names)), [display(n) for n in names])
    ax0.invert_yaxis()
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def histograms(annotate: dict, path: Path) -> None:
    """Predicted drum styles of the pairs and estimated keys of the songs."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.2), gridspec_kw={"width_ratios": [1, 2]})
    styles = annotate.get("style_histogram") or {}
    left.bar(range(len(styles)), list(styles.values()), color="C1")
    left.set_xticks(range(len(styles)), list(styles), rotation=60, ha="right", fontsize=6)
    left.set_title("predicted drum style (pairs)", fontsize=8)
    keys = annotate.get("key_histogram") or {}
    order = [k for k in rep.KEY_NAMES if k in keys] + [k for k in keys if k not in rep.KEY_NAMES]
    right.bar(range(len(order)), [keys[k] for k in order], color="C2")
    right.set_xticks(range(len(order)), [k.replace(" major", "").replace(" minor", "m") for k in order], fontsize=6,
                     rotation=90)
    right.set_title("estimated key (songs)", fontsize=8)
    for ax in (left, right):
        ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def read_piano_rolls(path: Path, models: list[str]) -> tuple[dict, dict]:
    """(loops {"drums", "tokens"}, {model: tokens [B, 64]}) from the file `evaluate` writes."""
    with np.load(path) as data:
        missing = [m for m in models if f"sample_{m}" not in data]
        if missing:
            raise SystemExit(f"tables: {path} has no sample of {', '.join(missing)}: run `dvc repro evaluate`")
        return {"drums": data["drums"], "tokens": data["tokens"]}, {m: data[f"sample_{m}"] for m in models}


def write_figures(results: dict, annotate: dict, models: list[str], dvclive_dir: Path, rolls: Path,
                  out_dir: Path) -> None:
    """All paper figures into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = training_curves(dvclive_dir, models, out_dir / "training_curves.png")
    metric_bars(results, out_dir / "metric_bars.png")
    histograms(annotate, out_dir / "histograms.png")
    loops, samples = read_piano_rolls(rolls, models)
    piano_rolls(loops, samples, out_dir / "piano_rolls.png")
    print(f"figures: training curves of {drawn} models, piano rolls, metric bars, histograms -> {out_dir}")


def song_roll(path: Path, context_model: str | None, out: Path, alone: str = "transformer") -> None:
    """One test song over 8 windows (16 bars): drums, the real bass, the best context model's
    free-running line and a model that writes every window alone, window after window."""
    with np.load(path) as data:
        rolls = {k: data[k] for k in data.files}
    if len(rolls["tokens"]) == 0:
        raise SystemExit(f"tables: {path} holds no test song: run `dvc repro songs`")
    rows = [("drums", rolls["drums"]), ("real bass", rolls["tokens"])]
    for name in (context_model, alone):
        if name and f"sample_{name}" in rolls:
            rows.append((display(name), rolls[f"sample_{name}"]))
    n = len(rolls["tokens"])
    fig, axes = plt.subplots(len(rows), 1, figsize=(7.0, 0.75 * len(rows) + 0.4), squeeze=False)
    for ax, (label, value) in zip(axes[:, 0], rows):
        if label == "drums":
            ax.imshow(np.concatenate(list(value)).T, aspect="auto", origin="lower", cmap="Greys",
                      interpolation="nearest", extent=(0, n * rep.BASS_STEPS, -0.5, rep.DRUM_CLASSES - 0.5))
            ax.set_yticks([])
        else:
            ax.set_ylim(rep.BASS_LOW - 1, rep.BASS_HIGH + 1)
            ax.set_yticks(list(PITCH_TICKS), list(PITCH_TICKS.values()))
            ax.tick_params(axis="y", labelsize=5, length=2, pad=1)
            for w, seq in enumerate(value):
                for start, end, pitch in rep.token_notes(seq):
                    ax.broken_barh([(w * rep.BASS_STEPS + start, end - start)], (pitch - 0.5, 1.0), color="C0")
        ax.set_xlim(0, n * rep.BASS_STEPS)
        ax.set_xticks(np.arange(0, n * rep.BASS_STEPS + 1, rep.BASS_STEPS // 2), [str(b + 1) for b in range(2 * n + 1)])
        ax.tick_params(axis="x", labelsize=5, length=2, labelbottom=ax is axes[-1, 0])
        for x in range(0, n * rep.BASS_STEPS + 1, rep.BASS_STEPS):
            ax.axvline(x, color="0.7", lw=0.6, zorder=0)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    axes[-1, 0].set_xlabel("bar", fontsize=7)
    fig.tight_layout(pad=0.3, h_pad=0.2)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
