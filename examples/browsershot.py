"""A screenshot of `fleet dash --web` taken by a real headless browser (Debian's chromium).

`chromium --headless=new --screenshot` alone cannot take it: the page draws the cockpit only when
bytes arrive on its websocket from the dashboard process the server starts for it, and headless
Chromium's `--virtual-time-budget` does not wait for those (it fast-forwards past them and shoots the
"fleet dash" splash). So this drives the same browser over its DevTools protocol on a pipe
(`--remote-debugging-pipe`, no port): open the URL, wait until the page has received the text it
must show (`expect`, e.g. an agent's name) and the stream has been quiet for a moment, capture a PNG
of the page, and measure that PNG in the browser. A blank or splash-only PNG fails with
`BlankScreenshot`.

Nothing leaves the machine: Chromium resolves no host name (`--host-resolver-rules`), so the page's
one external link (a web font; textual-serve bundles its own) fails at once; the URL must be a
literal loopback address. Used by `scripts/dash-screenshot` and `tests/test_dash_screenshot.py`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

#: Installed by `scripts/setup` (Debian's package `chromium`).
CHROMIUM: Final = "chromium"

#: Every byte the page's websocket receives is kept as text in `window.__fleetText`, so the wait can
#: check what the dashboard sent (the terminal itself draws on a canvas: the DOM has no text).
_RECORD_STREAM: Final = """
(() => {
  const Base = window.WebSocket;
  const decoder = new TextDecoder();
  window.__fleetText = "";
  window.WebSocket = class extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string") return;
        window.__fleetText += decoder.decode(new Uint8Array(event.data), {stream: true});
      });
    }
  };
})();
"""

#: Measures a PNG (base64 in `%s`) in the page: its size, how many distinct colours it has, and the
#: share of its pixels that are textual-serve's splash background (#0c181f), the colour of a page
#: whose terminal never drew.
_MEASURE: Final = """
new Promise((resolve, reject) => {
  const img = new Image();
  img.onerror = () => reject(new Error("the screenshot is not a PNG the browser can read"));
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, img.width, img.height).data;
    const colours = new Set();
    let splash = 0;
    for (let i = 0; i < data.length; i += 4) {
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      if (data[i] === 12 && data[i + 1] === 24 && data[i + 2] === 31) splash += 1;
    }
    resolve({width: img.width, height: img.height, colours: colours.size,
             splash_share: splash / (img.width * img.height)});
  };
  img.src = "data:image/png;base64,%s";
})
"""

#: A drawn cockpit has text in several colours on Textual's own background; the splash has a handful
#: of colours, nearly all of it #0c181f.
MIN_COLOURS: Final = 40
MAX_SPLASH_SHARE: Final = 0.2


_ESCAPE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>]")


class BlankScreenshot(AssertionError):
    """The browser's PNG does not show the dashboard (a blank page or textual-serve's splash)."""


class BrowserFailed(RuntimeError):
    """Chromium could not be started, or did not answer in time."""


@dataclass(frozen=True)
class Shot:
    path: Path
    width: int
    height: int
    colours: int
    splash_share: float
    text: str  # what the page's websocket received, escape sequences included

    @property
    def plain_text(self) -> str:
        """What the page received without its escape sequences: the words drawn, in drawing order."""
        return _ESCAPE.sub("", self.text)


class _DevTools:
    """Chromium's DevTools protocol over `--remote-debugging-pipe`: JSON messages ended by NUL, the
    browser reading fd 3 and writing fd 4."""

    def __init__(self, argv: list[str]) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # numbers >= 10 first, so that placing them on 3 and 4 in the child cannot overwrite one another
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        try:
            self.pid = os.posix_spawn(argv[0], argv, dict(os.environ), setsid=True, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, high_r, 3),  # dup2 clears close-on-exec on 3 and 4 only
                (os.POSIX_SPAWN_DUP2, high_w, 4),
            ])
        finally:
            for fd in (to_browser_r, from_browser_w, high_r, high_w):
                os.close(fd)
        self.exit_status: int | None = None
        self._next = 0
        self._buffer = b""

    def poll(self) -> int | None:
        if self.exit_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
        return self.exit_status

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if time.monotonic() > deadline or self.poll() is not None:
                    raise BrowserFailed(f"chromium did not answer {method} (exit status {self.poll()}).")
                chunk = _read_some(self._from_browser, deadline)
                if not chunk:
                    raise BrowserFailed(f"chromium closed its DevTools pipe during {method}.")
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            answer = json.loads(raw)
            if answer.get("id") != self._next:
                continue  # an event: not asked for
            if "error" in answer:
                raise BrowserFailed(f"chromium refused {method}: {answer['error'].get('message')}")
            result: dict[str, Any] = answer.get("result", {})
            return result

    def close(self) -> None:
        """Ask the browser to quit; kill its process group (renderers included) if it has not in 10 s."""
        with contextlib.suppress(BrowserFailed, OSError):
            self.call("Browser.close", timeout=5)
        deadline = time.monotonic() + 10
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


def _read_some(fd: int, deadline: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        raise BrowserFailed("chromium did not answer in time.")
    return os.read(fd, 1 << 20)


def chromium_path() -> str | None:
    return shutil.which(CHROMIUM)


def shoot(url: str, out: Path, *, expect: str, width: int = 1400, height: int = 900,
          timeout: float = 60, settle: float = 1.5) -> Shot:
    """Open `url` in headless Chromium, wait until the page received `expect` and then `settle`
    seconds without a new frame, and write the page as a PNG to `out`. Raises `BlankScreenshot` if
    the PNG does not show a drawn dashboard, `BrowserFailed` if Chromium is missing or stuck."""
    binary = chromium_path()
    if binary is None:
        raise BrowserFailed("chromium is not installed; scripts/setup installs it (Debian's package chromium).")
    with tempfile.TemporaryDirectory(prefix="fleet-shot-") as profile:
        argv = [binary, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "--no-sandbox",  # root in a container: Chromium's own sandbox needs user namespaces it may not get
                "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
                f"--window-size={width},{height}", "about:blank"]
        browser = _DevTools(argv)
        try:
            return _shoot(browser, url, out, expect=expect, width=width, height=height, timeout=timeout,
                          settle=settle)
        finally:
            browser.close()


def _shoot(browser: _DevTools, url: str, out: Path, *, expect: str, width: int, height: int, timeout: float,
           settle: float) -> Shot:
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def page(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return browser.call(method, params, session=session)

    def evaluate(expression: str) -> Any:
        answer = page("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise BrowserFailed(f"the page could not run a check: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")

    page("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                 "mobile": False})
    page("Page.enable")  # without it the script below is not added to the next document
    page("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_STREAM})
    page("Page.navigate", {"url": url})
    deadline = time.monotonic() + timeout
    seen_at: float | None = None
    while True:
        state = evaluate("({drawn: !!document.body && document.body.classList.contains('-first-byte'),"
                         " text: (window.__fleetText || '').replace(/\\x1b\\[[0-9;?]*[ -\\/]*[@-~]/g, '')"
                         f".includes({json.dumps(expect)})}})")
        now = time.monotonic()
        if seen_at is None and state["drawn"] and state["text"]:
            seen_at = now
        if seen_at is not None and now - seen_at >= settle:
            break
        if now > deadline:
            text = evaluate("window.__fleetText || ''") or ""
            raise BlankScreenshot(f"after {timeout:.0f}s the page has not drawn {expect!r} "
                                  f"(first byte: {state['drawn']}); the last it received: {text[-300:]!r}")
        time.sleep(0.2)
    png = page("Page.captureScreenshot", {"format": "png"})["data"]
    stats = evaluate(_MEASURE % png)
    text = evaluate("window.__fleetText") or ""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(png))
    shot = Shot(path=out, width=stats["width"], height=stats["height"], colours=stats["colours"],
                splash_share=stats["splash_share"], text=text)
    if shot.colours < MIN_COLOURS or shot.splash_share > MAX_SPLASH_SHARE:
        raise BlankScreenshot(f"{out} looks blank: {shot.colours} colours, {shot.splash_share:.0%} of it the splash "
                              "background; the terminal did not draw.")
    return shot
