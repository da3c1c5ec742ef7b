"""The producer's bench without HTTP: songs read from uploads or Groove loops, generation
jobs run one at a time by a worker thread, MIDI and audio kept in memory (``producer.serve``
is the web front).

A song is read with ``producer.generate.read_score`` / ``score_windows`` and a job runs
``producer.generate.arrange``, so the page and `dnb generate` share every rule (reading,
conditioning, sampling, dynamics). Refusals are ``BenchError`` with an HTTP status and one
sentence for the page.
"""

from __future__ import annotations

import hashlib
import queue
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnb import chords as ch
from dnb import representation as rep
from producer import generate as gen

MAX_BYTES = 2 * 1024 * 1024  # a drum file or a song is a few kB to a few hundred kB
MAX_BARS = 512  # 4/4 bars; audio of 512 bars at 120 bpm is 17 minutes
MAX_VARIATIONS = 8
LOOPS = 20  # Groove MIDI loops offered on the page
KEEP = 8  # songs and finished jobs kept in memory, oldest dropped first
SAMPLE_RATE = 22050


class BenchError(Exception):
    """A request the bench refuses: HTTP ``status`` and one sentence for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def sentence(text: str) -> str:
    """One line, capitalised, ending with a full stop."""
    text = " ".join(str(text).split())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class Bounded(OrderedDict):
    """A dict that keeps the ``KEEP`` most recently added items."""

    def add(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > KEEP:
            self.popitem(last=False)


@dataclass
class Song:
    id: str
    name: str
    score: object
    windows: rep.Windows
    note: str | None = None
    chords: tuple[str, int] = ("", 1)  # the annotated chords as text, chords per bar (``default_chords``)


@dataclass
class Job:
    id: str
    song: Song
    settings: gen.Settings
    state: str = "queued"  # queued, running, done, error
    status: str = "waiting for the generator"
    progress: float = 0.0
    error: str | None = None
    summary: str = ""
    audio_note: str | None = None
    variations: list[dict] = field(default_factory=list)

    def public(self) -> dict:
        out = {k: getattr(self, k) for k in ("id", "state", "status", "progress", "error", "summary", "audio_note")}
        out["context"] = self.settings.context
        out["variations"] = [{k: v for k, v in var.items() if k not in ("midi_bytes", "audio_bytes")}
                             for var in self.variations]
        return out


def groove_loops(folder: Path, n: int = LOOPS) -> list[Path]:
    """``n`` 4/4 beats (not fills) of the Groove MIDI Dataset, one style after the other (sorted: stable)."""
    by_style: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*_beat_4-4.mid")):
        parts = path.stem.split("_")
        by_style.setdefault(parts[1] if len(parts) > 2 else "other", []).append(path)
    picked, depth = [], 0
    while len(picked) < n and any(depth < len(v) for v in by_style.values()):
        picked += [v[depth] for v in by_style.values() if depth < len(v)]
        depth += 1
    return picked[:n]


def loop_name(path: Path) -> str:
    """'drummer1/session1/102_funk_95_beat_4-4.mid' -> 'funk, 95 bpm (drummer1 session1 #102)'."""
    parts = path.stem.split("_")
    where = " ".join(p.name for p in path.parents[1::-1] if p.name)
    if len(parts) >= 3 and parts[2].isdigit():
        return f"{parts[1]}, {parts[2]} bpm ({where} #{parts[0]})"
    return f"{path.stem} ({where})"


def default_chords(score, windows) -> tuple[str, int]:
    """(the file's annotated chords as --chords text, chords per bar): the shortest loop that
    repeats to the annotation; ('', 1) when it has no harmony to annotate."""
    labels = ch.window_chords(score, windows.start_ticks).astype(np.int64).reshape(-1)  # half bars
    if (labels == ch.N).all():
        return "", 1
    per_bar = 2 if (labels[0::2] != labels[1::2]).any() else 1
    seq = labels if per_bar == 2 else labels[0::2]
    for period in range(1, len(seq) + 1):
        if (np.resize(seq[:period], len(seq)) == seq).all():
            break
    return " ".join(ch.chord_name(int(c)) for c in seq[:period]), per_bar


def song_json(song: Song) -> dict:
    """What the page draws and pre-fills: drum hits (quarters, drum class), window starts, tempo map."""
    score, windows = song.score, song.windows
    tpq = float(score.tpq)
    drums = []
    for track in score.tracks:
        if track.is_drum and len(track.notes):
            arr = track.notes.numpy()
            classes = rep.GM_DRUM_TO_CLASS[np.clip(arr["pitch"], 0, 127)]
            drums += [[round(float(t) / tpq, 4), int(c)] for t, c in zip(arr["time"], classes)]
    text, per_bar = song.chords
    _, key_note = gen.estimate_file_key(score)
    return {
        "song": song.id, "name": song.name, "note": song.note,
        "windows": len(windows.drums), "bars": 2 * len(windows.drums), "bpm": round(float(windows.bpm[0]), 2),
        "key_estimate": key_note, "chords": text, "chords_per_bar": per_bar,
        "chord_note": "annotated from the file's pitched tracks" if text else "none in the file (type some: Am F C G)",
        "length": round(float(score.end()) / tpq, 4),
        "window_starts": [round(float(t) / tpq, 4) for t in windows.start_ticks],
        "tempos": [[round(float(t.time) / tpq, 4), round(float(t.qpm), 4)] for t in score.tempos] or [[0.0, 120.0]],
        "drums": sorted(drums),
    }


def bass_notes(score) -> list[list]:
    """[start, end (quarters), pitch, velocity] of the bass track of a generated score."""
    tpq = float(score.tpq)
    arr = score.tracks[-1].notes.numpy()
    return [[round(float(t) / tpq, 4), round(float(t + d) / tpq, 4), int(p), int(v)]
            for t, d, p, v in zip(arr["time"], arr["duration"], arr["pitch"], arr["velocity"])]


class Bench:
    """The app's state: where models are, the songs and jobs in memory, the generator thread."""

    def __init__(self, checkpoints: Path, classifier: Path, tensors: Path, groove: Path | None,
                 where: dict[str, str] | None = None, audio: bool = True):
        self.checkpoints, self.classifier, self.tensors = Path(checkpoints), Path(classifier), Path(tensors)
        self.where = where or {}
        self.loops = groove_loops(Path(groove)) if groove and Path(groove).is_dir() else []
        self.audio = audio and shutil.which("fluidsynth") is not None
        self.songs: Bounded = Bounded()
        self.jobs: Bounded = Bounded()
        self.lock = threading.Lock()
        self.models: dict[str, tuple] = {}  # name -> (model, style names), loaded once, used by the worker only
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, name="dnb-generator", daemon=True).start()

    # ------------------------------------------------------------------ what the page offers
    def model_list(self) -> list[dict]:
        import models

        trained = sorted(p.stem for p in self.checkpoints.glob("*.pt") if p.stem in models.architectures())
        # ablation runs (checkpoints/ablation/<tag>.pt, not the .resume.pt files), among them the context model
        runs = (self.checkpoints / "ablation").glob("*.pt")
        trained += sorted(f"ablation/{p.stem}" for p in runs if "." not in p.stem)
        has_train = (self.tensors / "train.npz").exists()
        out = [{"name": n, "kind": "trained", "available": True, "note": ""} for n in trained]
        for name in models.baseline_classes():
            out.append({"name": name, "kind": "baseline", "available": has_train,
                        "note": "" if has_train else f"needs {self.tensors / 'train.npz'}"})
        return out

    def default_model(self, listed: list[dict]) -> str | None:
        names = [m["name"] for m in listed if m["available"]]
        for preferred in ("ablation/recall", "ablation/previous", "transformer", "knn", "root_on_kick"):  # context 1st
            if preferred in names:
                return preferred
        return names[0] if names else None

    def options(self) -> dict:
        listed = self.model_list()
        return {
            "models": listed, "default_model": self.default_model(listed),
            "loops": [{"id": i, "name": loop_name(p)} for i, p in enumerate(self.loops)],
            "keys": rep.KEY_NAMES, "max_bytes": MAX_BYTES, "max_bars": MAX_BARS, "max_variations": MAX_VARIATIONS,
            "audio": self.audio,
            "audio_note": None if self.audio else "fluidsynth is not installed, so there is no audio "
                                                  "(sudo apt-get install fluidsynth); MIDI downloads work.",
        }

    # ------------------------------------------------------------------ songs
    def add_song(self, data: bytes, name: str) -> Song:
        if not data:
            raise BenchError(400, "No file received.")
        if len(data) > MAX_BYTES:
            raise BenchError(413, too_large(len(data)))
        try:
            score, note = gen.read_score(data, name)
            windows = gen.score_windows(score, name)
        except gen.CliError as err:
            raise BenchError(422, sentence(err)) from None
        if 2 * len(windows.drums) > MAX_BARS:
            raise BenchError(413, f"{name} has {2 * len(windows.drums)} bars of 4/4; the bench takes up to {MAX_BARS} "
                                 "(dnb generate takes longer files).")
        song = Song(hashlib.sha1(data).hexdigest()[:16], name, score, windows, note, default_chords(score, windows))
        with self.lock:
            self.songs.add(song.id, song)
        return song

    def loop_song(self, n: int) -> Song:
        if not 0 <= n < len(self.loops):
            raise BenchError(404, f"There is no loop {n}.")
        path = self.loops[n]
        return self.add_song(path.read_bytes(), loop_name(path))

    # ------------------------------------------------------------------ jobs
    def submit(self, form: dict) -> Job:
        with self.lock:
            song = self.songs.get(str(form.get("song")))
        if song is None:
            raise BenchError(404, "That file is no longer on the server: drop it again.")
        settings = settings_from_form(form, {m["name"]: m for m in self.model_list()})
        if settings.chords and (" ".join(settings.chords.split()), settings.chords_per_bar) == song.chords:
            settings.chords, settings.chords_per_bar = None, 1  # the annotation itself, as `dnb generate` does
        try:
            gen.check(settings)
            if settings.chords:
                ch.parse_progression(settings.chords, settings.chords_per_bar)
        except gen.CliError as err:
            raise BenchError(400, sentence(err)) from None
        except ValueError as err:
            raise BenchError(400, sentence(f"chords: {err}")) from None
        job = Job(secrets.token_hex(8), song, settings)
        with self.lock:
            self.jobs.add(job.id, job)
        self.queue.put(job)
        return job

    def job(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise BenchError(404, "That generation is no longer on the server: generate again.")
        return job

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            try:
                self.run(job)
            except gen.CliError as err:
                job.state, job.error = "error", sentence(err)
            except Exception as err:  # a bug: one sentence for the page, the traceback for the log
                traceback.print_exc(file=sys.stderr)
                job.state, job.error = "error", sentence(f"unexpected error ({type(err).__name__}); "
                                                         "the server is still running")

    def load(self, name: str) -> tuple:
        if name not in self.models:
            self.models[name] = gen.load_model(name, self.checkpoints, self.tensors, self.where)
        return self.models[name]

    def run(self, job: Job) -> None:
        """Sample every window (``producer.generate.arrange``), then write each variation's MIDI and audio."""
        s, song = job.settings, job.song
        start = time.perf_counter()
        job.state = "running"
        steps = 2 + (s.samples if self.audio else 0)
        job.status = f"loading {s.model}"
        model, style_names = self.load(s.model)
        bars = 2 * len(song.windows.drums)
        doing = f"generating {bars} bars with {s.model}, {s.samples} variation(s)"
        job.status, job.progress = doing, 1 / steps
        key = gen.check(s)

        def step(done: int, total: int) -> None:  # chain level by chain level with context, else all at once
            job.progress = (1 + done / max(total, 1)) / steps
            if done < total:
                job.status = f"{doing}: window {done}/{total}"

        arrangement = gen.arrange(song.score, song.windows, model, style_names, s, self.classifier, key, step)
        job.summary = arrangement.summary()
        stem = re.sub(r"[^\w.-]+", "_", Path(song.name).stem)[:60] or "song"
        variations = []
        for i in range(s.samples):
            score = arrangement.midi(i)
            variations.append({"index": i, "notes": bass_notes(score), "midi_bytes": score.dumps_midi(),
                               "midi": f"/api/jobs/{job.id}/{i}.mid", "audio": None,
                               "filename": f"{stem}.{s.model}-{i + 1}.mid"})
        job.progress = 2 / steps
        if not self.audio:
            job.audio_note = "fluidsynth is not installed, so there is no audio (sudo apt-get install fluidsynth)."
        for i, var in enumerate(variations if self.audio else []):
            job.status = f"rendering audio {i + 1}/{len(variations)}"
            try:
                suffix, data = render_audio(var["midi_bytes"])
            except Exception as err:  # AudioError or an encoder failure: the MIDI is still there
                job.audio_note = sentence(f"no audio: {str(err)[:200]}")
                break
            var["audio_bytes"], var["audio"] = data, f"/api/jobs/{job.id}/{i}{suffix}"
            job.progress = (3 + i) / steps
        job.variations = variations
        seconds = time.perf_counter() - start
        job.state, job.progress = "done", 1.0
        job.status = f"done: {bars} bars, {s.samples} variation(s) in {seconds:.1f} s"


def render_audio(midi: bytes) -> tuple[str, bytes]:
    """(suffix, bytes) of the arrangement rendered by fluidsynth (``dnb.audio``), Ogg Vorbis when ffmpeg is there."""
    from dnb.audio import encode, render_wav

    with tempfile.TemporaryDirectory(prefix="dnb-serve-") as tmp:
        mid, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        mid.write_bytes(midi)
        render_wav(mid, wav, rate=SAMPLE_RATE)
        out = encode(wav, "ogg")
        return out.suffix, out.read_bytes()


def too_large(size: int) -> str:
    return f"The file is {size:,} bytes; the bench takes files up to {MAX_BYTES / 2**20:g} MB."


def settings_from_form(form: dict, known: dict[str, dict]) -> gen.Settings:
    """``Settings`` from the page's form, every field checked (a BenchError 400 with one sentence)."""
    model = str(form.get("model") or "")
    if model not in known:
        raise BenchError(400, f"Unknown model {model!r}.")
    if not known[model]["available"]:
        raise BenchError(400, f"Model {model} is not available here: {known[model]['note']}.")

    def number(name, kind, lo, hi, default, label=None):  # label: the field in an error sentence
        label = label or name.replace("_", " ").capitalize()
        try:
            value = kind(form.get(name, default))
        except (TypeError, ValueError):
            raise BenchError(400, f"{label} must be a number.") from None
        if not lo <= value <= hi:
            raise BenchError(400, f"{label} must be between {lo} and {hi}.")
        return value

    def flag(name, default):
        value = form.get(name, default)
        if not isinstance(value, bool):
            raise BenchError(400, f"{name.capitalize()} must be true or false.")
        return value

    velocity = str(form.get("velocity") or "rule")
    if velocity not in ("rule", "fixed"):
        raise BenchError(400, "Velocity must be rule or fixed.")
    return gen.Settings(
        model=model,
        samples=number("variations", int, 1, MAX_VARIATIONS, 1),
        temperature=number("temperature", float, 0.05, 3.0, 1.0),
        top_p=number("top_p", float, 0.05, 1.0, 1.0, "Top-p"),
        key=str(form.get("key") or "").strip() or None,
        chords=str(form.get("chords") or "").strip() or None,
        chords_per_bar=number("chords_per_bar", int, 1, 2, 1),
        velocity=velocity,
        humanize=number("humanize", float, 0, 100, 0),
        seed=number("seed", int, 0, 2**31 - 1, 0),
        context=flag("context", True),
    )
