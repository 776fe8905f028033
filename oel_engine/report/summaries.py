"""Summaries of a run's metrics for tables, JSON and the README's results (typed records in)."""

from __future__ import annotations

from collections import defaultdict

from ..metrics import (
    ConsolidateStep,
    CurvePoint,
    EvalKind,
    EvalSummary,
    MetricsLog,
    StageTime,
    mean_sd,
)

KINDS = (EvalKind.BASE, EvalKind.IN_CONTEXT, EvalKind.CONSOLIDATED)
SUMMARY_KEYS = ("pass_rate", "pass_rate_std", "legal_action_rate", "legal_action_rate_std", "mean_response_tokens",
                "mean_turns", "samples", "episodes", "good_move_prob", "good_move_prob_std", "good_move_prob_se",
                "move_mass")


def eval_summaries(log: MetricsLog) -> list[EvalSummary]:
    """The per-round evaluation summaries of an OEL run (one per round and kind; the last wins)."""
    latest = {(s.round, s.kind): s for s in log.of(EvalSummary) if s.kind in KINDS}
    return [latest[k] for k in sorted(latest, key=lambda k: (k[0], KINDS.index(k[1])))]


def curve(log: MetricsLog, round_index: int) -> list[dict]:
    """In-context pass rate per extraction step, mean over extraction runs."""
    by_step = defaultdict(list)
    for p in log.of(CurvePoint, round=round_index):
        by_step[p.step].append(p.pass_rate)
    return [{"step": s, "pass_rate": round(mean_sd(v)[0], 4), "runs": len(v)} for s, v in sorted(by_step.items())]


def consolidation_steps(log: MetricsLog, round_index: int | None = None) -> list[ConsolidateStep]:
    """Optimizer steps that produced a loss (steps without prefixes or skipped ones are left out)."""
    where = {} if round_index is None else {"round": round_index}
    return [s for s in log.of(ConsolidateStep, **where) if s.loss is not None]


def run_summary(log: MetricsLog) -> dict:
    out = []
    for r in log.rounds():
        entry: dict = {"round": r}
        for s in eval_summaries(log):
            if s.round == r:
                entry[str(s.kind)] = {k: getattr(s, k) for k in SUMMARY_KEYS}
        entry["curve"] = curve(log, r)
        times = log.of(StageTime, round=r)
        entry["seconds"] = {t.stage: t.seconds for t in times}
        entry["peak_memory_mb"] = max((t.peak_memory_mb for t in times), default=0.0)
        steps = consolidation_steps(log, r)
        if steps:
            masses = [s.topk_mass for s in steps if s.topk_mass is not None]  # TRL's steps do not report it
            entry["consolidation"] = {
                "steps": len(steps), "first_loss": steps[0].loss, "last_loss": steps[-1].loss,
                "first_reverse_kl": steps[0].reverse_kl, "last_reverse_kl": steps[-1].reverse_kl,
                "mean_topk_mass": round(mean_sd(masses)[0], 4) if masses else None,
                "skipped_steps": sum(s.skipped for s in log.of(ConsolidateStep, round=r)),
            }
        out.append(entry)
    return {"rounds": out}
