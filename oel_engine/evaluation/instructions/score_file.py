"""Scoring answers given in a file, offline: one JSON line per answer in,
`{"instructions": [{"id": ..., "kwargs": {...}}], "response": "..."}`, one JSON line of
per-instruction verdicts out. Ids are IFEval's (`keywords:existence`, ...) or our probe's. A line
that cannot be read, an unknown id or arguments a check does not take give a verdict of null with
the reason, counted in the summary; the other lines are still scored."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

from ...errors import OelError
from .checks import KNOWN, follows


def score_lines(path: Path) -> Iterator[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OelError(f"cannot read {path}: {exc.strerror or exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield score_line(n, line)


def score_line(n: int, line: str) -> dict:
    try:
        row = json.loads(line)
        response, instructions = row["response"], row["instructions"]
        if not isinstance(response, str) or not isinstance(instructions, list):
            raise TypeError("response must be a string and instructions a list")
    except (ValueError, KeyError, TypeError) as exc:
        return {"line": n, "error": f"not an answer line ({exc})", "instructions": [], "followed_all": None}
    verdicts = [_verdict(i, response) for i in instructions]
    known = [v["followed"] for v in verdicts]
    return {"line": n, "instructions": verdicts,
            "followed_all": None if None in known or not known else all(known)}


def _verdict(instruction, response: str) -> dict:
    if not isinstance(instruction, dict) or "id" not in instruction:
        return {"id": None, "followed": None, "error": "an instruction needs an id"}
    iid, kwargs = instruction["id"], instruction.get("kwargs") or {}
    if iid not in KNOWN:
        return {"id": iid, "followed": None, "error": "unknown instruction"}
    try:
        return {"id": iid, "followed": follows(iid, response, kwargs)}
    except (TypeError, ValueError) as exc:
        return {"id": iid, "followed": None, "error": f"bad arguments ({exc})"}


def summary(results: list[dict]) -> dict:
    """Prompt-level and instruction-level strict accuracy over what could be judged, per id too."""
    judged = [r for r in results if r["followed_all"] is not None]
    judged_instructions = [v for r in results for v in r["instructions"] if v["followed"] is not None]
    flat = [v["followed"] for v in judged_instructions]
    per_id: dict[str, list[bool]] = {}
    for v in judged_instructions:
        per_id.setdefault(v["id"], []).append(v["followed"])
    errors = Counter(v.get("error") for r in results for v in r["instructions"] if v["followed"] is None)
    errors.update(r["error"] for r in results if "error" in r)
    return {
        "answers": len(results),
        "prompt_accuracy": sum(r["followed_all"] for r in judged) / len(judged) if judged else None,
        "instruction_accuracy": sum(flat) / len(flat) if flat else None,
        "per_instruction": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_id.items())},
        "not_judged": dict(errors),
    }
