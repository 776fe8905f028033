"""Experience files: plain text, one "- EXPERIENCE ITEM: ..." per line (structured format)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import OelError

ITEM_PREFIX = "- EXPERIENCE ITEM:"
MAX_BYTES = 1_000_000
_MARKER = re.compile(r"-?\s*EXPERIENCE ITEM:", re.IGNORECASE)


def read_experience(path: str | Path) -> str:
    """The text of an experience file, or a one-line OelError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise OelError(f"experience file '{path}' does not exist")
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise OelError(f"experience file '{path}' is {len(data)} bytes; expected a short text (under 1 MB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OelError(f"experience file '{path}' is not UTF-8 text") from None
    if "\x00" in text:
        raise OelError(f"experience file '{path}' looks binary, not text")
    if not text.strip():
        raise OelError(f"experience file '{path}' is empty")
    return text.strip()


def parse_items(text: str) -> list[str]:
    """The item texts of structured experience: every line that holds the item marker (wherever
    it stands on the line) gives the text after it; a line with several markers gives several."""
    items = []
    for line in text.splitlines():
        parts = _MARKER.split(line)
        for body in parts[1:]:  # parts[0] is what precedes the first marker
            body = body.strip().strip("*").strip()
            if body:
                items.append(body)
    return items


def format_items(items: list[str]) -> str:
    return "\n".join(f"{ITEM_PREFIX} {item}" for item in items)
