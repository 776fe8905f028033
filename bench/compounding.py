"""Rounds of a lesson: does the taught model keep getting better with nothing in its prompt, and
does it start to win?

Measure (the default): for each shipped Frozen Lake lesson and seed, a run of the teach preset
with the lesson as the teacher's context (`oel loop --preset teach --experience LESSON --seed S
--rounds R`, with a larger held-out evaluation: 32 maps x 4 samples), then per round the
held-out good-move probability (probe), legal-move rate and pass rate of the consolidated model
(nothing in its prompt) and of its teacher (the round's model with the lesson), and the random
legal-move player's row. Writes the table and charts into docs/results.md (its own section).

    python bench/compounding.py > bench/compounding.log 2>&1 &       # 2 lessons x 3 seeds x 6 rounds
    python bench/compounding.py --report-only                       # rewrite the section from the runs

Tune (--tune NAME): the same rounds read on TRAINING maps only (their start states for the
probe, their games for the pass and legal-move rates; never a held-out map), to choose what to
change before measuring: the learning rate, steps per round, games (prefixes) per step, the
loss, the student's answer length, the lesson. One seed, resumable, results in
bench/saves-compounding/tune-NAME.json.

    python bench/compounding.py --tune lr2e-3 --lr 2e-3 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig  # noqa: E402
from oel_engine.fileio import atomic_write_text  # noqa: E402
from oel_engine.model.precision import cpu_description  # noqa: E402
from oel_engine.presets import build  # noqa: E402

LESSONS = ROOT / "examples" / "lessons"
DEFAULT_LESSONS = ("frozenlake-short.txt", "frozenlake.txt")
SAVES = ROOT / "bench" / "saves-compounding"
RESULTS = ROOT / "docs" / "results.md"  # charts go to results/ beside it
TRIED = ROOT / "bench" / "compounding_tune.json"  # every --tune run, by name (training maps only)
ANSWERS = ROOT / "bench" / "answer_format.json"  # bench/answer_format.py, the shipped lessons
ANSWERS_TRIED = ROOT / "bench" / "answer_format_variants.json"  # the same, lessons written to try the format
OWN = ROOT / "bench" / "own_experience.json"  # bench/own_experience.py
BLOCK = "compounding"
# Training maps for --tune: below the held-out range and above every round's collection seeds
# (round r < 9 collects from r * 100,000), so no round plays them.
TUNE_SEED_BASE = 900_000


def run_name(lesson: str, seed: int) -> str:
    return f"{Path(lesson).stem}-s{seed}"


def measure_config(seed: int, rounds: int, maps: int, samples: int):
    # 64 games per batch: the enlarged evaluation runs 1.27x faster than at the default 32 (measured)
    config = build("teach", GameConfig(), ModelConfig(batch_size=64), rounds)
    return replace(config, seed=seed, evaluation=replace(config.evaluation, episodes=maps, samples=samples))


def measure(args) -> None:
    from oel_engine.events import StopFlag
    from oel_engine.session import Engine

    engine = Engine(args.saves)
    for lesson in args.lessons:
        for seed in args.seeds:
            name = run_name(lesson, seed)
            print(f"== {name}: {args.rounds} rounds of {lesson}, seed {seed}", flush=True)
            with engine.session(name, measure_config(seed, args.rounds, args.maps, args.samples),
                                status=lambda text: print(f"   {text}", flush=True)) as s:
                s.use_experience_file(LESSONS / lesson)
                s.run_rounds(args.rounds, lambda event: None, StopFlag())
            report(args)


# -- reading the runs ------------------------------------------------------------------------------


def per_round(saves: Path, lesson: str, seeds: list[int]) -> dict:
    """{(kind, round): {seed: EvalSummary}} of one lesson's runs."""
    from oel_engine.metrics import EvalSummary
    from oel_engine.report.data import RunData

    out: dict = {}
    for seed in seeds:
        path = saves / run_name(lesson, seed)
        if not path.is_dir():
            continue
        for s in RunData.load(path).log.of(EvalSummary):
            out.setdefault((str(s.kind), s.round), {})[seed] = s
    return out


def precision_line(saves: Path, lesson: str, seeds: list[int]) -> str:
    """Which precision each round trained (autocast) and sampled in, per seed: the engine measures
    the choice in the running process, so a busy machine can flip it between rounds."""
    from oel_engine.metrics import PrecisionChoice
    from oel_engine.report.data import RunData

    parts = []
    for seed in seeds:
        path = saves / run_name(lesson, seed)
        if not path.is_dir():
            continue
        chosen: dict = {}
        for record in RunData.load(path).log.of(PrecisionChoice):
            chosen.setdefault(record.use, {})[record.round] = record.choice
        training = "/".join(chosen.get("consolidation", {}).get(r, "?") for r in sorted(chosen.get("consolidation", {})))
        sampling = sorted(set(chosen.get("sampling", {}).values()))
        parts.append(f"seed {seed}: consolidation {training or '?'} by round; sampling {'+'.join(sampling) or '?'}")
    return ("Precision, as each process measured it (a borderline choice on this CPU, so it differs between "
            "seeds and rounds; `--set model.inference_dtype=...` and `--set consolidation.autocast=...` pin it): "
            + "; ".join(parts) + ".") if parts else ""


def mean_se(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0)


def pooled_pass(summaries: list) -> tuple[float, float, int]:
    """Pass rate over every game of the seeds, with its binomial standard error and game count."""
    games = sum(s.episodes * s.samples for s in summaries)
    if not games:
        return float("nan"), float("nan"), 0
    p = sum(s.pass_rate * s.episodes * s.samples for s in summaries) / games
    return p, (p * (1 - p) / games) ** 0.5, games


def random_row(saves: Path, maps: int, samples: int = 8) -> dict:
    """The random legal-move player on the same held-out maps (cached beside the runs)."""
    cache = saves / f"random-{maps}x{samples}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from oel_engine.evaluation.held_out import evaluate
    from oel_engine.play.policies import RandomPolicy
    from oel_engine.evaluation.move_probe import held_out_probe, start_states

    result, _ = evaluate(GameConfig(), RandomPolicy(0), maps, samples)
    summary = result.summary()
    played = maps * samples
    row = {"pass_rate": summary["pass_rate"], "pass_rate_se": (summary["pass_rate"] * (1 - summary["pass_rate"]) / played) ** 0.5,
           "legal_action_rate": summary["legal_action_rate"], "games": played,
           "good_move_prob": held_out_probe(None, start_states(GameConfig(), maps)).good_move_prob}
    saves.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(row) + "\n")
    return row


def table(lesson: str, data: dict, seeds: list[int]) -> tuple[list[str], list[dict]]:
    rows, points = [], []
    head = ["| round | model | good-move prob (mean ± se over seeds) | per seed | legal moves | pass rate (pooled ± se) | games |",
            "|---|---|---|---|---|---|---|"]
    keys = sorted(data, key=lambda k: (k[1], {"base": 0, "in_context": 1, "consolidated": 2}[k[0]]))
    for kind, r in keys:
        by_seed = data[(kind, r)]
        probe = [by_seed[s].good_move_prob for s in seeds if s in by_seed and by_seed[s].good_move_prob is not None]
        legal = [by_seed[s].legal_action_rate for s in seeds if s in by_seed]
        g, g_se = mean_se(probe)
        l, l_se = mean_se(legal)
        p, p_se, games = pooled_pass([by_seed[s] for s in seeds if s in by_seed])
        label = {"base": "base", "in_context": f"teacher (round {r}'s starting model + lesson)",
                 "consolidated": "consolidated, nothing in the prompt"}[kind]
        shown_round = "-" if kind == "base" else str(r)
        per_seed = " / ".join(f"{by_seed[s].good_move_prob:.3f}" if s in by_seed and by_seed[s].good_move_prob is not None
                              else "-" for s in seeds)
        rows.append(f"| {shown_round} | {label} | {g:.3f} ± {g_se:.3f} | {per_seed} | {l:.1%} ± {l_se:.1%} | "
                    f"{p:.1%} ± {p_se:.1%} | {games} |")
        points.append({"kind": kind, "round": r, "good_move_prob": g, "good_move_prob_se": g_se, "legal": l,
                       "legal_se": l_se, "pass_rate": p, "pass_rate_se": p_se, "tokens": mean_se(
                           [by_seed[s].mean_response_tokens for s in seeds if s in by_seed])[0]})
    return head + rows, points


def chart(path: Path, lesson: str, points: list[dict], rnd: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    base = next((p for p in points if p["kind"] == "base"), None)
    for ax, key, title in zip(axes, ("good_move_prob", "legal", "pass_rate"),
                              ("good-move probability", "legal-move rate", "pass rate")):
        for kind, label, style in (("consolidated", "consolidated (nothing in the prompt)", "o-"),
                                   ("in_context", "teacher (+ lesson)", "s--")):
            mine = [p for p in points if p["kind"] == kind]
            xs = [p["round"] + (1 if kind == "consolidated" else 0) for p in mine]
            ys = [p[key] for p in mine]
            errs = [p.get(f"{key}_se", 0) for p in mine]
            if base is not None and kind == "consolidated":
                xs, ys, errs = [0] + xs, [base[key]] + ys, [base.get(f"{key}_se", 0)] + errs
            ax.errorbar(xs, ys, yerr=errs, fmt=style, capsize=3, label=label)
        baseline = {"good_move_prob": rnd["good_move_prob"], "legal": rnd["legal_action_rate"],
                    "pass_rate": rnd["pass_rate"]}[key]
        ax.axhline(baseline, color="grey", linestyle=":", label="random legal-move player")
        ax.set_title(title)
        ax.set_xlabel("model after n rounds (0 = base)")
        ax.set_ylim(0, 1 if key != "pass_rate" else max(0.15, max(p["pass_rate"] for p in points) * 1.3))
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Rounds of {lesson}: held-out Frozen Lake 3x3 (mean ± se over seeds; pass rate pooled)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def section(args) -> str:
    rnd = random_row(args.saves, args.maps)
    md = [f"## Rounds of a lesson (issue 21)", "",
          f"Written by `python bench/compounding.py` (resumable; `--report-only` rewrites this section). Each run is "
          f"`oel loop --preset teach --experience examples/lessons/LESSON --seed S --rounds {args.rounds}` with the "
          f"held-out evaluation enlarged to {args.maps} maps x {args.samples} samples (64 games per batch), seeds {', '.join(map(str, args.seeds))}. "
          "A round: the round's model plays deploy games, the teacher (the same model with the lesson in its prompt) "
          "scores the student's answers, LoRA consolidation, then the held-out evaluation of the consolidated model "
          "with nothing in its prompt. The next round starts from it, and its teacher is it with the lesson.",
          "", f"Measured on: {cpu_description()}.", "",
          f"Random legal-move player on the same {args.maps} maps ({rnd['games']} games): pass rate "
          f"{rnd['pass_rate']:.1%} ± {rnd['pass_rate_se']:.1%}, good-move probability {rnd['good_move_prob']:.3f}, "
          "legal moves 100%.", ""]
    for lesson in args.lessons:
        data = per_round(args.saves, lesson, args.seeds)
        if not data:
            md += [f"### {lesson}", "", "No run made yet.", ""]
            continue
        rows, points = table(lesson, data, args.seeds)
        md += [f"### {lesson}", "", *rows, ""]
        if line := precision_line(args.saves, lesson, args.seeds):
            md += [line, ""]
        done = {seed: max(r for (kind, r), by_seed in data.items() if kind == "consolidated" and seed in by_seed)
                for seed in args.seeds if any(seed in by_seed for (kind, _), by_seed in data.items() if kind == "consolidated")}
        if len(done) < len(args.seeds) or any(last < args.rounds - 1 for last in done.values()):
            measured = ", ".join(f"seed {seed} through round {last}" for seed, last in done.items()) or "no round finished"
            md += [f"Partial: {measured}; the rest is not measured yet (with one seed, ± 0 is one reading, not "
                   "a spread).", ""]
        path = chart(args.results.parent / "results" / f"compounding-{Path(lesson).stem}.png", lesson, points, rnd)
        if path is not None:
            md += [f"![rounds of {lesson}](results/{path.name})", ""]
    md += investigations()
    return "\n".join(md)


def investigations() -> list[str]:
    """What the answers look like, what was tried on training maps, and the model's own experience
    (the benches' JSON files, when they exist)."""
    md = []
    answers = {}
    for path in (ANSWERS, ANSWERS_TRIED):
        if path.is_file():
            answers.update(json.loads(path.read_text()))
    if answers:
        md += ["### What the answers without a valid move look like", "",
               "`python bench/answer_format.py` (24 training maps x 2 games per context, 64-token answers, the base "
               "model; lessons of `bench/lessons-tried/` with `--lessons`). Each turn's answer in one class; then, on "
               "the first-turn prompts, the teacher's (the lesson in the prompt) preference for a short bracketed answer.",
               "", "| context | answers | move, answer ended | move, then cut at 64 tokens | cut, no move | no move | "
               "move word, no brackets | P(answer opens with '[') | P(end right after '[move]') |", "|---|---|---|---|---|---|---|---|---|"]
        order = ("valid bracketed move", "bracketed move, then cut at the budget", "cut at the budget, no bracketed move",
                 "no move at all", "a move word without brackets")
        for label, row in answers.items():
            n = row["turns"]
            shares = " | ".join(f"{row['classes'].get(k, 0) / n:.0%}" for k in order)
            md.append(f"| {label} | {n} | {shares} | {row['p_open_bracket']:.3f} | {row['p_end_after_move']:.3f} |")
        md.append("")
    if TRIED.is_file():
        tried = json.loads(TRIED.read_text())
        md += ["### What was tried, read on training maps only", "",
               "`python bench/compounding.py --tune NAME [--lr X --steps T --games-per-step G --loss full]`: rounds of "
               "the teach preset with `frozenlake.txt` as the teacher's context and one change, seed 0, read after "
               "each round on 32 training maps (their start states for the probe, 2 games each; never a held-out map).",
               "", "| change | after round | student good-move prob | teacher's | move mass | legal moves | pass rate | "
               "answer tokens | answers opening with '[' |", "|---|---|---|---|---|---|---|---|---|"]
        for name, run in tried.items():
            for r in run["rounds"]:
                md.append(f"| {name} | {'base' if r['round'] == 0 else r['round']} | {r['student_good_move_prob']:.3f} | "
                          f"{r['teacher_good_move_prob']:.3f} | {r['student_move_mass']:.2f} | {r['legal_action_rate']:.1%} | "
                          f"{r['pass_rate']:.1%} | {r['mean_response_tokens']:.1f} | {r['answers_opening_with_bracket']:.1%} |")
        md.append("")
    if OWN.is_file():
        own = json.loads(OWN.read_text())
        md += ["### The model's own experience, a fair try", "",
               f"`python bench/own_experience.py`: contexts written (or collected) by the real extraction stage on "
               f"training maps (2 runs x 4 steps, the demo preset's sizes), then the probe on 32 held-out start states "
               f"with each in the prompt. Base (no context): {own['base']:.3f}. The difference is paired per map; its "
               "se is over maps (the spread between contexts, 1-2 per row, is not in it).", "",
               "| context | good-move prob | − base (± se) | contexts (empty) | what it looks like |", "|---|---|---|---|---|"]
        for name, row in own["variants"].items():
            example = " ".join(row.get("example", "").split())[:90].replace("|", "/")
            if row["empty_contexts"] == row["contexts"]:
                example = "(nothing: no item was written)"
            md.append(f"| {name} | {row['good_move_prob']:.3f} | {row['minus_base']:+.3f} ± {row['se']:.3f} | "
                      f"{row['contexts']} ({row['empty_contexts']}) | {example or '-'} |")
        md.append("")
    return md


def replace_block(path: Path, name: str, text: str) -> None:
    """Put `text` between the page's markers for `name` (appended if the page has none)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    page = path.read_text() if path.is_file() else ""
    block = f"{start}\n{text.strip()}\n{end}"
    if start in page and end in page:
        page = page[: page.index(start)] + block + page[page.index(end) + len(end):]
    else:
        page = page.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, page)


def report(args) -> None:
    replace_block(args.results, BLOCK, section(args))
    print(f"wrote the '{BLOCK}' section of {args.results}", flush=True)


# -- tuning on training maps -------------------------------------------------------------------------


def tune(args) -> None:
    """Rounds of the lesson with the given changes, read on training maps after each round."""
    from oel_engine.events import StopFlag
    from oel_engine.session import Engine

    out = args.saves / f"tune-{args.tune}.json"
    done = json.loads(out.read_text()) if out.is_file() else {"settings": vars_of(args), "rounds": []}

    def save() -> None:
        atomic_write_text(out, json.dumps(done, indent=1) + "\n")
        tried = json.loads(TRIED.read_text()) if TRIED.is_file() else {}
        tried[args.tune] = done
        atomic_write_text(TRIED, json.dumps(tried, indent=1) + "\n")

    config = build("teach", GameConfig(), ModelConfig(), max(1, args.rounds))
    c = config.consolidation
    c = replace(c, learning_rate=args.lr or c.learning_rate, steps=args.steps or c.steps,
                games_per_step=args.games_per_step or c.games_per_step, loss=args.loss or c.loss,
                renormalize=args.renormalize, max_new_tokens=args.student_tokens or c.max_new_tokens)
    config = replace(config, seed=args.seeds[0], consolidation=c)
    engine = Engine(args.saves)
    lesson = Path(args.tune_lesson)
    print(f"tune {args.tune}: {cpu_description()}; {c.steps} steps x {c.games_per_step} games, lr {c.learning_rate:g}, "
          f"loss {c.loss}{' renormalised' if c.renormalize else ''}, student answers {c.max_new_tokens} tokens, "
          f"lesson {lesson.name}", flush=True)
    with engine.session(f"tune-{args.tune}", config, status=lambda text: None) as s:
        s.use_experience_file(lesson)
        runner, experience = s.runner(on_event=lambda e: None, stop=StopFlag()), s.art.experience.external()[0]
        if not done["rounds"]:
            done["rounds"].append({"round": 0, **training_reading(runner.ctx.lm, experience, args)})
            save()
            print(f"  base: {done['rounds'][-1]}", flush=True)
        for r in range(len(done["rounds"]) - 1, args.rounds):
            for stage in runner.stages:
                if stage.name in ("extract", "collect", "consolidate"):
                    runner.run_stage(stage, r)
            runner.ctx.prepare_policy(r + 1)
            done["rounds"].append({"round": r + 1, **training_reading(runner.ctx.lm, experience, args)})
            save()
            print(f"  after round {r}: {done['rounds'][-1]}", flush=True)


def vars_of(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def training_reading(lm, experience: str, args) -> dict:
    """The probe (student and teacher) on training maps' start states, and the student's games there."""
    from oel_engine.evaluation.held_out import episode_metrics
    from oel_engine.games import make_game
    from oel_engine.games.solve import good_moves
    from oel_engine.play.policies import ModelPolicy
    from oel_engine.evaluation.move_probe import MoveProbe, state_of, summarise
    from oel_engine.play.rollout import play_episodes

    game = GameConfig()
    seeds, states = [], []
    for seed in range(TUNE_SEED_BASE, TUNE_SEED_BASE + 10 * args.maps):
        g = make_game(game)
        g.reset(seed)
        if good_moves(g.board()) and len(states) < args.maps:
            seeds.append(seed)
            states.append(state_of(g))
    probe = MoveProbe(lm, 16)
    student = probe.states(states)
    teacher = probe.states(states, experience)
    sampling = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=64)
    games = []
    for sample in range(args.samples):
        games += play_episodes(game, seeds, ModelPolicy(lm, sampling, seed=sample), sampling_seed=10_000 + sample)
    played = episode_metrics(games)
    answers = [t for e in games for t in e.turns]
    opens = sum(t.response.lstrip().startswith("[") for t in answers) / max(1, len(answers))
    return {"student_good_move_prob": round(student.good_move_prob, 4), "teacher_good_move_prob": round(teacher.good_move_prob, 4),
            "student_move_mass": round(student.move_mass, 4), "pass_rate": round(played["pass_rate"], 4),
            "legal_action_rate": round(played["legal_action_rate"], 4),
            "mean_response_tokens": round(played["mean_response_tokens"], 1), "answers_opening_with_bracket": round(opens, 4),
            "games": len(games)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lessons", nargs="+", default=list(DEFAULT_LESSONS), help="files in examples/lessons/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--maps", type=int, default=32, help="held-out maps (measure) or training maps (tune)")
    ap.add_argument("--samples", type=int, default=4, help="sampling seeds per map")
    ap.add_argument("--saves", type=Path, default=SAVES)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--tune", default=None, help="a name: read the rounds on training maps only, with the changes below")
    ap.add_argument("--tune-lesson", default=str(LESSONS / "frozenlake.txt"))
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--games-per-step", type=int, default=None)
    ap.add_argument("--loss", default=None, help="topk, full or offpolicy")
    ap.add_argument("--renormalize", action="store_true")
    ap.add_argument("--student-tokens", type=int, default=None, help="longest student answer while consolidating")
    args = ap.parse_args()
    if args.tune:
        tune(args)
    elif args.report_only:
        report(args)
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
