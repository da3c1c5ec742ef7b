"""Wall time of `dnb serve` answering a 100-bar drum file, beside `dnb generate` doing the same work.

For a non-autoregressive model (cnn), an autoregressive one (transformer) and the context model
(``ablation/previous``, which writes the windows one after another, each on the line before): the app's time
from the upload request to the last audio byte (upload, generate, poll the job, download the
audio), first request (the model is loaded) and warm (it is cached), printed beside the time of
``dnb generate --wav`` in a fresh process (start, model load, sampling, MIDI, fluidsynth) in the
same run, as ratios; no assertion. The app renders 22.05 kHz and encodes Ogg Vorbis when ffmpeg is
there, the command line writes a 44.1 kHz WAV: the same music, not the same bytes. Uses
``checkpoints/<model>.pt`` when it loads, else an untrained checkpoint of the architecture
(speed does not depend on the weights).

    python benchmarks/serve_speed.py [--bars 100] [--repeat 3]     # --quick: 8 bars, one run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this work tree's code, not an editable install's
from generate_speed import ROOT, drum_file, timed, untrained_checkpoint  # noqa: E402

MODELS = {"cnn": "non-autoregressive", "transformer": "autoregressive",
          "ablation/previous": "autoregr., context"}  # context: each window written on the one before, in turn


def env() -> dict:
    """This work tree's code first: an editable install may point at another checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def checkpoints(folder: Path) -> None:
    """``folder/<model>.pt`` for every model: the trained one when it loads here, else an untrained one."""
    from producer.generate import CliError, load_model

    folder.mkdir(exist_ok=True)
    for name in MODELS:
        real = ROOT / "checkpoints" / f"{name}.pt"
        (folder / f"{name}.pt").parent.mkdir(parents=True, exist_ok=True)
        try:
            load_model(name, ROOT / "checkpoints")
            (folder / f"{name}.pt").symlink_to(real)
        except CliError as err:
            if "/" in name:  # an ablation run: its architecture's untrained checkpoint would not take the context
                raise SystemExit(f"{name}: {err}; run `make reproduce` first") from None
            print(f"{name}: {str(err)[:90]}...; timing an untrained checkpoint")
            untrained_checkpoint(name, folder)


def call(url: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=600) as answer:
        return answer.read()


def app_time(base: str, drums: bytes, model: str, samples: int) -> float:
    """Seconds from the upload request to the last byte of the last variation's audio."""
    start = time.perf_counter()
    song = json.loads(call(f"{base}/api/upload", drums, {"X-Filename": "drums.mid"}))
    form = {"song": song["song"], "model": model, "variations": samples, "seed": 0, "chords": song["chords"]}
    job = json.loads(call(f"{base}/api/generate", json.dumps(form).encode(), {"Content-Type": "application/json"}))
    while job["state"] in ("queued", "running"):
        time.sleep(0.02)
        job = json.loads(call(f"{base}/api/jobs/{job['id']}"))
    if job["state"] != "done":
        raise SystemExit(f"the app failed: {job['error']}")
    for variation in job["variations"]:
        if variation["audio"] is None:
            raise SystemExit(f"the app rendered no audio: {job['audio_note']}")
        call(base + variation["audio"])
    return time.perf_counter() - start


def start_server(ckpt: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "producer.cli", "serve", "--port", "0", "--checkpoint-dir", str(ckpt),
           "--classifier", str(ROOT / "data" / "style_classifier.npz")]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # "dnb serve: http://127.0.0.1:PORT/ ..."
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"dnb serve did not start: {line!r}")
    return proc, line.split("http://", 1)[1].split("/", 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1, help="variations per request")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 8 bars, one run")
    args = ap.parse_args()
    if args.quick:
        args.bars, args.repeat = 8, 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        drums = tmp / "drums.mid"
        drum_file(drums, args.bars)
        ckpt = tmp / "checkpoints"
        checkpoints(ckpt)
        proc, host = start_server(ckpt, tmp)
        try:
            print(f"{'model':<17} {'kind':<19} {'generate s':>10} {'app first s':>11} {'app warm s':>10} "
                  f"{'warm / generate':>15}   ({args.bars} bars, {args.samples} variation(s), {args.repeat} runs)")
            for name, kind in MODELS.items():
                stem = name.replace("/", "-")
                cli = [sys.executable, "-m", "producer.cli", "generate", str(drums), "--model", name,
                       "--checkpoint-dir", str(ckpt), "--classifier", str(ROOT / "data" / "style_classifier.npz"),
                       "--samples", str(args.samples), "--out", str(tmp / f"{stem}.mid"),
                       "--wav", str(tmp / f"{stem}.wav")]
                command = statistics.median(timed(cli, tmp) for _ in range(args.repeat))
                first = app_time(f"http://{host}", drums.read_bytes(), name, args.samples)
                warm = statistics.median(app_time(f"http://{host}", drums.read_bytes(), name, args.samples)
                                         for _ in range(args.repeat))
                print(f"{name:<17} {kind:<19} {command:>10.2f} {first:>11.2f} {warm:>10.2f} {warm / command:>15.2f}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
