"""`oel-tui --serve`: the same app in a browser, through textual-serve.

textual-serve runs a small web server; every browser tab that opens the page gets its own app
process (the command below), all of them on the same saves folder. There is no authentication:
whoever reaches the address can run the app and write runs, so the default address is loopback
and any other address is served only after a warning.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str, port: int) -> str | None:
    """The line to print before serving on an address other machines may reach, else None."""
    if is_loopback(host):
        return None
    return (f"warning: serving on {host}:{port} with no authentication: anyone who can reach this address can "
            "run the app, load models and write runs in the saves folder. Use only on a network you trust; "
            f"the default ({DEFAULT_HOST}) keeps it on this machine.")


def app_command(saves: Path, run: str | None, game: str, model: str, seed: int) -> str:
    """The shell command textual-serve starts for each browser tab: this app, same options."""
    words = [sys.executable, "-m", "oel_tui", "--saves", str(Path(saves).resolve()), "--game", game,
             "--model", model, "--seed", str(seed)]
    if run:
        words += ["--run", run]
    return shlex.join(words)


def serve(command: str, host: str, port: int) -> None:
    """Serve `command` on http://host:port until Ctrl+C."""
    try:
        from textual_serve.server import Server
    except ImportError:  # a library install without the app's dependencies
        raise SystemExit("oel-tui --serve needs textual-serve: pip install textual-serve") from None
    try:
        Server(command, host=host, port=port, title="oel-tui").serve()
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise SystemExit(f"oel-tui: cannot serve on {host}:{port}: {error.strerror or error}") from None
