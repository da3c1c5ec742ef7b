"""`dnb generate`: write a bass line for any drum MIDI file with a trained model.

    dnb generate DRUMS.mid --model transformer [--samples K | --mbr N] [--no-context]
                 [--temperature T [--pitch-temperature P]] [--top-p P] [--key Am] [--chords "Am F C G"] [--style funk]
                 [--program 33] [--velocity rule|fixed]
                 [--humanize MS] [--out OUT.mid] [--wav OUT.wav] [--seed S]

Every complete 2-bar 4/4 window of the input gets a bass line (windows in other
metres are left without bass). Conditioning per window: tempo from the file's
tempo map; GM program ``--program`` (default 33, finger bass); key from ``--key``,
else estimated (Krumhansl-style, ``dnb.keys``) from the file's pitched notes when it
has any, else C major; drum style from ``--style``, else the drum-style classifier's
prediction for each window (as in training, where every pair carries the predicted
style of its own drum grid).

Context (the default; ``--no-context`` turns it off): a model trained with the previous
window (``takes_previous``) writes the song as a song is written, each window conditioned
on the line it has just written for the window before (``models.base.sample_song``, with
``dnb.schema.previous_rows`` of the windows' start ticks): the first window of the file,
and the first after a stretch in another metre, has no previous window (``has_prev`` 0).
Windows of equal depth in their chains are sampled together, one step per chain level; a
file of more than ``PROGRESS_WINDOWS`` windows draws tqdm progress on stderr. A model
without it, or ``--no-context``, samples every window independently in one batch (the
summary line says ``context: off (model has none)`` or ``context: off``). With ``--samples K``
> 1, K files are written: ``OUT-1.mid`` .. ``OUT-K.mid`` (and ``OUT-i.wav``), K whole-song
variations, each its own chain, so that every file is a playable arrangement. ``--mbr N``
writes one line: per window, of N candidates the one with the highest mean BLEU-4 against
the others (``dnb.metrics.mbr_select``); with context this goes window by window (chain
level by chain level), the N candidates of a window all conditioned on the line chosen for
the window before (``Draws``). One seed (``--seed``) drives every draw: the same seed, file and
settings give the same output.

Bass velocities follow the drums and the bar (``producer.dynamics``: accents on kicks and
downbeats, soft ghost notes) unless ``--velocity fixed``; ``--humanize MS`` adds seeded
timing jitter. The output keeps the ORIGINAL drum track(s) note for note (copied from the input,
with its tempo map and time signatures) and adds one bass track. Errors are one line on
stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dnb import representation as rep
from dnb.audio import AudioError, render_wav
from dnb.params import PARAMS, load_params
from dnb.schema import DEFAULT_PROGRAM, conditioning_batch, previous_rows
from producer import paths

if TYPE_CHECKING:  # models load lazily: `dnb generate --help` stays fast
    from models.base import Temperature

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def parse_key(text: str) -> int:
    """'Am', 'A minor', 'F#', 'Bbm', 'Eb major' -> key index (tonic + 12 * minor)."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*(m|min|minor|maj|major)?\s*", text)
    if m is None:
        raise CliError(f"cannot parse key {text!r}; use e.g. C, Am, F#m, Bb major")
    tonic = (NOTE_NAMES[m.group(1).upper()] + {"": 0, "#": 1, "b": -1}[m.group(2)]) % 12
    return tonic + 12 * (m.group(3) in ("m", "min", "minor"))


def estimate_file_key(score) -> tuple[int, str]:
    """Key of the file's pitched notes, or C major when it has none."""
    from dnb import keys

    hist = keys.pitch_class_histogram(score)
    if hist.sum() <= 0:
        return 0, "C major (no pitched notes in the file)"
    key = int(keys.estimate_key(hist)[0])
    return key, f"{rep.KEY_NAMES[key]} (estimated from the file's pitched notes)"


def style_indices(drums: np.ndarray, style: str | None, style_names: list[str], classifier: Path) -> np.ndarray:
    """Drum-style index per window: ``--style`` for all, else the classifier's prediction."""
    lower = [g.lower() for g in style_names]
    if style is not None:
        if style.lower() not in lower:
            raise CliError(f"unknown drum style {style!r}; known: {', '.join(style_names) or 'none'}")
        return np.full(len(drums), lower.index(style.lower()), dtype=np.int64)
    if not classifier.exists():
        print(f"dnb: note: {classifier} not found, style index 0 used (pass --style)", file=sys.stderr)
        return np.zeros(len(drums), dtype=np.int64)
    from dnb import style as style_module

    try:
        styles = style_module.predict_style(style_module.load_classifier(classifier), drums)
    except Exception as err:  # stale feature version, truncated or foreign file
        raise CliError(f"style classifier {classifier} unusable ({str(err)[:120]}); pass --style") from None
    return np.array([lower.index(s.lower()) if s.lower() in lower else 0 for s in styles], dtype=np.int64)


def load_baseline(name: str, tensor_dir: Path, where: str = "--tensors"):
    """(baseline fitted on the training split, style names): baselines need ``train.npz``."""
    train = tensor_dir / "train.npz"
    if not train.exists():
        raise CliError(f"baseline {name!r} is fitted on the training split, but {train} is missing (tensors from "
                       f"{where}); {paths.how_to_get('data/tensors')}, or point --tensors or $DNB_TENSORS at it")
    import models
    from dnb import data

    params = {}  # outside the repository: the baselines' own DEFAULTS, held equal to params.yaml by a test
    if PARAMS.exists():  # the evaluation's baseline settings (knn_k, bigram_add_k, seed)
        params = load_params(PARAMS).get("evaluate", {}) or {}
    info = data.data_info(tensor_dir)
    baseline = models.build(name, params, info)
    return baseline.fit(data.load_split(tensor_dir, "train")), list(info.style_names)


def load_model(name: str, checkpoint_dir: Path, tensor_dir: Path = Path("data/tensors"), where: dict | None = None,
               device="cpu"):
    """(model on ``device``, style names) of a trained model, or (baseline, style names); clear errors for unknown
    names and missing files. ``where`` says where each folder came from (``producer.paths.resolve``)."""
    import models

    where = where or {}
    if models.is_baseline(name):
        return load_baseline(name, tensor_dir, where.get("tensors", "--tensors"))
    run = name.startswith("ablation/")  # an ablation run, e.g. ablation/chords: the chord-conditioned transformer
    if name not in models.architectures() and not run:
        known = ", ".join(models.architectures() + list(models.baseline_classes()) + ["ablation/<tag>"])
        raise CliError(f"unknown model {name!r}; known: {known}")
    path = checkpoint_dir / f"{name}.pt"
    if not path.exists():
        raise CliError(f"missing checkpoint {path} (checkpoints from {where.get('checkpoints', '--checkpoint-dir')}); "
                       f"{paths.how_to_get(f'checkpoints/{name}.pt')}, or point --checkpoint-dir or "
                       "$DNB_CHECKPOINTS at a folder of checkpoints")
    import torch

    from models.checkpoint import load_trained, read_checkpoint

    # one thread: the batch (one row per 2-bar window) is small, and a second thread on a busy
    # 2-core machine made sampling 2-14x slower (cvae on 100 bars: 3.5 s with 2 threads, 0.26 s with 1)
    torch.set_num_threads(1)
    try:
        model = load_trained(path)
        names = list(read_checkpoint(path).get("info", {}).get("style_names", []) or [])
    except Exception as err:  # a truncated or foreign file
        raise CliError(f"cannot load checkpoint {path}: {str(err)[:120]}") from None
    return model.to(device), names


MAX_WINDOWS = 5000  # 10,000 bars (5.5 hours at 120 bpm): guards memory against a corrupt end time
READ_NOTES = {"sanitized": "out-of-range data bytes clamped", "repaired": "a truncated or damaged file: "
              "only its readable part is used"}


def read_input(path: Path):
    """(symusic score, windows) or a CliError. The score, in the file's own ticks, is
    also what the output is built from (no pretty_midi parse: 0.14 s on 100 bars)."""
    if not path.exists():
        raise CliError(f"no such file: {path}")
    score, note = read_score(path.read_bytes(), str(path))
    if note:
        print(f"dnb: note: {path}: {note}", file=sys.stderr)
    return score, score_windows(score, str(path))


def read_score(data: bytes, name: str):
    """(symusic score, a note when the file needed more than a plain parse, else None) from
    MIDI bytes, read by ``dnb.midi.read_midi`` (RMID, sanitizer, truncation repair)."""
    from dnb.midi import Unreadable, read_midi

    try:
        score, how = read_midi(data)
    except Unreadable as err:
        raise CliError(f"cannot read {name} as MIDI: {err}") from None
    if int(score.tpq) <= 0:
        raise CliError(f"cannot read {name} as MIDI: zero ticks per quarter")
    return score, READ_NOTES.get(how)


def score_windows(score, name: str):
    """The 2-bar 4/4 windows of a score that has drums, or a CliError that says what is missing."""
    if not rep.pick_tracks(score)[0]:
        raise CliError(f"no drums in {name}: no note on MIDI channel 10")
    if int(score.end()) // (rep.QUARTERS_PER_WINDOW * int(score.tpq)) > MAX_WINDOWS:
        raise CliError(f"{name} is too long: more than {2 * MAX_WINDOWS} bars")
    try:
        return rep.score_windows(score, with_bass=False)
    except rep.NotFourFour:
        raise CliError(f"no complete 2-bar 4/4 window in {name}") from None


def window_chords(score, windows, text: str | None, per_bar: int) -> tuple[np.ndarray, str]:
    """(chord label per half bar ``[W, 4]``, where they come from): ``--chords`` looped over
    the file (counted from its first 4/4 window); else the file's own pitched non-bass
    tracks, annotated as in training; all N when it has none."""
    from dnb import chords as ch

    if text:
        try:
            progression = ch.parse_progression(text, per_bar)
        except ValueError as err:
            raise CliError(f"--chords: {err}") from None
        if len(progression) == 0:
            raise CliError("--chords: no chord given")
        half_bar = (windows.index[:, None] - windows.index[0]) * ch.HALF_BARS + np.arange(ch.HALF_BARS)
        names = " ".join(ch.chord_name(int(c)) for c in progression[::2 // per_bar])
        return progression[half_bar % len(progression)].astype(np.int64), f"{names} (--chords)"
    labels = ch.window_chords(score, windows.start_ticks).astype(np.int64)
    if (labels == ch.N).all():
        return labels, "none (no pitched tracks to annotate: pass --chords)"
    return labels, "annotated from the file's pitched tracks"


def chord_markers(score, windows, chords: np.ndarray) -> list:
    """Marker events naming each chord where it changes, so that a DAW shows the progression."""
    import symusic

    from dnb import chords as ch

    half = int(score.tpq) * ch.HALF_BAR_QUARTERS
    markers, last = [], None
    for start, row in zip(windows.start_ticks, chords):
        for h, label in enumerate(row):
            if int(label) != last:
                markers.append(symusic.TextMeta(int(start) + h * half, ch.chord_name(int(label))))
                last = int(label)
    return markers


PROGRESS_WINDOWS = 16  # `dnb generate` draws a progress bar (stderr) for files of more windows than this


class Draws:
    """The model as ``models.base.sample_song`` sees it: every call of ``sample`` is one step of
    the song (a chain level, or all windows at once without context). With ``mbr`` = N, a call
    asked for one line per row draws N candidates per row, all conditioned on the same previous
    line, and returns the MBR one (``dnb.metrics.mbr_select``), so that the chosen line is what
    the next window is conditioned on. ``step(done, total)`` hears how many of the ``total``
    windows are done."""

    def __init__(self, model, chains: int, total: int, mbr: int = 0, step=None):
        self.model, self.chains, self.total, self.mbr, self.step = model, chains, total, mbr, step
        self.takes_previous = bool(getattr(model, "takes_previous", False))
        self.done = 0

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None):
        import torch

        rows = int(batch["drums"].shape[0])
        if self.mbr:
            from dnb.metrics import mbr_select

            if k != 1:
                raise ValueError("MBR writes one line per window: k must be 1")
            draws = self.model.sample(batch, k=self.mbr, temperature=temperature, generator=generator)
            out = torch.as_tensor(mbr_select(draws.cpu().numpy()), device=draws.device)[:, None]
        else:
            out = self.model.sample(batch, k=k, temperature=temperature, generator=generator)
        self.done += rows * k // self.chains  # one window of each chain per row and line
        if self.step is not None:
            self.step(self.done, self.total)
        return out


def sample_windows(model, windows, key: int, styles: np.ndarray, program: int, k: int, temperature: Temperature,
                   seed: int, chords: np.ndarray | None = None, previous: np.ndarray | None = None, mbr: int = 0,
                   step=None):
    """Tokens ``[W, K, 64]`` for every window of ``windows``, seeded, on the model's device.

    ``previous`` (``dnb.schema.previous_rows``) None: every window independently, in one batch.
    Else free running (``models.base.sample_song``): each window conditioned on the line just
    written for its previous window, K independent chains (whole-song variations), one step per
    chain level; a model that does not take the previous window samples every window
    independently all the same. ``mbr`` = N (K = 1): per window, the MBR line of N candidates
    (``Draws``); with ``previous``, window by window, each conditioned on the line chosen for the
    window before. ``step(done, total)``: progress, in windows."""
    import torch

    from dnb.device import device_of, to_device
    from models.base import sample_song

    if mbr and k != 1:
        raise ValueError("MBR writes one line per window: k must be 1")
    batch = conditioning_batch(windows.drums, windows.bpm, program, key, styles, chords)
    if hasattr(model, "eval"):
        model.eval()
    device = device_of(model)
    draws = Draws(model, k, len(windows.drums), mbr, step)
    context = previous is not None
    if previous is None:
        previous = np.full(len(windows.drums), -1, dtype=np.int64)
    with torch.no_grad():
        generator = torch.Generator(device=device).manual_seed(seed)
        out = sample_song(draws, to_device(batch, device), previous, k=1 if mbr else k, temperature=temperature,
                          generator=generator, context=context)
    return out.cpu().numpy().astype(np.int64)


def with_bass(score, windows, tokens: np.ndarray, program: int, markers: list | None = None, velocity: str = "rule",
              humanize_ms: float = 0.0, seed: int = 0):
    """A copy of ``score`` with only its drum tracks (the input's own notes, tempo map and
    time signatures, in its own ticks) plus one bass track from ``tokens [W, 64]``, its
    velocities and timing from ``producer.dynamics`` (``velocity`` "rule" or "fixed",
    ``humanize_ms`` of seeded jitter).
    symusic, not pretty_midi: writing 100 bars took 0.28 s with pretty_midi, 2 ms here."""
    import symusic

    from producer import dynamics

    out = score.copy()  # deep
    bass = symusic.Track(name="bass (dnb generate)", program=program, is_drum=False)
    ticks_per_step = int(score.tpq) / rep.BASS_STEPS_PER_QUARTER
    onsets, ends, pitches, levels, ticks_per_ms = [], [], [], [], []
    for start_tick, seq, grid, bpm in zip(windows.start_ticks, tokens, windows.drums, windows.bpm):
        notes = rep.token_notes(seq)
        levels += dynamics.velocities(seq, grid, velocity)
        for start, end, pitch in notes:
            onsets.append(int(round(start_tick + start * ticks_per_step)))
            ends.append(int(round(start_tick + end * ticks_per_step)))
            pitches.append(pitch)
            ticks_per_ms.append(int(score.tpq) * float(bpm) / 60000.0)
    onsets, ends = dynamics.humanize(np.array(onsets), np.array(ends), np.array(ticks_per_ms), humanize_ms,
                                     np.random.default_rng(seed))
    for on, off, pitch, level in zip(onsets.tolist(), ends.tolist(), pitches, levels):
        bass.notes.append(symusic.Note(on, off - on, pitch, level))
    out.tracks = [t for t in out.tracks if t.is_drum] + [bass]
    if markers:
        out.markers = markers
    return out


def output_paths(out: Path, k: int) -> list[Path]:
    return [out] if k == 1 else [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(k)]


@dataclass
class Settings:
    """One generation's choices, from the command line (``settings_of``) or the web page (``producer.serve``)."""

    model: str
    samples: int = 1
    temperature: float = 1.0
    pitch_temperature: float | None = None  # None: one temperature (``models.base.tempered_logits``)
    top_p: float = 1.0  # < 1: nucleus sampling (``models.base.Nucleus``)
    mbr: int = 0
    key: str | None = None
    chords: str | None = None
    chords_per_bar: int = 1
    style: str | None = None
    program: int = DEFAULT_PROGRAM
    velocity: str = "rule"
    humanize: float = 0.0
    seed: int = 0
    device: str = "auto"  # neural models sample here (dnb.device.pick_device); baselines on the CPU
    context: bool = True  # each window conditioned on the line written for the one before (--no-context: off)


def decoding(settings: Settings) -> Temperature:
    """The temperature ``models.base.sample_song`` takes: one number, or (rhythm, pitch), either
    with a top-p cut below 1."""
    from models.base import with_top_p

    if settings.pitch_temperature is None:
        return with_top_p(settings.temperature, settings.top_p)
    return with_top_p((settings.temperature, settings.pitch_temperature), settings.top_p)


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)})


def check(settings: Settings) -> int | None:
    """Validate the settings that need no file (a CliError), and return the ``--key`` index or None."""
    if settings.samples < 1:
        raise CliError("--samples must be >= 1")
    if settings.mbr and (settings.mbr < 2 or settings.samples != 1):
        raise CliError("--mbr N needs N >= 2 and writes one bass line: leave --samples at 1")
    if not 0 <= settings.program <= 127:
        raise CliError("--program must be a GM program 0..127")
    if not 0 <= settings.humanize <= 100:
        raise CliError("--humanize must be 0..100 ms")
    if settings.pitch_temperature is not None and not (settings.pitch_temperature > 0 and settings.temperature > 0):
        raise CliError("--pitch-temperature needs a value > 0 and --temperature > 0 (a split temperature samples)")
    if not (0 < settings.top_p <= 1 and (settings.top_p == 1 or settings.temperature > 0)):
        raise CliError("--top-p needs 0 < P <= 1, and --temperature > 0 below 1 (top-p samples)")
    return parse_key(settings.key) if settings.key else None


@dataclass
class Arrangement:
    """The bass lines of one file: ``tokens [W, K, 64]`` for its windows, and what conditioned them."""

    score: object
    windows: rep.Windows
    tokens: np.ndarray
    settings: Settings
    key: int
    key_note: str
    chord_note: str
    markers: list | None
    context_note: str = "off"

    def midi(self, i: int):
        """Variation ``i`` as a symusic score: the input's drums plus the bass line."""
        s = self.settings
        return with_bass(self.score, self.windows, self.tokens[:, i], s.program, self.markers, s.velocity, s.humanize,
                         s.seed * 1000 + i)

    def summary(self) -> str:
        return (f"{len(self.windows.drums)} windows, key {self.key_note}, chords {self.chord_note}, "
                f"model {self.settings.model}, context: {self.context_note}")


def context_of(score, windows, model, settings: Settings) -> tuple[np.ndarray | None, str]:
    """(``previous_rows`` of the windows, or None for independent windows; what the summary says)."""
    if not settings.context:
        return None, "off"
    if not getattr(model, "takes_previous", False):
        return None, "off (model has none)"
    return previous_rows(windows.start_ticks, rep.QUARTERS_PER_WINDOW * int(score.tpq)), "on"


def arrange(score, windows, model, style_names: list[str], settings: Settings, classifier: Path,
            key: int | None = None, step=None) -> Arrangement:
    """Condition (key, chords, drum style, the previous window) and sample every window of a
    file: the work of `dnb generate` between reading the input and writing files, shared with
    `dnb serve`. ``step(done, total)``: progress in windows (``sample_windows``)."""
    if settings.chords_per_bar not in (1, 2):
        raise CliError("--chords-per-bar must be 1 or 2")
    chords, chord_note = window_chords(score, windows, settings.chords, settings.chords_per_bar)
    key_note = f"{rep.KEY_NAMES[key]} (--key)" if key is not None else None
    if key is None and settings.chords:
        from dnb.chords import key_from_chords

        key = key_from_chords(chords.reshape(-1))
        key_note = f"{rep.KEY_NAMES[key]} (implied by --chords)"
    if key is None:
        key, key_note = estimate_file_key(score)
    styles = style_indices(windows.drums, settings.style, style_names, classifier)
    previous, context_note = context_of(score, windows, model, settings)
    # with --mbr, per window the candidate closest (BLEU-4) to all the others: the most typical line
    tokens = sample_windows(model, windows, key, styles, settings.program, settings.samples, decoding(settings),
                            settings.seed, chords, previous, settings.mbr, step)
    markers = chord_markers(score, windows, chords) if (chords != 0).any() else None
    return Arrangement(score, windows, tokens, settings, key, key_note, chord_note, markers, context_note)


def progress_bar(score, windows, model, settings: Settings):
    """tqdm over the windows on stderr, drawn when the file has more than ``PROGRESS_WINDOWS``
    windows and is written in more than one step (chain levels: context on a model that takes
    it); a disabled bar otherwise (one batched step is over before a bar would tell anything)."""
    from tqdm import tqdm

    from models.base import chain_depths

    previous, _ = context_of(score, windows, model, settings)
    steps = int(chain_depths(previous).max()) + 1 if previous is not None and len(previous) else 1
    return tqdm(total=len(windows.drums), desc="dnb: bass", unit="window", file=sys.stderr, mininterval=0.5,
                disable=len(windows.drums) <= PROGRESS_WINDOWS or steps <= 1)


def resolve_paths(args: argparse.Namespace) -> dict[str, tuple[Path, str]]:
    """{checkpoints, classifier, tensors: (path, where it came from)} (``producer.paths``)."""
    return {kind: paths.resolve(kind, getattr(args, attr, None)) for kind, attr in
            (("checkpoints", "checkpoint_dir"), ("classifier", "classifier"), ("tensors", "tensors"))}


def generate(args: argparse.Namespace) -> list[Path]:
    """The `generate` command; returns the files written."""
    settings = settings_of(args)
    key = check(settings)
    score, windows = read_input(Path(args.drums))
    found = resolve_paths(args)
    where = {kind: origin for kind, (_, origin) in found.items()}
    from dnb.device import pick_device  # imports torch: after the cheap checks

    try:
        device = pick_device(settings.device)
    except ValueError as err:
        raise CliError(str(err)) from None
    model, style_names = load_model(settings.model, found["checkpoints"][0], found["tensors"][0], where, device)
    with progress_bar(score, windows, model, settings) as bar:
        song = arrange(score, windows, model, style_names, settings, found["classifier"][0], key,
                       step=lambda done, total: bar.update(done - bar.n))
    out = Path(args.out) if args.out else Path(f"{Path(args.drums).stem}.{args.model.replace('/', '-')}.mid")
    written = []
    wavs = output_paths(Path(args.wav), settings.samples) if args.wav else [None] * settings.samples
    for i, (mid_path, wav_path) in enumerate(zip(output_paths(out, settings.samples), wavs)):
        mid_path.parent.mkdir(parents=True, exist_ok=True)
        song.midi(i).dump_midi(str(mid_path))
        written.append(mid_path)
        if wav_path is not None:
            wav_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                render_wav(mid_path, wav_path)
            except AudioError as err:
                raise CliError(str(err)) from None
            written.append(wav_path)
    print(f"{song.summary()}: wrote {', '.join(map(str, written))}")
    return written
