"""Does consolidation bake a lesson into the weights? The move-probability probe before and after.

For a shipped lesson (examples/lessons/), on the held-out maps' start states:
  base        good_move_prob of the model, no lesson in its prompt
  in context  the same weights with the lesson in the prompt (the teacher)
  consolidated  after one round of consolidation with the lesson as the teacher's context
              (the demo preset's collection and consolidation; no lesson in the prompt)
recovered = (consolidated - base) / (in context - base), per learning rate and seed, then mean
± sd over seeds. With --eval, each consolidated model also plays the held-out maps (pass rate,
legal-move rate), and so does the base model once.

Runs are saved under --saves (one per rate and seed) and resume: rerun the same command.

    python bench/lesson_probe.py --rates 1e-4 1e-3 3e-3 --seeds 0 1 2 --eval > bench/lesson_probe.log
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from oel_engine.config import GameConfig, ModelConfig
from oel_engine.experience.items import read_experience
from oel_engine.metrics import ConsolidateStep, EvalSummary, mean_sd
from oel_engine.model.precision import cpu_name
from oel_engine.presets import build
from oel_engine.evaluation.move_probe import MoveProbe, start_states
from oel_engine.session import Engine

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="frozenlake")
    ap.add_argument("--lesson", default=str(ROOT / "examples" / "lessons" / "frozenlake-short.txt"))
    ap.add_argument("--rates", type=float, nargs="+", default=[1e-4, 1e-3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="consolidation steps (default: the demo preset's)")
    ap.add_argument("--games-per-step", type=int, default=None)
    ap.add_argument("--loss", default=None, help="topk, full or offpolicy (default: the preset's)")
    ap.add_argument("--autocast", default="off",
                    help="consolidation precision: off (float32, the default here, so that rows compare "
                         "the same numerics), auto or bf16")
    ap.add_argument("--maps", type=int, default=32, help="held-out maps whose start states are probed")
    ap.add_argument("--eval", action="store_true", help="also play the held-out maps (1 sample) with each model")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--saves", default=str(ROOT / "bench" / "saves-lesson-probe"))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    game = GameConfig(args.game)
    lesson = read_experience(args.lesson)
    engine = Engine(args.saves)
    base_config = build("demo", game, ModelConfig(model=args.model), 1)
    base_config = replace(base_config, evaluation=replace(base_config.evaluation, episodes=args.maps, samples=1))
    c = base_config.consolidation
    c = replace(c, steps=args.steps or c.steps, games_per_step=args.games_per_step or c.games_per_step,
                loss=args.loss or c.loss, autocast=args.autocast)
    print(f"CPU: {cpu_name()}; model {args.model}; lesson {args.lesson}; {args.maps} held-out start states")
    print(f"consolidation: {c.steps} steps x {c.games_per_step} games, loss {c.loss}, LoRA r{c.lora_rank}, "
          f"{c.max_new_tokens} new tokens, autocast {c.autocast}")

    engine.ensure_model(base_config.model, status=print)
    states = start_states(game, args.maps)
    probe = MoveProbe(engine.lm, 8)
    base = probe.states(states)
    taught = probe.states(states, lesson)
    print(f"base        good_move_prob {base.good_move_prob:.3f} ± {base.good_move_prob_se:.3f} (se over maps), "
          f"move mass {base.move_mass:.2f}")
    print(f"in context  good_move_prob {taught.good_move_prob:.3f} ± {taught.good_move_prob_se:.3f}, "
          f"move mass {taught.move_mass:.2f}")
    gain = taught.good_move_prob - base.good_move_prob
    results = {"cpu": cpu_name(), "lesson": args.lesson, "maps": args.maps, "base": base.summary(),
               "in_context": taught.summary(), "runs": []}
    if args.eval:
        results["base_eval"] = held_out(engine, "base-eval", base_config, "eval_base")
        print(f"base held-out: {results['base_eval']}")

    for lr in args.rates:
        recovered = []
        for seed in args.seeds:
            config = replace(base_config, seed=seed, consolidation=replace(c, learning_rate=lr))
            name = f"lr{lr:g}-seed{seed}-{c.loss}-{c.steps}x{c.games_per_step}"
            with engine.session(name, config, status=lambda _: None) as s:
                s.use_experience_file(args.lesson)
                runner = s.runner()
                for stage in runner.stages:
                    if stage.name in ("extract", "collect", "consolidate"):
                        runner.run_stage(stage, 0)
                runner.ctx.prepare_policy(1)  # the consolidated model (a resumed run merges its adapter)
                after = probe.states(states)
                after_taught = probe.states(states, lesson)
                trained = s.report().metrics.of(ConsolidateStep, round=0)
            row = {"lr": lr, "seed": seed, "consolidated": after.summary(), "consolidated_with_lesson": after_taught.summary(),
                   "recovered": (after.good_move_prob - base.good_move_prob) / gain if gain else None,
                   "train_reverse_kl": [trained[0].reverse_kl, trained[-1].reverse_kl] if trained else None}
            if args.eval:
                row["eval"] = held_out(engine, name, config, "eval_consolidated")
            results["runs"].append(row)
            recovered.append(row["recovered"])
            print(f"lr {lr:g} seed {seed}: consolidated {after.good_move_prob:.3f} ± {after.good_move_prob_se:.3f}, "
                  f"with the lesson {after_taught.good_move_prob:.3f}, training reverse KL "
                  f"{row['train_reverse_kl'][0]:.3f} -> {row['train_reverse_kl'][1]:.3f}, recovered {row['recovered']:.0%} of the gain"
                  + (f"; held-out {row['eval']}" if args.eval else ""))
        mean, sd = mean_sd(recovered)
        print(f"lr {lr:g}: recovered {mean:.0%} ± {sd:.0%} of the in-context gain over {len(recovered)} seeds")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def held_out(engine: Engine, name: str, config, stage: str) -> dict:
    """Pass rate and legal-move rate of one evaluation stage (run on that run's model)."""
    with engine.session(name, config, status=lambda _: None) as s:
        runner = s.runner()
        runner.run_stage(next(st for st in runner.stages if st.name == stage), 0)
        summary = s.report().metrics.last(EvalSummary, round=0, kind=stage.removeprefix("eval_"))
    return {"pass_rate": summary.pass_rate, "legal_action_rate": summary.legal_action_rate,
            "mean_response_tokens": summary.mean_response_tokens}


if __name__ == "__main__":
    main()
