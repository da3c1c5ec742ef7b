"""`dnb serve`: the producer's bench, a local web page over `dnb generate`'s own functions.

    dnb serve [--port 8000] [--host 127.0.0.1] [--checkpoint-dir D] [--classifier F] [--tensors D] [--groove D]

Framework: the standard library's ``http.server.ThreadingHTTPServer``. The app is one
page and a few JSON routes for one local user: the standard library adds no dependency
to the pinned environment, works offline and starts at once, where Flask or FastAPI +
uvicorn would add packages (and an ASGI/WSGI layer) for nothing this page uses. What it
costs: a small hand-written router (``Handler.route``), and no multipart parser, which
the page avoids by posting the file's raw bytes (``fetch(url, {body: file})``).

Routes (JSON unless said)::

    GET  /                     the page (producer/static/index.html, app.js, style.css; no CDN)
    GET  /api/options          models (trained checkpoints found + baselines), loops, keys, limits, audio
    POST /api/upload           body: a MIDI file (header X-Filename) -> the song: drums, bars, default key / chords
    GET  /api/loops/<n>        a Groove MIDI loop as a song
    POST /api/generate         {song, model, key, chords, chords_per_bar, temperature, top_p, variations, seed,
                                context, velocity, humanize} -> {job}; context (default true): each window
                                follows the line written for the one before (``producer.generate``)
    GET  /api/jobs/<id>        state, status sentence, progress, then per variation: bass notes, midi, audio
    GET  /api/jobs/<id>/<i>.mid / .ogg / .wav   downloads (audio answers Range requests)

Bad input (not MIDI, no drums, no 4/4 window, over ``MAX_BYTES`` or ``MAX_BARS``) is a 4xx
with ``{"error": one sentence}``; an unexpected error is a 500 with one sentence (the
traceback goes to the server's stderr only), and the server keeps serving. Generation
runs in one worker thread, one job at a time (a 2-core machine), and the page polls
the job's status ("generating 100 bars ...: window 12/50", "rendering audio 2/3").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from producer import generate as gen
from producer import paths
from producer.bench import MAX_BYTES, Bench, BenchError, Job, sentence, song_json, too_large

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".mid": "audio/midi",
                 ".ogg": "audio/ogg", ".wav": "audio/wav"}


class Handler(BaseHTTPRequestHandler):
    """Routes to the ``Bench`` of the server; every answer has a Content-Length."""

    server_version = "dnb-serve"

    @property
    def bench(self) -> Bench:
        return self.server.bench

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def log_message(self, format: str, *args) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def dispatch(self, method: str) -> None:
        try:
            status, body, ctype, headers = self.route(method, urllib.parse.urlsplit(self.path).path)
        except BenchError as err:
            status, body, ctype, headers = err.status, json_bytes({"error": str(err)}), "application/json", {}
        except Exception as err:  # never a stack trace on the page
            traceback.print_exc(file=sys.stderr)
            message = sentence(f"unexpected error ({type(err).__name__}); the server is still running")
            status, body, ctype, headers = 500, json_bytes({"error": message}), "application/json", {}
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away

    def body(self) -> bytes:
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BYTES:
            remaining = size if size <= 32 * MAX_BYTES else 0  # read it, so that the browser sees the answer
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            self.close_connection = True
            raise BenchError(413, too_large(size))
        return self.rfile.read(size) if size else b""

    def route(self, method: str, path: str) -> tuple[int, bytes, str, dict]:
        bench = self.bench
        if method == "GET" and path in ("/", "/index.html"):
            return static("index.html")
        if method == "GET" and path.startswith("/static/"):
            return static(path[len("/static/"):])
        if method == "GET" and path == "/api/options":
            return ok(bench.options())
        if method == "POST" and path == "/api/upload":
            data = self.body()
            name = Path(urllib.parse.unquote(self.headers.get("X-Filename") or "upload.mid")).name or "upload.mid"
            return ok(song_json(bench.add_song(data, name)))
        if method == "GET" and (m := re.fullmatch(r"/api/loops/(\d+)", path)):
            return ok(song_json(bench.loop_song(int(m.group(1)))))
        if method == "POST" and path == "/api/generate":
            try:
                form = json.loads(self.body() or b"{}")
            except ValueError:
                raise BenchError(400, "The request is not JSON.") from None
            if not isinstance(form, dict):
                raise BenchError(400, "The request is not a JSON object.")
            return ok(bench.submit(form).public(), status=202)
        if method == "GET" and (m := re.fullmatch(r"/api/jobs/(\w+)", path)):
            return ok(bench.job(m.group(1)).public())
        if method == "GET" and (m := re.fullmatch(r"/api/jobs/(\w+)/(\d+)\.(mid|ogg|wav)", path)):
            return self.download(bench.job(m.group(1)), int(m.group(2)), m.group(3))
        if path.startswith("/api/"):
            raise BenchError(404, f"No such request: {method} {path}.")
        raise BenchError(404, f"No such page: {path}.")

    def download(self, job: Job, i: int, kind: str) -> tuple[int, bytes, str, dict]:
        if job.state != "done" or not 0 <= i < len(job.variations):
            raise BenchError(404, f"Variation {i + 1} is not ready.")
        var = job.variations[i]
        if kind == "mid":
            disposition = f'attachment; filename="{var["filename"]}"'
            return 200, var["midi_bytes"], CONTENT_TYPES[".mid"], {"Content-Disposition": disposition}
        data = var.get("audio_bytes")
        if data is None or not var["audio"].endswith(kind):
            raise BenchError(404, f"Variation {i + 1} has no .{kind} audio.")
        return byte_range(data, self.headers.get("Range"), CONTENT_TYPES[f".{kind}"])


def byte_range(data: bytes, header: str | None, ctype: str) -> tuple[int, bytes, str, dict]:
    """The whole body, or the part a ``Range: bytes=a-b`` header asks for (206), so that audio can seek."""
    headers = {"Accept-Ranges": "bytes"}
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return 200, data, ctype, headers
    if m.group(1):
        start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else len(data) - 1
    else:
        start, end = max(0, len(data) - int(m.group(2))), len(data) - 1
    end = min(end, len(data) - 1)
    if start > end:
        raise BenchError(416, "The requested range is outside the audio.")
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return 206, data[start:end + 1], ctype, headers


def json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def ok(obj, status: int = 200) -> tuple[int, bytes, str, dict]:
    return status, json_bytes(obj), "application/json", {}


def static(name: str) -> tuple[int, bytes, str, dict]:
    files = {p.name: p for p in STATIC.iterdir() if p.is_file()}  # no path from the request reaches the disk
    if name not in files:
        raise BenchError(404, f"No such page: /static/{name}.")
    return 200, files[name].read_bytes(), CONTENT_TYPES.get(files[name].suffix, "application/octet-stream"), {}


def make_server(bench: Bench, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> ThreadingHTTPServer:
    """A bound server (``port`` 0: a free one, see ``server.server_address``); call ``serve_forever``."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.bench, server.verbose = bench, verbose
    return server


def bench_of(args: argparse.Namespace) -> Bench:
    found = gen.resolve_paths(args)
    groove = Path(args.groove) if getattr(args, "groove", None) else paths.install_root() / "data" / "raw" / "groove"
    if not groove.is_dir():
        groove = Path("data/raw/groove")
    return Bench(found["checkpoints"][0], found["classifier"][0], found["tensors"][0], groove,
                 {kind: origin for kind, (_, origin) in found.items()})


def main(args: argparse.Namespace) -> None:
    """The `serve` command: serve until Ctrl-C."""
    bench = bench_of(args)
    try:
        server = make_server(bench, args.host, args.port, verbose=args.verbose)
    except OSError as err:
        raise gen.CliError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    host, port = server.server_address[:2]
    trained = [m["name"] for m in bench.model_list() if m["kind"] == "trained"]
    print(f"dnb serve: http://{host}:{port}/  (trained models: {', '.join(trained) or 'none'} in {bench.checkpoints}; "
          f"{len(bench.loops)} loops; audio: {'fluidsynth' if bench.audio else 'none, fluidsynth not found'}; "
          "Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def add_parser(sub) -> None:
    """The `serve` sub-command's arguments (``producer.cli``)."""
    srv = sub.add_parser("serve", help="the producer's bench: a local web page to generate, hear and download")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: only this machine can connect")
    srv.add_argument("--checkpoint-dir", help="as for generate")
    srv.add_argument("--classifier", help="as for generate")
    srv.add_argument("--tensors", help="as for generate (the baselines are fitted on its train split)")
    srv.add_argument("--groove",
                     help="folder of Groove MIDI loops to offer (default: the repository's data/raw/groove)")
    srv.add_argument("--verbose", action="store_true", help="log every request")
