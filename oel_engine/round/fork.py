"""A run forked from another with other consolidation settings: the same base evaluation,
experience and (usually) deploy games, then its own consolidation, so an ablation's baseline rows
are the very same games and cost nothing to run again.

The work of the fork round that the changed settings affect, and every later round, is left out
of the copy: stage states, metrics, games, experience snapshots, consolidation data, checkpoints,
adapters. The copy is built in a temporary folder and renamed into place, so a fork is either
whole or absent.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from ..config import LoopConfig, to_dict
from ..errors import OelError
from ..fileio import read_jsonl, rewrite_jsonl
from ..metrics import (
    CollectSummary,
    ConsolidateStep,
    CurvePoint,
    EvalKind,
    EvalSample,
    EvalSummary,
    ExtractStep,
    OodSample,
    PrecisionChoice,
    StageTime,
    parse_record,
)
from ..run.loop_config import open_loop_run, read_config
from ..run.store import (
    EPISODE_INDEX,
    INDEX,
    METRICS,
    TRAJECTORIES,
    AtomicJSONStorage,
    RunStore,
    check_run_name,
)
from .names import StageName

# What a changed consolidation setting makes a fork redo in its round (and every later round is
# redone whole). The rest of the round (base evaluation, extraction, often collection) is kept.
AFFECTED = {
    "teacher_context": (StageName.EVAL_IN_CONTEXT, StageName.CONSOLIDATE, StageName.EVAL_CONSOLIDATED),
    "steps": (StageName.COLLECT, StageName.CONSOLIDATE, StageName.EVAL_CONSOLIDATED),
    "games_per_step": (StageName.COLLECT, StageName.CONSOLIDATE, StageName.EVAL_CONSOLIDATED),
}
TRAINING = (StageName.CONSOLIDATE, StageName.EVAL_CONSOLIDATED)


def redone_stages(settings: dict, before=None) -> set[str]:
    """The stages of the fork round that changing `settings` (from consolidation config
    `before`) makes stale."""
    stages: set[str] = set()
    for key in settings:
        stages.update(AFFECTED.get(key, TRAINING))
    if "loss" in settings and before is not None and (settings["loss"] == "offpolicy") != (before.loss == "offpolicy"):
        stages.update(AFFECTED["steps"])  # the off-policy baseline learns from games the teacher plays
    return stages


def _redone(round_index: int, stages: set[str]):
    """(round, stage) -> True for the work the fork does again."""

    def redone(r: int | None, stage: str | None) -> bool:
        if r is None:
            return False
        return r > round_index or (r == round_index and stage in stages)

    return redone


def _record_stage(record) -> str | None:
    if isinstance(record, (EvalSample, EvalSummary, OodSample)):  # the probe runs in its evaluation
        return StageName.evaluation(record.kind) if record.kind in tuple(EvalKind) else None
    if isinstance(record, (ExtractStep, CurvePoint)):
        return StageName.EXTRACT
    if isinstance(record, CollectSummary):
        return StageName.COLLECT
    if isinstance(record, ConsolidateStep):
        return StageName.CONSOLIDATE
    if isinstance(record, PrecisionChoice):
        return StageName.CONSOLIDATE if record.use == "consolidation" else None
    if isinstance(record, StageTime):
        return record.stage
    return None


def _episode_stage(row: dict) -> str | None:
    stage = row.get("stage")
    return None if stage == "play" else stage  # a person's games stay with their round


def fork_run(root: Path, source: str, name: str, round_index: int = 0, *, ood_samples: int | None = None,
             **settings) -> LoopConfig:
    """Copy run `source` as `name` with `consolidation` fields changed (loss, teacher_context,
    learning_rate...): round `round_index`'s work that those settings affect is left out, and so
    is every later round. `ood_samples` sets the instruction probe's seeds for the evaluations the
    fork runs (0: none; an ablation whose probe no comparison reads need not pay for it); the
    source's stay. Returns the fork's configuration. The source is only read."""
    root = Path(root)
    check_run_name(name)
    settings = {k: v for k, v in settings.items() if v is not None}
    if not settings:
        raise OelError("a fork needs at least one changed setting (for example --loss or --teacher-context)")
    src = root / source
    if not src.is_dir():
        raise OelError(f"no run named '{source}' in {root}")
    if (root / name).exists():
        raise OelError(f"a run named '{name}' exists already: choose another name for the fork")
    with RunStore(root, source, readonly=True) as store:
        config = read_config(store)
        if config is None:
            raise OelError(f"run '{source}' has no OEL configuration to fork")
    if not 0 <= round_index < config.rounds:
        raise OelError(f"run '{source}' has rounds 0-{config.rounds - 1}; cannot fork at round {round_index}")
    evaluation = config.evaluation if ood_samples is None else replace(config.evaluation, ood_samples=ood_samples)
    try:
        new_config = replace(config, consolidation=replace(config.consolidation, **settings),
                             evaluation=evaluation).validate()
    except TypeError as exc:
        raise OelError(f"unknown consolidation setting for a fork ({exc})") from None
    stages = redone_stages(settings, config.consolidation)
    redone = _redone(round_index, stages)

    staging = root / f".{name}.forking"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging, ignore=shutil.ignore_patterns(".lock", "*.partial.jsonl"))
    try:
        _filter_copy(staging, redone, round_index)
        index = AtomicJSONStorage(str(staging / INDEX))
        data = index.read() or {}
        data["state"] = {k: v for k, v in data.get("state", {}).items() if not redone(v.get("round"), v.get("stage"))}
        for meta in data.get("meta", {}).values():
            meta["config"] = to_dict(new_config)
            meta["forked_from"] = {"run": source, "round": round_index, "redone": sorted(stages), "settings": settings,
                                   **({} if ood_samples is None else {"ood_samples": ood_samples})}
        index.write(data)
        staging.rename(root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    open_loop_run(root, name)[0].close()  # opens cleanly: the episode index is rebuilt here
    return new_config


def _filter_copy(folder: Path, redone, round_index: int) -> None:
    metrics, _ = read_jsonl(folder / METRICS)
    kept = []
    for d in metrics:
        record = parse_record(d)
        if record is None or not redone(getattr(record, "round", None), _record_stage(record)):
            kept.append(d)
    rewrite_jsonl(folder / METRICS, kept)
    games, _ = read_jsonl(folder / TRAJECTORIES)
    rewrite_jsonl(folder / TRAJECTORIES, [g for g in games if not redone(g.get("round"), _episode_stage(g))])
    (folder / EPISODE_INDEX).unlink(missing_ok=True)  # rebuilt from the trajectories on open
    experience, _ = read_jsonl(folder / "experience" / "index.jsonl")
    rewrite_jsonl(folder / "experience" / "index.jsonl",
                  [e for e in experience if not redone(e.get("round"), StageName.EXTRACT)])
    for r_dir in (folder / "experience").glob("round-*"):
        if redone(int(r_dir.name.split("-")[1]), StageName.EXTRACT):
            shutil.rmtree(r_dir)
    for kind, stage in (("consolidation", StageName.CONSOLIDATE), ("checkpoints", StageName.CONSOLIDATE),
                        ("adapters", StageName.CONSOLIDATE), (StageName.COLLECT, StageName.COLLECT)):
        for path in (folder / kind).glob("round-*"):
            r = int(path.name.split("-")[1].split(".")[0])
            if redone(r, stage):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    external = folder / "experience" / "external.json"
    if external.is_file() and json.loads(external.read_text()).get("from_round", 0) > round_index:
        external.unlink()
        (folder / "experience" / "external.txt").unlink(missing_ok=True)
