"""Runs as a whole: listing them (never taking a lock) and opening an OEL run with its config."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import LoopConfig, from_dict, to_dict
from ..errors import OelError
from .store import INDEX, METRICS, AtomicJSONStorage, RunStore, read_episode_rows

# The stage whose completion finishes a round (the round table lives in round/runner.py).
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
    from ..metrics import EvalSummary, MetricsLog
    from ..fileio import read_jsonl

    problem = ""
    meta, state = {}, []
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


def read_config(store: RunStore) -> LoopConfig | None:
    meta = store.meta()
    if "config" not in meta:
        return None
    try:
        return from_dict(LoopConfig, meta["config"]).validate()
    except (TypeError, ValueError) as exc:
        raise OelError(f"run '{store.name}' has an unreadable configuration ({exc})") from None


def open_loop_run(root: Path, name: str, new_config: LoopConfig | None = None, *,
                  readonly: bool = False, holder: str = "") -> tuple[RunStore, LoopConfig]:
    """Open run `name`; a new run is created with `new_config`. An existing run keeps the
    configuration it was started with (only `rounds` may grow)."""
    exists = (Path(root) / name).is_dir()
    if not exists and (new_config is None or readonly):
        raise OelError(f"no run named '{name}' in {root}: start one with `oel loop --run {name}`")
    store = RunStore(root, name, readonly=readonly, holder=holder)
    try:
        config = read_config(store)
        if config is not None:
            if new_config is not None:
                _check_compatible(name, config, new_config)
                if new_config.rounds > config.rounds and not readonly:
                    config = replace(config, rounds=new_config.rounds)
                    store.set_meta(config=to_dict(config))
        elif new_config is not None and not readonly:
            if store.meta().get("game") not in (None, new_config.game.name) or store.episode_rows():
                raise OelError(f"run '{name}' holds games from `oel play`; use a new --run name for an OEL loop")
            config = new_config.validate()
            store.set_meta(config=to_dict(config), game=config.game.name, model=config.model.model, preset=config.preset)
        else:
            raise OelError(f"run '{name}' was not started by `oel loop`/`oel extract`; it has no OEL configuration")
        return store, config
    except BaseException:
        store.close()
        raise


def save_config(store: RunStore, config: LoopConfig) -> None:
    store.set_meta(config=to_dict(config.validate()))


def _check_compatible(name: str, old: LoopConfig, new: LoopConfig) -> None:
    differences = []
    if old.game != new.game:
        differences.append(f"game {old.game.label()}")
    from ..presets import canonical

    if canonical(old.preset) != canonical(new.preset) and new.preset != "custom":
        differences.append(f"preset {old.preset}")
    if old.model.model != new.model.model:
        differences.append(f"model {old.model.model}")
    if differences:
        raise OelError(f"run '{name}' was started with {', '.join(differences)}; resume it with those or use a new --run name")
