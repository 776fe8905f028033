"""The runs of a saves folder, listed without taking a lock (readers never block the writer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .store import INDEX, METRICS, AtomicJSONStorage, read_episode_rows

# The stage whose completion finishes a round: round/names.py's StageName.EVAL_CONSOLIDATED, written
# out because run/ sits below round/ (tests/unit/test_storage.py holds the two equal).
LAST_STAGE = "eval_consolidated"


@dataclass
class RunSummary:
    name: str
    path: Path
    game: str
    model: str
    created: str
    episodes: int
    wins: int
    last_pass_rate: float | None
    problem: str = ""
    rounds: int = 0  # OEL rounds finished


def rounds_done(state_rows) -> int:
    """Rounds whose last stage has finished, counted from round 0 without gaps."""
    done = {(s.get("round"), s.get("stage")) for s in state_rows}
    n = 0
    while (n, LAST_STAGE) in done:
        n += 1
    return n


def list_runs(root: Path) -> list[RunSummary]:
    root = Path(root)
    if not root.is_dir():
        return []
    return [summarize_run(p) for p in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]


def summarize_run(path: Path) -> RunSummary:
    """Read a run without taking its lock (readers never block the writer)."""
    from ..fileio import read_jsonl
    from ..metrics import EvalSummary, MetricsLog

    problem = ""
    meta, state = {}, []
    if not any((path / f).is_file() for f in (INDEX, METRICS, "trajectories.jsonl")):
        problem = "not a run: no index, games or metrics in it (delete the folder or move it away)"
    try:
        data = AtomicJSONStorage(str(path / INDEX)).read() or {}
        meta = next(iter(data.get("meta", {}).values()), {})
        state = list(data.get("state", {}).values())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        problem = f"index unreadable ({type(exc).__name__}); it is rebuilt when the run is next opened"
    rows = read_episode_rows(path)
    summaries = MetricsLog.from_dicts(read_jsonl(path / METRICS)[0]).of(EvalSummary)
    return RunSummary(
        name=path.name,
        path=path,
        game=str(meta.get("game", "?")),
        model=str(meta.get("model", "-")),
        created=str(meta.get("created", "?")),
        episodes=len(rows),
        wins=sum(1 for r in rows if r.get("success")),
        last_pass_rate=summaries[-1].pass_rate if summaries else None,
        problem=problem,
        rounds=rounds_done(state),
    )
