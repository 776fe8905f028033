"""Summaries of a run's metrics for tables, JSON and the README's results."""

from __future__ import annotations

import statistics
from collections import defaultdict

KINDS = ("base", "in_context", "consolidated")


def eval_summaries(metrics: list[dict]) -> list[dict]:
    """The per-round evaluation summaries (one record per round and kind; the last one wins)."""
    latest = {}
    for m in metrics:
        if m.get("phase") == "eval" and "sample" not in m and "kind" in m:
            latest[(m["round"], m["kind"])] = m
    return [latest[k] for k in sorted(latest, key=lambda k: (k[0], KINDS.index(k[1]) if k[1] in KINDS else 9))]


def curve(metrics: list[dict], round_index: int) -> list[dict]:
    """In-context pass rate per extraction step, mean over extraction runs."""
    by_step = defaultdict(list)
    for m in metrics:
        if m.get("phase") == "curve" and m.get("round") == round_index:
            by_step[m["step"]].append(m["pass_rate"])
    return [{"step": s, "pass_rate": round(statistics.fmean(v), 4), "runs": len(v)} for s, v in sorted(by_step.items())]


def run_summary(metrics: list[dict]) -> dict:
    rounds = sorted({m["round"] for m in metrics if isinstance(m.get("round"), int)})
    out = []
    for r in rounds:
        entry = {"round": r}
        for s in eval_summaries(metrics):
            if s["round"] == r:
                entry[s["kind"]] = {k: s[k] for k in ("pass_rate", "pass_rate_std", "legal_action_rate",
                                                      "legal_action_rate_std", "mean_response_tokens", "mean_turns",
                                                      "samples", "episodes") if k in s}
        entry["curve"] = curve(metrics, r)
        seconds, peak = {}, 0.0
        for m in metrics:
            if m.get("round") != r:
                continue
            if m.get("phase") == "stage":
                seconds[m["stage"]] = m["seconds"]
            elif m.get("phase") == "eval" and "sample" not in m and "seconds" in m:
                seconds[f"eval_{m['kind']}"] = m["seconds"]
            elif m.get("phase") == "collect" and "seconds" in m:
                seconds["collect"] = m["seconds"]
            peak = max(peak, float(m.get("peak_memory_mb") or 0.0))
        steps = [m for m in metrics if m.get("phase") == "consolidate" and m.get("round") == r and "loss" in m]
        if steps:
            entry["consolidation"] = {"steps": len(steps), "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"],
                                      "first_reverse_kl": steps[0]["reverse_kl"], "last_reverse_kl": steps[-1]["reverse_kl"],
                                      "mean_topk_mass": round(statistics.fmean(s["topk_mass"] for s in steps), 4)}
        entry["seconds"] = seconds
        entry["peak_memory_mb"] = peak
        out.append(entry)
    return {"rounds": out}
