"""The listening page on a tiny fixture, opened in headless Chromium: every player loads and plays."""

import os
from pathlib import Path

import numpy as np
import pytest
from browser import BROWSER, Browser

from dnb import representation as rep
from pipeline.demo import build_demo


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


def run_selftest(page: Path, profile: Path) -> list[dict]:
    """Open the page, run its selftest() in real time, return its report."""
    browser = Browser(profile)
    try:
        session = browser.open(page.resolve().as_uri(),
                               'document.readyState === "complete" && typeof selftest === "function"')
        return browser.evaluate(session, "selftest()", await_promise=True)
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


def test_each_loop_roll_has_its_own_number_and_pitch_labels(tmp_path: Path, monkeypatch):
    """Every per-loop image of the page is titled with its loop's number; bass rows show E1 / E2 / E3."""
    import pipeline.demo as demo
    from pipeline.report import figures

    drawn = []
    monkeypatch.setattr(figures.plt, "close", lambda fig: drawn.append(fig))
    monkeypatch.setattr(demo, "to_wav", lambda mid, wav, rate: Path(wav).write_bytes(b""))
    monkeypatch.setattr(demo, "trim_wav", lambda path, seconds: None)
    monkeypatch.setattr(demo, "encode", lambda wav, fmt: Path(wav))
    build_demo(fixture_loops() + fixture_loops()[:1], tmp_path / "demo")
    assert [fig.axes[0].get_title() for fig in drawn] == ["test loop 1", "test loop 2", "test loop 3"]
    rows = drawn[0].axes[1:]  # real, ffnn, cnn
    assert len(rows) == 3
    for ax in rows:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["E1", "E2", "E3"]
        assert list(ax.get_yticks()) == [28, 40, 52]
    assert drawn[0].axes[0].get_yticks().size == 0  # the drum row has no pitch axis
