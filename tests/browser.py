"""Headless Chromium for the page tests (the listening page, `dnb serve`): the DevTools protocol
over ``--remote-debugging-pipe``, standard library only (no driver package, no websocket)."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


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

    def open(self, url: str, ready: str = 'document.readyState === "complete"', timeout: float = 20.0) -> str:
        """A new tab on ``url``; returns its session id once ``ready`` (a JS expression) is true."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.wait(session, ready, timeout)  # the new target starts on about:blank before the page commits
        return session

    def evaluate(self, session: str, expression: str, await_promise: bool = False):
        """The value of a JS expression in the page (an AssertionError with the page's exception)."""
        done = self.call("Runtime.evaluate", session, expression=expression, awaitPromise=await_promise,
                         returnByValue=True)
        assert "exceptionDetails" not in done, done["exceptionDetails"]
        return done["result"].get("value")

    def wait(self, session: str, expression: str, timeout: float = 20.0, every: float = 0.1):
        """Poll a JS expression until it is truthy; returns its value (a TimeoutError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(session, expression)
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"{expression} still false after {timeout} s")

    def screenshot(self, session: str, path: Path, width: int = 1100, height: int = 900) -> None:
        """A PNG of the page at ``width`` x ``height`` CSS pixels."""
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        shot = self.call("Page.captureScreenshot", session, format="png")
        Path(path).write_bytes(base64.b64decode(shot["data"]))
