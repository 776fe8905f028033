"""Does sampling on a bf16 copy change the results? bf16 vs float32 on the same weights.

The engine samples and probes on a bf16 copy of the float32 weights where the CPU measures bf16
faster (`ModelConfig.inference_dtype=auto`). This plays the held-out evaluation `--samples`
times in each precision (the demo's 32 maps and sampling settings, the same sampling seeds) and
reads the move-probability probe with and without a lesson, then prints each metric's mean and
spread per precision and the gap in units of the sampling spread.

    python bench/precision_effect.py --samples 4 --out bench/precision_effect.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig, eval_seeds
from oel_engine.evaluation.held_out import episode_metrics
from oel_engine.model.lm import LanguageModel
from oel_engine.model.loader import load_language_model
from oel_engine.play.policies import ModelPolicy
from oel_engine.model.precision import cpu_description
from oel_engine.evaluation.move_probe import held_out_probe, start_states
from oel_engine.play.rollout import play_episodes

LESSON = Path(__file__).resolve().parent.parent / "examples" / "lessons" / "frozenlake-short.txt"
METRICS = ("pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    game = GameConfig(name="frozenlake")
    sampling = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=64)
    bf16 = load_language_model(ModelConfig(inference_dtype="bf16"))
    fp32 = LanguageModel(bf16.model, bf16.tokenizer, bf16.name, replace(bf16.config, inference_dtype="float32"))
    print(f"cpu: {cpu_description()}; model={bf16.name}; {args.samples} samples x {args.episodes} maps")
    lesson = LESSON.read_text()
    states = start_states(game, args.episodes)
    out = {"cpu": cpu_description(), "samples": args.samples, "episodes": args.episodes}
    for name, lm in (("float32", fp32), ("bf16", bf16)):
        started = time.perf_counter()
        rows = []
        for sample in range(args.samples):
            episodes = play_episodes(game, eval_seeds(args.episodes), ModelPolicy(lm, sampling, sample),
                                     concurrent=32, sampling_seed=sample)
            rows.append(episode_metrics(episodes))
        probe = {"base": held_out_probe(lm, states).good_move_prob,
                 "lesson": held_out_probe(lm, states, lesson).good_move_prob}
        out[name] = {"samples": rows, "probe": probe, "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: {out[name]['seconds']} s; probe base {probe['base']:.4f}, with lesson {probe['lesson']:.4f}")
    print(f"{'metric':22s} {'float32':>16s} {'bf16':>16s}  gap/spread")
    for metric in METRICS:
        a = [r[metric] for r in out["float32"]["samples"]]
        b = [r[metric] for r in out["bf16"]["samples"]]
        # the sampling spread: the within-precision standard deviation, pooled
        sd = ((statistics.variance(a) + statistics.variance(b)) / 2) ** 0.5 if len(a) > 1 else 0.0
        sd = sd or 1e-9
        gap = (statistics.fmean(b) - statistics.fmean(a)) / sd
        out.setdefault("gaps", {})[metric] = round(gap, 2)
        print(f"{metric:22s} {statistics.fmean(a):8.3f} ± {statistics.stdev(a) if len(a) > 1 else 0:5.3f} "
              f"{statistics.fmean(b):8.3f} ± {statistics.stdev(b) if len(b) > 1 else 0:5.3f}  {gap:+.2f}")
    for key in ("base", "lesson"):
        diff = out["bf16"]["probe"][key] - out["float32"]["probe"][key]
        print(f"probe {key:6s} bf16 - float32 = {diff:+.4f}")
    effect = out["float32"]["probe"]["lesson"] - out["float32"]["probe"]["base"]
    print(f"(the lesson's effect on the probe in float32: {effect:+.4f})")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
