"""Does the small model's own experience carry any signal? The probe in context, per kind of context.

On the embedded model the experience it extracts from its own games left the good-move
probability where it was or lower (docs/results.md, claims (a)-(d)). This gives it a fair try:
each variant below writes (or collects) the teacher's contexts with the real extraction stage
(K runs x N steps on training maps, the demo preset's sizes), then the probe reads the held-out
start states with each run's context in the prompt. Reported: the mean good-move probability
over runs, its difference from the base (no context) with the standard error over maps of the
paired per-map differences, the items written, and the shipped lesson as a yardstick.

    python bench/own_experience.py > bench/own_experience.log 2>&1     # about 10 minutes on 2 cores

Variants:
  own               the demo preset's extraction (free text), the model's own games
  own-example       the same with a worked example of a toy task (a vending machine) first
  own-structured    structured items ("- EXPERIENCE ITEM:"), with the worked example
  person-won        what the extractor writes reading games a person played and won (free text,
                    with the example; only those games, step 0)
  raw-own           the raw trajectories of the model's own extraction games (the paper's baseline)
  raw-person-won    the raw trajectories of the person's won games
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

from oel_engine.config import GameConfig, ModelConfig  # noqa: E402
from oel_engine.model.precision import cpu_description  # noqa: E402
from oel_engine.presets import build  # noqa: E402

PERSON_SEEDS = range(800_000, 800_004)  # training maps a "person" (a shortest-path player) wins
LESSON = ROOT / "examples" / "lessons" / "frozenlake-short.txt"


def person_games(game: GameConfig):
    """Won games on training maps, played move by move along a shortest safe path, as a person's."""
    from oel_engine.games.solve import good_moves
    from oel_engine.play.policies import ScriptedPolicy
    from oel_engine.play.rollout import play_episodes
    from oel_engine.play.trajectory import PolicyInfo

    games = play_episodes(game, list(PERSON_SEEDS), ScriptedPolicy(lambda r: f"[{good_moves(r.board)[0]}]"))
    for i, e in enumerate(games):
        assert e.outcome.success
        e.policy, e.stage, e.round, e.episode_id = PolicyInfo("human"), "play", 0, f"person-won-{i}"
    return games


def contexts(engine, name: str, config, game, person: bool) -> tuple[list[str], list[str], dict]:
    """Run the extraction of run `name`; returns (extracted contexts at the consolidation step or
    step 0 for a person's games, raw-trajectory contexts, item counts)."""
    from oel_engine.events import StopFlag
    from oel_engine.experience.extraction import trajectories_context

    with engine.session(name, config, status=lambda _: None) as s:
        if person and not s.store.episode_rows():
            s.store.add_episodes(person_games(game))
        s.run("extract", lambda e: None, StopFlag())
        ctx, x = s.runner().ctx, s.config.extraction
        if person:
            states = [s.art.experience.load_state(0, k, 0) for k in range(x.runs)]
            texts = [st.text(x.format) for st in states]
            humans = s.store.episodes(where=lambda row: row.get("policy") == "human")
            raw = [trajectories_context(humans, x.budget_tokens, ctx.count_tokens)]
        else:
            states = [s.art.experience.load_state(0, k, x.consolidation_step) for k in range(x.runs)]
            texts = [st.text(x.format) for st in states]
            raw = [ctx.raw_trajectories(0, k) for k in range(x.runs)]
    return texts, raw, {"items": [len(st.items) for st in states]}


def read(probe, states, texts: list[str], base) -> dict:
    """Mean probe over the contexts; the paired per-map difference from the base and its se."""
    per_map = [[] for _ in states]
    for text in texts:
        result = probe.states(states, text or None)
        for i, p in enumerate(result.per_state):
            per_map[i].append(p.on(states[i].good))
    diffs = [statistics.fmean(v) - b.on(s.good) for v, b, s in zip(per_map, base.per_state, states)]
    mean = statistics.fmean(statistics.fmean(v) for v in per_map)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    return {"good_move_prob": round(mean, 4), "minus_base": round(statistics.fmean(diffs), 4), "se": round(se, 4),
            "contexts": len(texts), "empty_contexts": sum(not t.strip() for t in texts),
            "tokens": [len(probe.lm.tokenizer(t)["input_ids"]) for t in texts]}


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=32, help="held-out start states the probe reads")
    ap.add_argument("--saves", type=Path, default=ROOT / "bench" / "saves-own-experience")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "own_experience.json")
    args = ap.parse_args()

    from oel_engine.experience.items import read_experience
    from oel_engine.evaluation.move_probe import MoveProbe, start_states
    from oel_engine.session import Engine

    game = GameConfig()
    demo = replace(build("demo", game, ModelConfig(), 1), seed=0)
    demo = replace(demo, extraction=replace(demo.extraction, curve_every=0))
    variants = {
        "own": (demo.extraction, False),
        "own-example": (replace(demo.extraction, worked_example=True), False),
        "own-structured": (replace(demo.extraction, format="structured", worked_example=True, max_new_tokens=256), False),
        "person-won": (replace(demo.extraction, worked_example=True, steps=1, include_human=True), True),
    }
    engine = Engine(args.saves)
    engine.ensure_model(demo.model, status=print)
    print(f"cpu: {cpu_description()}; probe on {args.maps} held-out start states")
    states = start_states(game, args.maps)
    probe = MoveProbe(engine.lm, 16)
    base = probe.states(states)
    results = {"cpu": cpu_description(), "base": round(base.good_move_prob, 4), "variants": {}}
    print(f"base (no context): good_move_prob {base.good_move_prob:.3f} ± {base.good_move_prob_se:.3f}")
    results["variants"]["shipped lesson (frozenlake-short.txt)"] = lesson = read(
        probe, states, [read_experience(LESSON).strip()], base)
    print(f"shipped lesson: {lesson}")
    for name, (extraction, person) in variants.items():
        texts, raw, counts = contexts(engine, name, replace(demo, extraction=extraction), game, person)
        row = {**read(probe, states, texts, base), **counts, "example": texts[0][:300]}
        results["variants"][name] = row
        print(f"{name}: {row}")
        raw_name = "raw-person-won" if person else "raw-own" if name == "own" else None
        if raw_name:
            results["variants"][raw_name] = raw_row = {**read(probe, states, raw, base), "example": raw[0][:300]}
            print(f"{raw_name}: {raw_row}")
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
