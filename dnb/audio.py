"""Audio of MIDI files: fluidsynth with pretty_midi's General MIDI soundfont, trimmed and compressed.

Used by the listening page (stage ``demo``) and ``dnb generate --wav``; errors are
``AudioError`` with a one-line message that says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np


class AudioError(RuntimeError):
    """Rendering failed (no fluidsynth, a fluidsynth error): the message says why."""


def soundfont_path() -> Path:
    """The General MIDI soundfont bundled with pretty_midi (TimGM6mb, 6 MB), found without importing it."""
    import importlib.util

    return Path(importlib.util.find_spec("pretty_midi").origin).parent / "TimGM6mb.sf2"


def render_wav(midi_path: Path, wav_path: Path, rate: int = 44100) -> None:
    """Render a MIDI file to WAV with the fluidsynth binary and pretty_midi's soundfont."""
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise AudioError("fluidsynth not found; install it with: sudo apt-get install -y fluidsynth")
    cmd = [binary, "-ni", "-q", "-g", "0.8", "-r", str(rate), "-F", str(wav_path), str(soundfont_path()),
           str(midi_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not Path(wav_path).exists():
        raise AudioError(f"fluidsynth failed on {midi_path}: {done.stderr.strip()[:200]}")


def to_wav(midi_path: Path, wav_path: Path, rate: int) -> None:
    """fluidsynth when installed, else pretty_midi's sine synthesis (bass only) as a fallback."""
    if shutil.which("fluidsynth"):
        render_wav(midi_path, wav_path, rate)
        return
    import pretty_midi

    audio = pretty_midi.PrettyMIDI(str(midi_path)).synthesize(fs=rate)
    pcm = (np.clip(audio / max(1e-9, np.abs(audio).max()) * 0.8, -1, 1) * 32767).astype("<i2")
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def trim_wav(path: Path, seconds: float, fade: float = 0.05) -> None:
    """Cut a 16-bit WAV to ``seconds`` with a short fade-out (fluidsynth renders long release tails)."""
    with wave.open(str(path), "rb") as w:
        channels, rate, width = w.getnchannels(), w.getframerate(), w.getsampwidth()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    pcm = pcm[: int(seconds * rate)].astype(np.float64)
    n_fade = min(len(pcm), int(fade * rate))
    pcm[len(pcm) - n_fade:] *= np.linspace(1.0, 0.0, n_fade)[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.rint(pcm).astype("<i2").tobytes())


def encode(wav_path: Path, audio_format: str) -> Path:
    """Compress a WAV to ogg/mp3 with ffmpeg (mono); the WAV itself when that is impossible."""
    codec = {"ogg": ["-c:a", "libvorbis", "-q:a", "3"], "mp3": ["-c:a", "libmp3lame", "-q:a", "5"]}.get(audio_format)
    if codec is None or shutil.which("ffmpeg") is None:
        return wav_path
    out = wav_path.with_suffix(f".{audio_format}")
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav_path), "-ac", "1", *codec, "-map_metadata", "-1",
           "-fflags", "+bitexact", "-flags:a", "+bitexact", str(out)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return wav_path
    wav_path.unlink()
    return out
