"""The listening page on a tiny fixture, opened in headless Chromium: every player loads and plays."""

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from dnb import representation as rep
from pipeline.demo import build_demo

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def fixture_loops() -> list[dict]:
    rng = np.random.default_rng(0)
    loops = []
    for bpm in (100.0, 140.0):
        drums = (rng.random((rep.DRUM_STEPS, rep.DRUM_CLASSES)) < 0.1).astype(np.uint8)
        drums[::8, rep.KICK] = 1
        real = np.zeros(rep.BASS_STEPS, dtype=np.int64)
        real[::16] = rep.ONSET_OFFSET + 9  # A1 on every beat
        real[1::16] = rep.SUSTAIN
        model = rng.integers(0, rep.VOCAB_SIZE, rep.BASS_STEPS)
        loops.append({"drums": drums, "bpm": bpm, "program": 33, "sources": {"real": real, "ffnn": model, "cnn": None}})
    return loops


class Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (DevTools protocol, NUL-framed JSON on fds 3/4)."""

    def __init__(self, profile: Path):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():  # the child reads commands on fd 3 and writes answers on fd 4
            read, write = os.dup(to_child_r), os.dup(from_child_w)  # above 4, so dup2 always copies
            os.dup2(read, 3)  # (and makes the copy inheritable even if the pipe already was fd 3)
            os.dup2(write, 4)

        cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--autoplay-policy=no-user-gesture-required",
               "--allow-file-access-from-files", "--remote-debugging-pipe", "about:blank"]
        # close_fds=False: subprocess would close 3 and 4 after preexec_fn; Python's own fds are close-on-exec
        self.proc = subprocess.Popen(cmd, preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer, self.next_id = b"", 0

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    assert "error" not in answer, answer
                    return answer["result"]
            ready, _, _ = select.select([self.from_child], [], [], 1.0)
            if ready:
                chunk = os.read(self.from_child, 1 << 16)
                assert chunk, "chromium closed the pipe"
                self.buffer += chunk
        raise TimeoutError(method)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)


def run_selftest(page: Path, profile: Path) -> list[dict]:
    """Open the page, run its selftest() in real time, return its report."""
    browser = Browser(profile)
    try:
        target = browser.call("Target.createTarget", url=page.resolve().as_uri())["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        loaded = 'document.readyState === "complete" && typeof selftest === "function"'
        for _ in range(200):  # the new target starts on about:blank before the page commits
            state = browser.call("Runtime.evaluate", session, expression=loaded, returnByValue=True)
            if state["result"].get("value") is True:
                break
            time.sleep(0.1)
        done = browser.call("Runtime.evaluate", session, expression="selftest()", awaitPromise=True,
                            returnByValue=True)
        assert "exceptionDetails" not in done, done
        return done["result"]["value"]
    finally:
        browser.close()


def test_page_audio_loads_and_plays(tmp_path: Path):
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    out = tmp_path / "demo"
    page = build_demo(fixture_loops(), out, sample_rate=16000, audio_format="ogg")
    text = page.read_text()
    assert text.count("<audio") == 4 and text.count("not trained") == 2
    assert len(list((out / "rolls").glob("*.png"))) == 2
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 1_000_000, size
    rows = run_selftest(page, tmp_path / "profile")
    assert len(rows) == 4
    for row, bpm in zip(rows, (100, 100, 140, 140)):
        assert row["error"] is None, row
        assert row["readyState"] >= 2, row
        assert row["currentTime"] > 0, row  # it played
        assert abs(row["duration"] - (8 * 60 / bpm + 0.6)) < 0.1, row  # a 2-bar clip, trimmed


def test_pick_loops_prefers_distinct_songs_and_is_prefix_stable():
    from pipeline.sampling import pick_loops

    rng = np.random.default_rng(1)
    tokens = rng.integers(0, rep.VOCAB_SIZE, (50, rep.BASS_STEPS))
    tokens[:5] = rep.REST  # no bass: never picked
    drums = np.ones((50, rep.DRUM_STEPS, rep.DRUM_CLASSES))
    songs = np.arange(50) // 20  # 3 songs
    six = pick_loops(tokens, drums, songs, 6, seed=0)
    assert len(set(six.tolist())) == 6 and not set(six.tolist()) & set(range(5))
    assert sorted(songs[six[:3]].tolist()) == [0, 1, 2]  # one per song first, then filled
    np.testing.assert_array_equal(pick_loops(tokens, drums, songs, 2, seed=0), six[:2])
