"""`oel-tui --serve`: the app in a browser. The address rules and errors without a browser; then
the real thing in headless Chromium (Debian's package; `.ci/run` installs it and sets
OEL_REQUIRE_BROWSER=1 so that CI cannot skip it)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from oel_engine.run.listing import summarize_run
from oel_tui.serve import app_command, exposure_warning, is_loopback
from tests.support.browser import browser_tab, chromium_path, free_port, served_app


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_are_served_without_a_warning(host):
    assert is_loopback(host) and exposure_warning(host, 8000) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "demo.example.org"])
def test_other_addresses_get_the_no_authentication_warning(host):
    warning = exposure_warning(host, 8123)
    assert not is_loopback(host)
    assert f"{host}:8123" in warning and "no authentication" in warning and "\n" not in warning


def test_each_tab_runs_this_app_with_the_same_options(tmp_path):
    words = shlex.split(app_command(tmp_path / "my saves", "demo run", "sokoban", "embedded", 7))
    assert words[:3] == [sys.executable, "-m", "oel_tui"]
    options = dict(zip(words[3::2], words[4::2]))
    assert options == {"--saves": str((tmp_path / "my saves").resolve()), "--game": "sokoban", "--model": "embedded",
                       "--seed": "7", "--run": "demo run"}


def oel_tui(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "oel_tui", *args], capture_output=True, text=True, timeout=timeout)


def test_host_and_port_without_serve_is_a_usage_error():
    result = oel_tui("--port", "8001")
    assert result.returncode == 2 and "--host and --port go with --serve" in result.stderr


def test_port_zero_is_refused_not_replaced_by_the_default(tmp_path):
    result = oel_tui("--serve", "--port", "0", "--saves", str(tmp_path))
    assert result.returncode == 1 and "--port 0 is not a port" in result.stderr


def test_a_taken_port_is_one_line_not_a_traceback(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = oel_tui("--serve", "--port", str(port), "--saves", str(tmp_path))
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_serving_beyond_this_machine_warns_first(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "oel_tui", "--serve", "--host", "0.0.0.0", "--port", str(port),
                                "--saves", str(tmp_path)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        first = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert first.startswith(f"warning: serving on 0.0.0.0:{port} with no authentication")


def browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return chromium_path() is not None


def test_the_app_in_a_browser_creates_a_run_and_plays(tmp_path, tiny_folder):
    """Start screen in the page, keys reach the app (the run is written to disk), Play shows a board
    with the model's move bars. OEL_BROWSER_SCREENSHOT=FILE keeps a picture of Play."""
    if not browser_available():
        if os.environ.get("OEL_REQUIRE_BROWSER") == "1":
            pytest.fail("OEL_REQUIRE_BROWSER=1 but Chromium or Playwright is missing (apt-get install chromium)")
        pytest.skip("needs Chromium (apt-get install chromium) and Playwright (the dev extra)")
    saves = tmp_path / "saves"
    model = os.environ.get("OEL_BROWSER_MODEL", str(tiny_folder))
    with served_app(saves, model) as url, browser_tab(url) as tab:
        tab.wait_for_text("Runs (Enter selects one to resume)", "new run name", "Create (n)")
        mark = tab.keys("browser-demo", "Enter")
        tab.wait_for_text("Run browser-demo created", since=mark)  # the app's word, not the typed name's echo
        assert summarize_run(saves / "browser-demo").problem == ""  # a real run, written by the tab's app
        mark = tab.keys("2")
        tab.wait_for_text("Agent: base model", "turn 1 of", "Map seed 0", since=mark)
        tab.wait_for_text("On good moves", since=mark, timeout=120)  # the model loaded and read the bars
        mark = tab.keys("Space")
        try:
            tab.wait_for_text("said:", "turn 2 of", since=mark, timeout=120)
        finally:
            if path := os.environ.get("OEL_BROWSER_SCREENSHOT"):
                tab.page.wait_for_timeout(1000)
                tab.page.screenshot(path=str(Path(path)))
