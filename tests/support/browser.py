"""The app served by `oel-tui --serve`, driven in headless Chromium (Debian's package) by Playwright.

What the browser shows is drawn on a canvas, so the screen is read from what the app sends to the
page: every websocket frame the tab receives is the app's terminal output; with the escape codes
taken out, the words of each widget stand in it as the app wrote them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

# Chromium on a machine with no network: without these it keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
ESCAPES = re.compile(r"\x1b(\[[0-9;?<>=$ ]*[A-Za-z@`~]|\][^\x07\x1b]*(\x07|\x1b\\)|P[^\x1b]*\x1b\\|[()][0-9A-Za-z]|[=>78])")


def chromium_path() -> str | None:
    return os.environ.get("OEL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"oel-tui --serve exited with {process.returncode}: {process.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"oel-tui --serve did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def served_app(saves: Path, model: str, extra: tuple[str, ...] = ()):
    """`oel-tui --serve` on a free loopback port; yields its address."""
    port = free_port()
    env = dict(os.environ, OEL_LOG=str(Path(saves).parent / "oel.log"))
    process = subprocess.Popen([sys.executable, "-m", "oel_tui", "--serve", "--port", str(port), "--saves", str(saves),
                                "--model", model, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class BrowserTab:
    """One browser tab on the served app: keys in, the app's screen text out."""

    def __init__(self, page):
        self.page = page
        self.frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload) -> None:
        self.frames.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload)

    def screen_text(self, since: int = 0) -> str:
        return ESCAPES.sub("", "".join(self.frames[since:]))

    def wait_for_text(self, *words: str, since: int = 0, timeout: float = 60.0) -> str:
        """Wait until every word has appeared in what the app sent since frame `since`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen_text(since)
            if all(word in text for word in words):
                return text
            if time.monotonic() > deadline:
                missing = [word for word in words if word not in text]
                raise AssertionError(f"the browser never showed {missing}; last text: {text[-600:]!r}")
            self.page.wait_for_timeout(200)  # Playwright delivers frames while it waits, not in time.sleep

    def keys(self, *keys: str) -> int:
        """Press keys in the terminal; returns the frame count before them (for wait_for_text)."""
        mark = len(self.frames)
        self.page.focus(".xterm-helper-textarea")
        for key in keys:
            if len(key) > 1 and key[0].islower():
                self.page.keyboard.type(key)
            else:
                self.page.keyboard.press(key)
        return mark


@contextmanager
def browser_tab(url: str, width: int = 1280, height: int = 800):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            tab = BrowserTab(page)
            page.goto(url, wait_until="domcontentloaded")
            yield tab
        finally:
            browser.close()
