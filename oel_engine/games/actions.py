"""Reading model answers: the LAST bracketed move anywhere in the response wins; a thinking
model's answer is what follows its last `</think>`."""

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


def move_spellings(move: str) -> tuple[str, ...]:
    """Every answer the parser reads as `move` among the plausible ways to write it: the word and
    its WASD letter, in lower case, Capitalised and UPPER case, with or without a space inside
    either bracket ("[left]", "[ Left ]", "[a]", "[A ]" ...). Drawn from the parser itself, so a
    stricter parser gives fewer."""
    words = [move] + [letter for letter, word in _WASD.items() if word == move]
    forms = dict.fromkeys(f for w in words for f in (w, w.capitalize(), w.upper()))
    candidates = (f"[{lead}{form}{trail}]" for form in forms for lead in ("", " ") for trail in ("", " "))
    return tuple(s for s in candidates if _ACTION.fullmatch(s) and parse_action(s) == move)


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def strip_thinking(text: str) -> str:
    """A thinking model's answer: what follows the last `</think>` (as the reference does).

    Templates that open `<think>` in the prompt leave only `</think>` in the output, so the
    close tag alone decides. An answer cut off before `</think>` is kept whole (minus an opening
    tag): dropping it would turn every truncated answer into nothing."""
    if THINK_CLOSE in text:
        return text.rsplit(THINK_CLOSE, 1)[1].strip()
    return text.replace(THINK_OPEN, "", 1).strip()
