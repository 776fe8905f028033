"""Choose the LoRA learning rate by measurement on the embedded model.

For each learning rate: a fresh LoRA adapter, a few consolidation steps on prefixes from
Frozen Lake games, and after every step the full reverse KL(student || teacher) on held-out
prefixes with fixed responses (sampled once from the starting model). The teacher sees a fixed
experience text. Prints one row per learning rate and `best_lr=...` (the lowest final held-out
KL among rates whose KL never rose above its start).

    python bench/lr_sweep.py --rates 1e-4 3e-4 1e-3 3e-3 --steps 4
"""

from __future__ import annotations

import argparse
import sys
import time

from oel_engine.config import ConsolidationConfig, GameConfig, ModelConfig, SamplingConfig
from oel_engine.consolidation.trainer import Distiller, Prefix
from oel_engine.model.loader import load_language_model
from oel_engine.play.policies import ModelPolicy
from oel_engine.play.rollout import play_episodes

EXPERIENCE = "\n".join([
    "- EXPERIENCE ITEM: The player P starts at the top-left corner and the goal G is at the bottom-right; moving [up] or [left] from the start hits the wall.",
    "- EXPERIENCE ITEM: Falling into a hole H ends the game; look at the board and step only onto empty squares.",
    "- EXPERIENCE ITEM: Answer with exactly one move in square brackets, such as [down] or [right]; an answer without a move is invalid.",
])


def turn_prefixes(episodes, tag):
    return [Prefix(t.prompt, EXPERIENCE, f"{tag}{e.seed}", e.seed * 10 + t.index) for e in episodes for t in e.turns]


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prefixes", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--autocast", default="auto", help="auto (as the demo preset: bf16 only where measured faster), bf16 or off")
    ap.add_argument("--model", default="embedded", help="embedded, a Hugging Face id, or a local folder")
    args = ap.parse_args()

    lm = load_language_model(ModelConfig(model=args.model))
    policy = ModelPolicy(lm, SamplingConfig(max_new_tokens=args.max_new_tokens), seed=0)
    train = turn_prefixes(play_episodes(GameConfig(), list(range(0, 12)), policy), "t")[: args.prefixes]
    held = turn_prefixes(play_episodes(GameConfig(), list(range(100, 112)), policy), "h")[: args.prefixes]
    base_state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    print(f"{len(train)} training prefixes, {len(held)} held-out prefixes, {args.steps} steps per rate")
    results = []
    for lr in args.rates:
        lm.model.load_state_dict(base_state)
        cfg = ConsolidationConfig(learning_rate=lr, max_new_tokens=args.max_new_tokens, micro_batch=4,
                                  autocast=args.autocast, gradient_checkpointing="off")
        d = Distiller(lm, cfg)
        fixed = d.sample(held)
        curve = [d.evaluate_kl(held, fixed)]
        started = time.perf_counter()
        for _ in range(args.steps):
            m = d.step(train)
            curve.append(d.evaluate_kl(held, fixed))
        seconds = (time.perf_counter() - started) / args.steps
        stable = max(curve[1:]) <= curve[0]
        results.append((lr, curve, stable))
        print(f"lr={lr:.0e}  held-out reverse KL per step: {' '.join(f'{c:.4f}' for c in curve)}  "
              f"final/start={curve[-1] / curve[0]:.3f}  topk_mass={m['topk_mass']:.3f}  {seconds:.1f} s/step  stable={stable}")
        lm.model = d.peft.unload()  # drop the adapter, back to the base weights
        lm.generator.model = lm.model
    candidates = [r for r in results if r[2]] or results
    best = min(candidates, key=lambda r: r[1][-1])
    print(f"best_lr={best[0]:.0e}")


if __name__ == "__main__":
    main()
