"""Action parsing: the LAST bracketed move anywhere in the response wins."""

from __future__ import annotations

import re

_ACTION = re.compile(r"\[\s*(up|down|left|right|w|a|s|d)\s*\]", re.IGNORECASE)
_WASD = {"w": "up", "a": "left", "s": "down", "d": "right"}


def parse_action(response: str) -> str | None:
    """The move named by the last [up]/[down]/[left]/[right]/[w]/[a]/[s]/[d], or None."""
    matches = _ACTION.findall(response or "")
    if not matches:
        return None
    word = matches[-1].lower()
    return _WASD.get(word, word)
