"""`oel report` and `oel compare`: Markdown with PNG charts that read well on GitHub or in any
browser. A report is rewritten whole each time (atomic writes), so it can follow a live run."""

from __future__ import annotations

from pathlib import Path

from ..errors import OelError
from ..fileio import atomic_write_text
from ..metrics import EvalKind, StageTime, mean_sd
from .data import RunData
from .plots import grouped_bars, lines

# Per round: the policy it starts from, with the experience in its prompt, consolidated.
KINDS = (("start", "start policy"), (EvalKind.IN_CONTEXT, "in context"), (EvalKind.CONSOLIDATED, "consolidated"))
METRICS = (("pass_rate", "pass rate", True), ("legal_action_rate", "legal-move rate", True),
           ("good_move_prob", "good-move probability", True), ("mean_response_tokens", "response tokens", False))


def pct(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if spread is None else f"{value:.1%} ± {spread:.1%}"


def _value(summary, key: str) -> tuple[float, float] | None:
    """(mean, spread): the spread over sampling seeds; for the probe, whose prompts are often the
    same in every sample (spread 0), the standard error over the probed states when larger."""
    if summary is None or getattr(summary, key, None) is None:
        return None
    spread = getattr(summary, f"{key}_std", 0.0) or 0.0
    if key == "good_move_prob":
        spread = max(spread, summary.good_move_prob_se or 0.0)
    return getattr(summary, key), spread


def _cell(value: tuple[float, float] | None, percent: bool) -> str:
    if value is None:
        return "-"
    return pct(*value) if percent else f"{value[0]:.1f} ± {value[1]:.1f}"


def evaluation_table(run: RunData) -> list[str]:
    rows = ["| round | policy | " + " | ".join(name for _, name, _ in METRICS) + " | instruction probe |",
            "|---|---|" + "---|" * (len(METRICS) + 1)]
    for r in run.rounds():
        for kind, name in KINDS:
            summary = run.evaluation(r, kind)
            if summary is None:
                continue
            ood = run.ood(r, kind) if kind != EvalKind.IN_CONTEXT else None
            cells = [_cell(_value(summary, key), percent) for key, _, percent in METRICS]
            rows.append(f"| {r} | {name} | " + " | ".join(cells) + f" | {pct(*ood[:2]) if ood else '-'} |")
    return rows


def write_report(run_path: Path, out_dir: Path | None = None) -> Path:
    """saves/NAME/report/report.md and its charts; returns the Markdown file."""
    run = RunData.load(run_path)
    out = Path(out_dir) if out_dir else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    rounds = run.rounds()
    if not rounds:
        raise OelError(f"run '{run.name}' has no evaluation yet: nothing to report")
    lines_md = [f"# Run `{run.name}`", "", run.label() + ".", ""]
    if run.forked_from:
        f = run.forked_from
        lines_md += [f"Forked from `{f['run']}` at round {f['round']} with {f['settings']} "
                     f"(redone: {', '.join(f.get('redone', []))}).", ""]
    lines_md += ["## Held-out evaluation", "",
                 f"{run.config.evaluation.episodes} held-out maps x {run.config.evaluation.samples} sampling seeds; "
                 "mean ± spread over the seeds (good-move probability: ± the standard error over the probed "
                 "states when that is larger). The start policy of round r > 0 is round r-1's consolidated model.", ""]
    lines_md += evaluation_table(run) + [""]
    groups = [f"round {r}" for r in rounds]
    for key, name, percent in METRICS:
        series = {label: [_value(run.evaluation(r, kind), key) for r in rounds] for kind, label in KINDS}
        if any(v for values in series.values() for v in values):
            grouped_bars(out / f"{key}.png", name, groups, series, name, percent=percent)
            lines_md += [f"![{name}]({key}.png)", ""]
    curve_series = {f"round {r}": [(p["step"], p["pass_rate"]) for p in run.curve(r)] for r in rounds}
    if any(curve_series.values()):
        lines(out / "curve.png", "pass rate with the experience so far in the prompt", curve_series,
              "extraction step", "held-out pass rate", percent=True)
        lines_md += ["## The in-context curve", "", "![in-context curve](curve.png)", ""]
    lines_md += _training(run, out)
    lines_md += _contexts(run)
    lines_md += _settings(run)
    target = out / "report.md"
    atomic_write_text(target, "\n".join(lines_md) + "\n")
    return target


def _training(run: RunData, out: Path) -> list[str]:
    steps = run.steps()
    if not steps:
        return []
    per_round = run.config.consolidation.steps
    x = lambda s: s.round * per_round + s.step + 1
    marks = [r * per_round + 0.5 for r in sorted({s.round for s in steps}) if r > 0]
    md = ["## Consolidation", "", "| round | steps | first loss | last loss | last reverse KL | mean top-k mass |",
          "|---|---|---|---|---|---|"]
    for r in sorted({s.round for s in steps}):
        mine = [s for s in steps if s.round == r]
        masses = [s.topk_mass for s in mine if s.topk_mass is not None]  # TRL's steps do not report it
        md.append(f"| {r} | {len(mine)} | {mine[0].loss:.4f} | {mine[-1].loss:.4f} | {mine[-1].reverse_kl:.4f} | "
                  f"{f'{mean_sd(masses)[0]:.3f}' if masses else '-'} |")
    for key, name in (("loss", "loss"), ("reverse_kl", "reverse KL"), ("topk_mass", "top-k mass")):
        points = [(x(s), getattr(s, key)) for s in steps if getattr(s, key, None) is not None]
        lines(out / f"{key}.png", f"{name} per optimizer step", {name: points}, "step", name, marks=marks)
        md += [f"![{name}]({key}.png)", ""]
    times = run.log.of(StageTime)
    if times:
        md += ["", "Seconds per stage: " + "; ".join(f"round {t.round} {t.stage} {t.seconds:.0f}" for t in times) + "."]
    return md + [""]


def _contexts(run: RunData) -> list[str]:
    md = []
    for r, texts in sorted(run.contexts.items()):
        md += [f"## What the teacher read in round {r} ({run.context_source.get(r, '')})", ""]
        for k, text in enumerate(texts):
            shown = text if len(text) <= 1500 else text[:1500] + "\n[... cut here; the whole text is in the run]"
            md += [f"Context {k + 1} of {len(texts)}:", "", "```text", shown, "```", ""]
    return md


def _settings(run: RunData) -> list[str]:
    c = run.config
    x, k, e = c.extraction, c.consolidation, c.evaluation
    rows = [("preset", c.preset), ("model", c.model.model), ("game", c.game.label()), ("seed", c.seed),
            ("rounds", c.rounds), ("extraction", f"K={x.runs} runs x N={x.steps} steps, {x.format}, "
                                                 f"experience at step {x.consolidation_step}, budget {x.budget_tokens} tokens"),
            ("consolidation", f"{k.loss} loss (top-k {k.top_k}), T={k.steps} steps x {k.games_per_step} games, "
                              f"LoRA r{k.lora_rank} lr {k.learning_rate:g}, teacher reads {k.teacher_context}"),
            ("evaluation", f"{e.episodes} maps x {e.samples} samples, T={e.sampling.temperature}, "
                           f"instruction probe seeds {e.ood_samples}")]
    return ["## Settings", "", "| setting | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows] + [""]


def compare_rows(runs: list[RunData]) -> list[str]:
    """One row per run: its first round's start and in-context, its last round's consolidated."""
    md = ["| run | setting | base | in context (round 0) | consolidated (last round) | good-move prob. base → last "
          "| instruction probe base → last |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        last = run.rounds()[-1] if run.rounds() else 0
        base, inctx = run.evaluation(0, "start"), run.evaluation(0, EvalKind.IN_CONTEXT)
        final = run.evaluation(last, EvalKind.CONSOLIDATED)
        good = f"{_cell(_value(base, 'good_move_prob'), True)} → {_cell(_value(final, 'good_move_prob'), True)}"
        ood0, ood1 = run.ood(0, "start"), run.ood(last, EvalKind.CONSOLIDATED)
        probe = f"{pct(*ood0[:2]) if ood0 else '-'} → {pct(*ood1[:2]) if ood1 else '-'}"
        md.append(f"| `{run.name}` | {run.label()} | {_cell(_value(base, 'pass_rate'), True)} | "
                  f"{_cell(_value(inctx, 'pass_rate'), True)} | {_cell(_value(final, 'pass_rate'), True)} | {good} | {probe} |")
    return md


def write_comparison(run_paths: list[Path], out_dir: Path) -> Path:
    """Several runs side by side: one table, one chart per metric (bars: base, in context,
    consolidated after the last round)."""
    if len(run_paths) < 2:
        raise OelError("compare needs at least two runs")
    runs = [RunData.load(p) for p in run_paths]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Comparison", "", *compare_rows(runs), ""]
    names = [r.name for r in runs]
    for key, name, percent in METRICS[:3]:
        series = {label: [] for _, label in KINDS}
        for run in runs:
            last = run.rounds()[-1] if run.rounds() else 0
            series["start policy"].append(_value(run.evaluation(0, "start"), key))
            series["in context"].append(_value(run.evaluation(0, EvalKind.IN_CONTEXT), key))
            series["consolidated"].append(_value(run.evaluation(last, EvalKind.CONSOLIDATED), key))
        if any(v for values in series.values() for v in values):
            grouped_bars(out / f"compare-{key}.png", name, names, series, name, percent=percent)
            md += [f"![{name}](compare-{key}.png)", ""]
    target = out / "compare.md"
    atomic_write_text(target, "\n".join(md) + "\n")
    return target
