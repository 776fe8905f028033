"""Where messages that are not the user's output go: a log file, never the screen.

Libraries warn (transformers' deprecations, torch's notes) through Python's warnings; the `oel`
command and the app send those to `oel.log` in the cache folder (`$OEL_LOG` names another file),
so a progress bar or a screen is never broken by a library's line. The file is made only when
something is written to it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def cache_root() -> Path:
    """The project's cache folder: `$OEL_CACHE_DIR`, else `$XDG_CACHE_HOME/oel-tui` (~/.cache)."""
    base = os.environ.get("OEL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "oel-tui"
    )
    return Path(base)


def log_path() -> Path:
    return Path(os.environ.get("OEL_LOG") or cache_root() / "oel.log")


def route_warnings_to_log(path: Path | None = None) -> Path:
    """Python warnings (and the engine's own log lines) go to `path` (default `log_path()`),
    nothing to stderr. Returns the file."""
    path = Path(path or log_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.captureWarnings(True)
    for name in ("py.warnings", "oel_engine"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.propagate = False
    return path
