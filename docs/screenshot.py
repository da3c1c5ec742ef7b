"""docs/serve.png: the bench's page after a generation, as headless Chromium draws it.

Starts the app on a free loopback port (the checkpoints, classifier and tensors found as
`dnb serve` finds them), picks a Groove loop, types chords, generates, waits until the audio
can play and takes ``Page.captureScreenshot``. Run from the repository root:

    python docs/screenshot.py [--model transformer] [--loop 0] [--chords "Am F C G"] [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this work tree's code; the test suite's Chromium driver

from browser import BROWSER, Browser  # noqa: E402

from producer.serve import bench_of, make_server  # noqa: E402

READY = 'document.readyState === "complete" && window.bench && window.bench.options !== null'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="transformer", help="falls back to the page's default when not available")
    ap.add_argument("--loop", type=int, default=0, help="index in the page's list of Groove loops")
    ap.add_argument("--chords", default="Am F C G")
    ap.add_argument("--variations", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "serve.png"))
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    if BROWSER is None:
        raise SystemExit("chromium not installed (apt-get install chromium)")
    flags = argparse.Namespace(checkpoint_dir=None, classifier=None, tensors=None, groove=None)
    server = make_server(bench_of(flags), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    profile = tempfile.TemporaryDirectory(prefix="dnb-chromium-")
    browser = Browser(Path(profile.name))
    try:
        session = browser.open(f"http://{host}:{port}/", READY)
        browser.call("Emulation.setDeviceMetricsOverride", session, width=args.width, height=args.height,
                     deviceScaleFactor=1, mobile=False)
        browser.evaluate(session, f'const l = document.getElementById("loop"); l.value = "{args.loop}";'
                                  'l.dispatchEvent(new Event("change"))')
        browser.wait(session, 'document.body.dataset.state === "ready"', timeout=30)
        settings = {"model": args.model, "chords": args.chords, "variations": str(args.variations)}
        browser.evaluate(session, f"""(() => {{
            const s = {json.dumps(settings)};
            const model = document.getElementById("model");
            if ([...model.options].some(o => o.value === s.model && !o.disabled)) model.value = s.model;
            document.getElementById("chords").value = s.chords;
            document.getElementById("variations").value = s.variations;
            document.getElementById("generate").click();
        }})()""")
        done = ('document.body.dataset.state === "done" && document.getElementById("audio").readyState >= 2'
                ' || document.body.dataset.state === "error"')
        browser.wait(session, done, timeout=300)
        error = browser.evaluate(session, 'document.getElementById("error").textContent')
        if error:
            raise SystemExit(f"the page says: {error}")
        browser.evaluate(session, "window.scrollTo(0, 0)")
        browser.screenshot(session, Path(args.out), args.width, args.height)
        summary = browser.evaluate(session, 'document.getElementById("summary").textContent')
        print(f"wrote {args.out}: {summary}")
    finally:
        browser.close()
        server.shutdown()
        profile.cleanup()


if __name__ == "__main__":
    main()
