"""`dnb serve` on a free loopback port: the JSON routes, then the page in headless Chromium
(upload a drum file, generate, hear, download; random bytes give the error sentence)."""

import base64
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import symusic
from browser import BROWSER, Browser

from dnb.data import synthetic_split
from dnb.tensors import write_split
from producer import bench as bench_module
from producer.bench import Bench, default_chords, groove_loops
from producer.serve import STATIC, byte_range, make_server

ROOT = Path(__file__).resolve().parents[1]
BARS, TPQ = 8, 480
AUDIO = shutil.which("fluidsynth") is not None


def drum_file(path: Path, bars: int = BARS, piano: bool = False) -> None:
    """``bars`` of 4/4 at 120 bpm: kick on 1, 3 and the "and" of 3, snare on 2 and 4, 8th hats;
    with ``piano``, whole-bar chords Am, F, Am, F... on top."""
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, 120.0))
    kit = symusic.Track("kit", 0, True)
    for bar in range(bars):
        t0 = bar * 4 * TPQ
        for eighth in range(8):
            kit.notes.append(symusic.Note(t0 + eighth * TPQ // 2, TPQ // 2, 42, 70))  # to the end of the bar
        for q, key in ((0, 36), (1, 38), (2, 36), (2.5, 36), (3, 38)):
            kit.notes.append(symusic.Note(t0 + int(q * TPQ), TPQ // 4, key, 100))
    score.tracks.append(kit)
    if piano:
        keys = symusic.Track("piano", 0, False)
        for bar in range(bars):
            for pitch in ((57, 60, 64), (53, 57, 60))[bar % 2]:  # Am, F
                keys.notes.append(symusic.Note(bar * 4 * TPQ, 4 * TPQ, pitch, 80))
        score.tracks.append(keys)
    score.dump_midi(str(path))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on 127.0.0.1 (a free port), baselines fitted on a tiny synthetic split, no checkpoint."""
    root = tmp_path_factory.mktemp("serve")
    tensors = root / "tensors"
    tensors.mkdir()
    write_split(tensors / "train.npz", {k: v.numpy() for k, v in synthetic_split(32, seed=0).items()})
    (tensors / "meta.json").write_text('{"styles": ["funk", "rock", "jazz"]}')
    bench = Bench(root / "no_checkpoints", root / "no_classifier.npz", tensors, ROOT / "data" / "raw" / "groove")
    httpd = make_server(bench, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield {"url": f"http://{host}:{port}", "bench": bench, "root": root}
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | bytes, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            status, body, head = answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as err:
        status, body, head = err.code, err.read(), dict(err.headers)
    if head.get("Content-Type") == "application/json":
        body = json.loads(body)
    return status, body, head


def upload(server, data: bytes, name: str = "drums.mid"):
    return request(server["url"] + "/api/upload", data, {"X-Filename": name})


def wait_job(server, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job, _ = request(f"{server['url']}/api/jobs/{job_id}")
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.1)
    raise TimeoutError(job_id)


def windows_with_bass(midi: bytes) -> list[int]:
    """Bass onsets per 2-bar window of a generated file (``BARS`` bars of 4/4)."""
    score = symusic.Score.from_midi(midi)
    bass = [t for t in score.tracks if not t.is_drum]
    assert len(bass) == 1 and [t.is_drum for t in score.tracks] == [True, False]
    starts = bass[0].notes.numpy()["time"]
    return np.bincount(starts // (8 * score.tpq), minlength=BARS // 2).tolist()


def test_page_has_no_outside_asset():
    for path in STATIC.iterdir():
        assert not re.search(r"(src|href)=\"?(https?:)?//", path.read_text()), path
        assert "cdn" not in path.read_text().lower(), path


def test_options_list_the_baselines_and_twenty_loops(server):
    status, options, _ = request(server["url"] + "/api/options")
    assert status == 200
    names = [m["name"] for m in options["models"]]
    assert "root_on_kick" in names and "knn" in names and all(m["kind"] == "baseline" for m in options["models"])
    assert options["default_model"] == "knn"
    assert len(options["loops"]) == 20 and options["loops"][0]["name"].endswith(")")
    assert options["audio"] == AUDIO and options["max_bytes"] == 2 * 1024 * 1024


def test_groove_loops_take_styles_in_turn():
    loops = groove_loops(ROOT / "data" / "raw" / "groove", 6)
    styles = [p.stem.split("_")[1] for p in loops]
    assert len(set(styles)) == 6 and all(p.stem.endswith("_beat_4-4") for p in loops)


def test_upload_generate_download(server, tmp_path):
    drum_file(tmp_path / "song.mid", piano=True)
    status, song, _ = upload(server, (tmp_path / "song.mid").read_bytes(), "song.mid")
    assert status == 200, song
    assert (song["bars"], song["windows"], song["bpm"]) == (BARS, BARS // 2, 120.0)
    assert (song["chords"], song["chords_per_bar"]) == ("Am F", 1)  # the piano's harmony, as the default
    assert song["window_starts"] == [0.0, 8.0, 16.0, 24.0] and len(song["drums"]) == BARS * 13
    form = {"song": song["song"], "model": "chord_root_on_kick", "variations": 2, "seed": 3, "chords": "Am F",
            "context": True}
    status, job, _ = request(server["url"] + "/api/generate", json.dumps(form).encode(),
                             {"Content-Type": "application/json"})
    assert status == 202 and job["state"] in ("queued", "running", "done")
    job = wait_job(server, job["id"])
    assert job["state"] == "done", job
    assert job["context"] is True and "chords annotated from the file's pitched tracks" in job["summary"]
    assert job["status"].startswith("done: 8 bars, 2 variation(s) in ") and job["progress"] == 1.0
    assert len(job["variations"]) == 2
    status, midi, head = request(server["url"] + job["variations"][0]["midi"])
    assert status == 200 and head["Content-Type"] == "audio/midi"
    assert 'filename="song.chord_root_on_kick-1.mid"' in head["Content-Disposition"]
    assert windows_with_bass(midi) == [6, 6, 6, 6]  # three kicks a bar
    notes = job["variations"][0]["notes"]
    assert [n[2] for n in notes[:6]] == [33, 33, 33, 29, 29, 29]  # A1 under Am, F1 under F: the chord roots
    assert {n[3] for n in notes} == {112}  # every note on a kick: accents
    if AUDIO:
        status, audio, head = request(server["url"] + job["variations"][0]["audio"], headers={"Range": "bytes=0-99"})
        assert status == 206 and len(audio) == 100 and head["Content-Type"] in ("audio/ogg", "audio/wav")


def test_the_page_and_dnb_generate_write_the_same_bass(server, tmp_path, capsys):
    from producer import cli

    drum_file(tmp_path / "song.mid", piano=True)
    _, song, _ = upload(server, (tmp_path / "song.mid").read_bytes(), "song.mid")
    form = {"song": song["song"], "model": "bigram", "variations": 2, "seed": 5, "humanize": 6, "temperature": 1.3,
            "top_p": 0.9, "chords": song["chords"]}
    _, job, _ = request(server["url"] + "/api/generate", json.dumps(form).encode())
    job = wait_job(server, job["id"])
    args = ["generate", str(tmp_path / "song.mid"), "--model", "bigram", "--samples", "2", "--seed", "5",
            "--humanize", "6", "--temperature", "1.3", "--top-p", "0.9", "--tensors", str(server["root"] / "tensors"),
            "--classifier", str(server["root"] / "no_classifier.npz"), "--out", str(tmp_path / "cli.mid")]
    assert cli.main(args) == 0
    assert job["variations"][0]["notes"] != job["variations"][1]["notes"]
    for i in range(2):
        _, midi, _ = request(server["url"] + job["variations"][i]["midi"])
        page = symusic.Score.from_midi(midi).tracks[-1].notes.numpy()
        command = symusic.Score(str(tmp_path / f"cli-{i + 1}.mid")).tracks[-1].notes.numpy()
        assert len(page["time"]) > 8
        for column in ("time", "duration", "pitch", "velocity"):
            np.testing.assert_array_equal(page[column], command[column])


@pytest.mark.parametrize("data, status, message", [
    (b"", 400, "No file received."),
    (b"\x00" * (2 * 1024 * 1024 + 1), 413, "The file is 2,097,153 bytes; the bench takes files up to 2 MB."),
    (b"not a midi file", 422, "Cannot read x.mid as MIDI"),
])
def test_bad_uploads_are_a_sentence_and_a_4xx(server, data, status, message):
    got, body, _ = upload(server, data, "x.mid")
    assert got == status and body["error"].startswith(message) and "\n" not in body["error"]


def test_no_drums_no_four_four_and_bad_settings(server, tmp_path):
    score = symusic.Score(TPQ)
    piano = symusic.Track("piano", 0, False)
    piano.notes.append(symusic.Note(0, 16 * TPQ, 60, 90))
    score.tracks.append(piano)
    status, body, _ = upload(server, score.dumps_midi(), "piano.mid")
    assert (status, body["error"]) == (422, "No drums in piano.mid: no note on MIDI channel 10.")
    waltz = symusic.Score(TPQ)
    waltz.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    kit = symusic.Track("kit", 0, True)
    kit.notes.extend(symusic.Note(i * TPQ, 60, 36, 100) for i in range(48))
    waltz.tracks.append(kit)
    status, body, _ = upload(server, waltz.dumps_midi(), "waltz.mid")
    assert (status, body["error"]) == (422, "No complete 2-bar 4/4 window in waltz.mid.")
    drum_file(tmp_path / "d.mid")
    _, song, _ = upload(server, (tmp_path / "d.mid").read_bytes())
    for form, message in [({"model": "wavenet"}, "Unknown model 'wavenet'."),
                          ({"model": "knn", "variations": 9}, "Variations must be between 1 and 8."),
                          ({"model": "knn", "top_p": 0}, "Top-p must be between 0.05 and 1.0."),
                          ({"model": "knn", "chords": "Am H7"}, "Chords: "),
                          ({"model": "knn", "key": "H dorian"}, "Cannot parse key 'H dorian'")]:
        status, body, _ = request(server["url"] + "/api/generate", json.dumps({"song": song["song"], **form}).encode())
        assert status == 400 and body["error"].startswith(message), body
    status, body, _ = request(server["url"] + "/api/generate", b"{not json")
    assert (status, body["error"]) == (400, "The request is not JSON.")
    assert request(server["url"] + "/api/jobs/feedbeef")[0] == 404


def test_an_unexpected_error_is_a_500_sentence_and_the_server_keeps_serving(server, monkeypatch):
    def broken():
        raise KeyError("boom")

    monkeypatch.setattr(server["bench"], "options", broken)
    status, body, _ = request(server["url"] + "/api/options")
    assert (status, body) == (500, {"error": "Unexpected error (KeyError); the server is still running."})
    monkeypatch.undo()
    assert request(server["url"] + "/api/options")[0] == 200
    assert request(server["url"] + "/")[0] == 200


def test_without_fluidsynth_the_page_says_so_and_midi_still_works(server, tmp_path):
    bench = Bench(tmp_path, tmp_path / "none.npz", server["root"] / "tensors", None, audio=False)
    assert bench.options()["audio_note"].startswith("fluidsynth is not installed, so there is no audio")
    drum_file(tmp_path / "d.mid")
    song = bench.add_song((tmp_path / "d.mid").read_bytes(), "d.mid")
    job = bench.submit({"song": song.id, "model": "root_on_kick"})
    deadline = time.monotonic() + 60
    while job.state not in ("done", "error") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "done" and job.audio_note.startswith("fluidsynth is not installed")
    assert [v["audio"] for v in job.variations] == [None]
    assert windows_with_bass(job.variations[0]["midi_bytes"]) == [6, 6, 6, 6]


def test_context_reaches_the_model_and_the_page_writes_what_dnb_generate_writes(server, tmp_path, capsys):
    """A tiny transformer trained with the previous window: the form's context (default on) is the
    command's (no --no-context), and off is --no-context; anything but true or false is a 400."""
    import torch

    from dnb.schema import DataInfo
    from models import build
    from models.checkpoint import save_checkpoint
    from producer import cli

    torch.manual_seed(0)
    info = DataInfo(n_styles=3, style_names=["funk", "rock", "jazz"])
    params = {"conditioning": ["previous"], "d_model": 16, "heads": 2, "layers": 1, "ff": 32}
    save_checkpoint(tmp_path / "ck" / "transformer.pt", build("transformer", params, info), "transformer", params, info)
    bench = Bench(tmp_path / "ck", tmp_path / "none.npz", server["root"] / "tensors", None, audio=False)
    assert bench.default_model(bench.model_list()) == "transformer"
    drum_file(tmp_path / "d.mid")
    song = bench.add_song((tmp_path / "d.mid").read_bytes(), "d.mid")

    def finished(job):
        deadline = time.monotonic() + 60
        while job.state not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.state == "done", job.error
        return job

    form = {"song": song.id, "model": "transformer", "variations": 2, "seed": 9}
    on, off = finished(bench.submit(form)), finished(bench.submit({**form, "context": False}))
    assert on.public()["context"] is True and on.summary.endswith(", model transformer, context: on")
    assert off.public()["context"] is False and off.summary.endswith(", model transformer, context: off")
    assert on.progress == off.progress == 1.0
    command = ["generate", str(tmp_path / "d.mid"), "--model", "transformer", "--samples", "2", "--seed", "9",
               "--checkpoint-dir", str(tmp_path / "ck"), "--classifier", str(tmp_path / "none.npz")]
    assert cli.main(command + ["--out", str(tmp_path / "on.mid")]) == 0
    assert cli.main(command + ["--no-context", "--out", str(tmp_path / "off.mid")]) == 0
    for job, name in ((on, "on"), (off, "off")):
        for i in range(2):
            page = symusic.Score.from_midi(job.variations[i]["midi_bytes"]).tracks[-1].notes.numpy()
            written = symusic.Score(str(tmp_path / f"{name}-{i + 1}.mid")).tracks[-1].notes.numpy()
            for column in ("time", "duration", "pitch", "velocity"):
                np.testing.assert_array_equal(page[column], written[column])
    assert [v["notes"] for v in on.variations] != [v["notes"] for v in off.variations]
    with pytest.raises(bench_module.BenchError, match="Context must be true or false."):
        bench.submit({**form, "context": "no"})
    _, page_song, _ = upload(server, (tmp_path / "d.mid").read_bytes())
    status, body, _ = request(server["url"] + "/api/generate",
                              json.dumps({"song": page_song["song"], "model": "knn", "context": 1}).encode())
    assert (status, body["error"]) == (400, "Context must be true or false.")


def test_default_chords_find_the_loop_and_byte_ranges():
    assert bench_module.sentence("no drums in x") == "No drums in x."
    assert byte_range(b"abcdef", "bytes=2-3", "audio/ogg")[:2] == (206, b"cd")
    assert byte_range(b"abcdef", "bytes=-2", "audio/ogg")[:2] == (206, b"ef")
    assert byte_range(b"abcdef", None, "audio/ogg")[:2] == (200, b"abcdef")
    score = symusic.Score(TPQ)
    assert default_chords(score, type("W", (), {"start_ticks": np.zeros(0, dtype=np.int64)})()) == ("", 1)


def test_serve_on_a_busy_port_is_one_line(server, capsys):
    from producer import cli

    port = server["url"].rsplit(":", 1)[1]
    assert cli.main(["serve", "--port", port, "--tensors", str(server["root"] / "tensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dnb: error: cannot listen on 127.0.0.1:{port}: ") and "\n" not in err


# --------------------------------------------------------------------------- the page in headless Chromium


def need_browser_and_audio() -> None:
    missing = [name for name, ok in (("chromium", BROWSER), ("fluidsynth", AUDIO)) if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{' and '.join(missing)} required in CI (apt-get install {' '.join(missing)})")
        pytest.skip(f"{' and '.join(missing)} not installed")


READY = 'document.readyState === "complete" && window.bench && window.bench.options !== null'
FETCH_DOWNLOAD = """(async () => {
  const link = document.getElementById("download");
  const answer = await fetch(link.href);
  const bytes = new Uint8Array(await answer.arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return {status: answer.status, name: link.download, data: btoa(text)};
})()"""


def choose_file(browser: Browser, session: str, path: Path) -> None:
    """Set the page's file input as a user would (its change event uploads)."""
    root = browser.call("DOM.getDocument", session)["root"]["nodeId"]
    node = browser.call("DOM.querySelector", session, nodeId=root, selector="#file")["nodeId"]
    browser.call("DOM.setFileInputFiles", session, files=[str(path.resolve())], nodeId=node)


def test_page_generates_plays_and_downloads(server, tmp_path, monkeypatch):
    need_browser_and_audio()
    bench, release = server["bench"], threading.Event()
    run = bench.run
    monkeypatch.setattr(bench, "run", lambda job: (release.wait(30), run(job)))  # held until the page shows it works
    drum_file(tmp_path / "beat.mid")
    (tmp_path / "noise.mid").write_bytes(np.random.default_rng(0).bytes(4000))
    browser = Browser(tmp_path / "profile")
    try:
        session = browser.open(server["url"] + "/", READY)
        choose_file(browser, session, tmp_path / "beat.mid")
        assert browser.wait(session, 'document.body.dataset.state === "ready"')
        info = browser.evaluate(session, 'document.getElementById("song-info").textContent')
        assert info.startswith("beat.mid: 8 bars of 4/4 (4 two-bar windows), 120 bpm"), info
        assert browser.evaluate(session, 'document.getElementById("context").checked') is True  # on by default
        browser.evaluate(session, 'document.getElementById("model").value = "root_on_kick";'
                                  'document.getElementById("variations").value = "2";'
                                  'document.getElementById("generate").click()')
        working = ('document.body.dataset.state === "generating" && document.getElementById("generate").disabled'
                   ' && document.getElementById("generate").textContent === "Working\u2026"'
                   ' && !document.getElementById("progress").hidden'
                   ' && document.getElementById("status").textContent.startsWith("waiting for the generator")')
        assert browser.wait(session, working, timeout=20)
        release.set()
        playable = ('document.body.dataset.state === "done" && document.getElementById("audio").readyState >= 2'
                    ' || document.body.dataset.state === "error"')
        browser.wait(session, playable, timeout=60)
        assert browser.evaluate(session, 'document.getElementById("error").textContent') == ""
        assert browser.evaluate(session, 'document.getElementById("generate").textContent') == "Generate"
        summary = browser.evaluate(session, 'document.getElementById("summary").textContent')
        assert summary.endswith("model root_on_kick, context: off (model has none)"), summary
        assert list(bench.jobs.values())[-1].settings.context is True  # the box, as sent
        assert browser.evaluate(session, 'document.querySelectorAll("#variation-tabs button").length') == 2
        got = browser.evaluate(session, FETCH_DOWNLOAD, await_promise=True)
        assert got["status"] == 200 and got["name"] == "beat.root_on_kick-1.mid"
        assert windows_with_bass(base64.b64decode(got["data"])) == [6, 6, 6, 6]
        browser.evaluate(session, 'document.querySelectorAll("#variation-tabs button")[1].click()')
        assert browser.evaluate(session, 'document.getElementById("download").download') == "beat.root_on_kick-2.mid"
        browser.evaluate(session, 'document.getElementById("context").click();'  # unchecked: independent windows
                                  'document.getElementById("generate").click()')
        browser.wait(session, 'document.body.dataset.state === "done" || document.body.dataset.state === "error"',
                     timeout=60)
        summary = browser.evaluate(session, 'document.getElementById("summary").textContent')
        assert summary.endswith("model root_on_kick, context: off"), summary
        assert list(bench.jobs.values())[-1].settings.context is False

        choose_file(browser, session, tmp_path / "noise.mid")
        browser.wait(session, 'document.body.dataset.state === "error"')
        text = browser.evaluate(session, 'document.getElementById("error").textContent')
        status = browser.evaluate(session, 'document.getElementById("error").dataset.status')
        assert text.startswith("Cannot read noise.mid as MIDI: ") and text.endswith(".") and status == "422", text
    finally:
        browser.close()


def test_the_page_offers_the_ablation_runs_and_prefers_the_context_model(server, tmp_path):
    (tmp_path / "ablation").mkdir()
    for name in ("transformer.pt", "ablation/previous.pt", "ablation/previous.resume.pt", "ablation/chords.pt"):
        (tmp_path / name).write_bytes(b"")  # listed by file name; loaded only when used
    bench = Bench(tmp_path, tmp_path / "none.npz", server["root"] / "tensors", None, audio=False)
    trained = [m["name"] for m in bench.model_list() if m["kind"] == "trained"]
    assert trained == ["transformer", "ablation/chords", "ablation/previous"]
    assert bench.default_model(bench.model_list()) == "ablation/previous"
    (tmp_path / "ablation" / "recall.pt").write_bytes(b"")  # the model with the recalled window comes first
    assert bench.default_model(bench.model_list()) == "ablation/recall"
