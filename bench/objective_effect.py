"""What stating the objective in the turn prompt (GameConfig.objective, as the reference's turn
prompt does) does to the demo's base numbers, before the demo preset would change: the embedded
model on the demo's held-out maps and sampling settings, the same sampling seeds, with and
without the sentence; the move-probability probe on the maps' start states too.

    python bench/objective_effect.py --samples 4 --out bench/objective_effect.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oel_engine.config import GameConfig, ModelConfig, eval_seeds  # noqa: E402
from oel_engine.evaluation.held_out import episode_metrics  # noqa: E402
from oel_engine.model.loader import load_language_model  # noqa: E402
from oel_engine.play.policies import ModelPolicy  # noqa: E402
from oel_engine.model.precision import cpu_description  # noqa: E402
from oel_engine.presets import build  # noqa: E402
from oel_engine.evaluation.move_probe import held_out_probe, start_states  # noqa: E402
from oel_engine.play.rollout import play_episodes  # noqa: E402

METRICS = ("pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    demo = build("demo", GameConfig(), ModelConfig(), 1)
    lm = load_language_model(ModelConfig(batch_size=64))
    print(f"cpu: {cpu_description()}; model={lm.name}; {args.samples} samples x {args.episodes} maps", flush=True)
    out = {"cpu": cpu_description(), "model": lm.name, "samples": args.samples, "episodes": args.episodes}
    for objective in (False, True):
        game = replace(demo.game, objective=objective)
        started = time.perf_counter()
        rows = []
        for sample in range(args.samples):
            episodes = play_episodes(game, eval_seeds(args.episodes), ModelPolicy(lm, demo.evaluation.sampling, sample),
                                     concurrent=64, sampling_seed=sample)
            rows.append(episode_metrics(episodes))
        probe = held_out_probe(lm, start_states(game, args.episodes))
        key = "objective" if objective else "without"
        out[key] = {"samples": rows, "good_move_prob": probe.good_move_prob,
                    "good_move_prob_se": probe.summary().get("good_move_prob_se"),
                    "seconds": round(time.perf_counter() - started, 1)}
        print(f"{key}: probe {probe.good_move_prob:.4f}; " + ", ".join(
            f"{m} {statistics.fmean(r[m] for r in rows):.3f}" for m in METRICS), flush=True)
    for metric in METRICS:
        a = [r[metric] for r in out["without"]["samples"]]
        b = [r[metric] for r in out["objective"]["samples"]]
        sd = ((statistics.variance(a) + statistics.variance(b)) / 2) ** 0.5 if len(a) > 1 else 0.0
        out.setdefault("gap_in_spreads", {})[metric] = round((statistics.fmean(b) - statistics.fmean(a)) / (sd or 1e-9), 2)
    out["probe_difference"] = round(out["objective"]["good_move_prob"] - out["without"]["good_move_prob"], 4)
    print(json.dumps({"gap_in_spreads": out["gap_in_spreads"], "probe_difference": out["probe_difference"]}))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
