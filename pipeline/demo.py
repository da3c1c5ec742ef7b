"""Stage `demo`: a listening page, paper/demo/index.html, for a few test drum loops.

For each loop (the same seeded pick as the paper's piano-roll figure, whose loops
are the first ones here) the page has a piano roll and one audio player per
source: the real bass line and one sample of each model, drums included. Audio is
rendered with fluidsynth and pretty_midi's General MIDI soundfont, then compressed
to Ogg Vorbis or MP3 with ffmpeg when available (a 2-bar clip is ~20-40 kB) or kept
as WAV. Opening ``index.html#selftest`` plays every player and writes the result
into the page (used by the headless-browser test).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dnb import representation as rep
from dnb.audio import encode, to_wav, trim_wav
from dnb.params import load_params
from dnb.schema import program_of, tempo_bpm
from pipeline.report.figures import piano_rolls
from pipeline.report.names import display
from pipeline.sampling import load_loops, sample_models

SELFTEST = """
<script>
// selftest() (run on load with #selftest): play every player until its time advances, report into #selftest.
async function selftest() {
  const out = [];
  for (const audio of document.querySelectorAll("audio")) {
    const row = {src: audio.getAttribute("src"), error: null};
    try {
      audio.muted = true;
      if (audio.readyState < 2) {
        await new Promise((ok, bad) => {
          audio.addEventListener("canplay", ok, {once: true});
          audio.addEventListener("error", () => bad(new Error("load error")), {once: true});
          audio.load();
        });
      }
      row.readyState = audio.readyState;
      row.duration = audio.duration;
      const advanced = new Promise(ok => {
        audio.addEventListener("timeupdate", () => { if (audio.currentTime > 0) ok(); });
        setTimeout(ok, 5000);
      });
      await audio.play();
      await advanced;
      audio.pause();
      row.currentTime = audio.currentTime;
    } catch (err) {
      row.error = String(err.message || err);
    }
    out.push(row);
  }
  const pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
  document.title = "selftest done";
  return out;
}
if (location.hash === "#selftest") window.addEventListener("load", selftest);
</script>
"""


def roll_png(drums: np.ndarray, sources: dict, path: Path, number: int) -> None:
    """Piano roll of loop ``number`` (its title): drums, then every source's bass."""
    batch = {"drums": np.asarray(drums)[None], "tokens": np.asarray(sources["real"])[None]}
    samples = {n: (None if t is None else t[None]) for n, t in sources.items() if n != "real"}
    piano_rolls(batch, samples, path, numbers=[number])


def build_demo(loops: list[dict], out_dir: Path, sample_rate: int = 22050, audio_format: str = "ogg") -> Path:
    """Write index.html, audio/ and rolls/ for ``loops`` = [{"drums" [32,14], "bpm", "program",
    "sources": {"real": tokens [64], model: tokens [64] or None}}]; returns the page path."""
    audio_dir, roll_dir = out_dir / "audio", out_dir / "rolls"
    for folder in (audio_dir, roll_dir):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    sections = []
    jobs = [(i, name, tokens) for i, loop in enumerate(loops) for name, tokens in loop["sources"].items()]
    players: dict[tuple[int, str], str] = {}
    for i, name, tokens in tqdm(jobs, desc="demo audio"):
        if tokens is None:
            continue
        loop = loops[i]
        pm = rep.windows_to_pretty_midi(loop["drums"][None], np.asarray(tokens)[None], bpm=loop["bpm"],
                                        bass_program=loop["program"])
        stem = audio_dir / f"loop{i + 1}_{name}"
        pm.write(str(stem.with_suffix(".mid")))
        to_wav(stem.with_suffix(".mid"), stem.with_suffix(".wav"), sample_rate)
        trim_wav(stem.with_suffix(".wav"), rep.QUARTERS_PER_WINDOW * 60.0 / loop["bpm"] + 0.6)
        stem.with_suffix(".mid").unlink()
        players[(i, name)] = encode(stem.with_suffix(".wav"), audio_format).relative_to(out_dir).as_posix()
    for i, loop in enumerate(loops):
        roll_png(loop["drums"], loop["sources"], roll_dir / f"loop{i + 1}.png", i + 1)
        rows = []
        for name in loop["sources"]:
            src = players.get((i, name))
            player = (f'<audio controls preload="auto" src="{html.escape(src)}"></audio>' if src
                      else "<em>not trained</em>")
            label = display(name)
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{player}</td></tr>")
        sections.append(
            f'<section><h2>Test loop {i + 1} <small>({loop["bpm"]:.0f} bpm)</small></h2>\n'
            f'<img src="rolls/loop{i + 1}.png" alt="piano roll of test loop {i + 1}" width="700">\n'
            f"<table>{''.join(rows)}</table></section>"
        )
    page = out_dir / "index.html"
    page.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>drum_and_bass: listening examples</title>\n"
        "<style>body{font-family:sans-serif;max-width:760px;margin:auto}td{padding:2px 8px}"
        "audio{height:32px}</style></head><body>\n"
        "<h1>drum_and_bass: listening examples</h1>\n"
        "<p>Two-bar drum loops from the test split (songs never seen in training), each with the real bass "
        "line and one sample of every model, drawn with a fixed seed. Drums are rendered from the drum grid; "
        "bass in the song's General MIDI bass program.</p>\n"
        + "\n".join(sections) + SELFTEST + "</body></html>\n"
    )
    return page


def main() -> None:
    everything = load_params()
    params = everything["demo"]
    batch = load_loops(Path(params["tensors"]), params["loops"], params["seed"])
    samples = sample_models(list(everything["models"]), batch, Path(params["checkpoint_dir"]), params["seed"],
                            params["temperature"])
    loops = []
    for j in range(int(batch["drums"].shape[0])):
        sources = {"real": batch["tokens"][j].numpy()}
        sources.update({n: (None if t is None else t[j]) for n, t in samples.items()})
        loops.append({
            "drums": batch["drums"][j].numpy().astype(np.uint8),
            "bpm": float(tempo_bpm(batch["tempo"][j])),
            "program": program_of(int(batch["program"][j])),
            "sources": sources,
        })
    out_dir = Path(params["out_dir"])
    page = build_demo(loops, out_dir, params["sample_rate"], params["audio_format"])
    size = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    print(json.dumps({"page": str(page), "loops": len(loops), "files": sum(1 for _ in out_dir.rglob("*.*")),
                      "bytes": size}))


if __name__ == "__main__":
    main()
