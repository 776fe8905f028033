"""What the embedded model's answers look like, and what a lesson in the prompt does to them.

Issue 21's question before any change to the training: the good-move probability compounds over
rounds of a lesson but the pass rate stays 0%, so what do the answers without a valid bracketed
move look like, does the teacher (the lesson in its prompt) prefer short bracketed answers at
all, and what does the 64-token answer budget cut off? Everything here is read on TRAINING maps
(seeds below the held-out range), never on the held-out ones.

    python bench/answer_format.py                       # base model, both Frozen Lake lessons
    python bench/answer_format.py --adapter-run NAME    # a run's newest consolidated model too

Prints, per context (no lesson, each lesson): answer classes over every turn played, examples
of each class, and the forced-choice numbers of the teacher and the student on the turn prompts:
P(answer opens with "["), P(end right after "[move]"), and log p of the short answer "[move]<end>".
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oel_engine.games.actions import parse_action  # noqa: E402
from oel_engine.config import GameConfig, ModelConfig, SamplingConfig  # noqa: E402
from oel_engine.experience.items import read_experience  # noqa: E402
from oel_engine.games import MOVES  # noqa: E402

LESSONS = ROOT / "examples" / "lessons"
TRAIN_SEED = 700_000  # training maps: below the held-out range, apart from any round's collection seeds
MOVE_WORD = re.compile(r"\b(up|down|left|right)\b", re.IGNORECASE)
BRACKETED = re.compile(r"\[([^\]]{1,40})\]")


def classify(text: str, finished: bool) -> str:
    """One answer's class: how it fails to give a move, or that it gives one."""
    if parse_action(text):
        return "valid bracketed move" if finished else "bracketed move, then cut at the budget"
    if not finished:
        return "cut at the budget, no bracketed move"
    if BRACKETED.search(text):
        return "brackets around something else"
    if MOVE_WORD.search(text):
        return "a move word without brackets"
    return "no move at all"


def cpu_line() -> str:
    import platform

    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags"))
        keep = [f for f in flags if f.startswith(("avx", "amx"))]
        return f"{model}; {' '.join(keep)}"
    except (OSError, StopIteration):
        return platform.processor()


def play_turns(lm, game: GameConfig, seeds: list[int], experience: str | None, sampling: SamplingConfig,
               samples: int) -> list[dict]:
    """Every turn of `samples` games per map: its response, whether it ended before the budget."""
    from oel_engine.play.policies import ModelPolicy
    from oel_engine.play.rollout import play_episodes

    rows = []
    for s in range(samples):
        policy = ModelPolicy(lm, sampling, seed=s)
        episodes = play_episodes(game, seeds, policy, experience=experience, sampling_seed=1000 + s)
        for e in episodes:
            for t in e.turns:
                finished = t.response_tokens < sampling.max_new_tokens
                rows.append({"seed": e.seed, "turn": t.index, "response": t.response, "tokens": t.response_tokens,
                             "finished": finished, "class": classify(t.response, finished), "won": e.outcome.success,
                             "prompt": t.prompt})
    return rows


def training_start(game: GameConfig, seed: int) -> list[dict]:
    """The plain (no experience) first-turn prompt of a training map."""
    from oel_engine.games import make_game
    from oel_engine.evaluation.move_probe import state_of

    g = make_game(game)
    g.reset(seed)
    return state_of(g).prompt


def short_answer_scores(lm, prompts: list[list[dict]], experience: str | None) -> dict:
    """On each prompt (with `experience` inserted): P(first token is '['), and for each move the
    log-probability of the whole short answer '[move]' followed by the end token; the mean of
    the best move's, and P(end | '[move]') averaged over moves."""
    import torch

    from oel_engine.play.prompts import insert_experience

    tok = lm.tokenizer
    eos = lm.eos_token_ids()[0]
    opening = tok("[", add_special_tokens=False)["input_ids"]
    first_open, best_short, end_after = [], [], []
    model = lm.inference_model()
    for prompt in prompts:
        context = lm.encode_chat(insert_experience(prompt, experience))
        seqs = [context + tok(f"[{m}]", add_special_tokens=False)["input_ids"] + [eos] for m in MOVES]
        longest = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), longest), eos, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        first_open.append(float(logp[0, len(context) - 1, opening[0]].exp()))
        per_move = []
        for i, s in enumerate(seqs):
            answer = range(len(context), len(s))
            per_move.append(sum(float(logp[i, p - 1, s[p]]) for p in answer))
            end_after.append(float(logp[i, len(s) - 2, eos].exp()))
        best_short.append(max(per_move))
    return {"p_open_bracket": statistics.fmean(first_open), "logp_best_short_answer": statistics.fmean(best_short),
            "p_end_after_move": statistics.fmean(end_after)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=24, help="training maps")
    ap.add_argument("--samples", type=int, default=2, help="games per map and context")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--examples", type=int, default=3, help="answers shown per class")
    ap.add_argument("--adapter", default=None, help="a PEFT adapter folder (e.g. a merged run's round)")
    ap.add_argument("--lessons", nargs="*", default=["frozenlake-short.txt", "frozenlake.txt"],
                    help="experience files to put in the prompt (a name in examples/lessons/ or a path)")
    ap.add_argument("--no-plain", action="store_true", help="skip the context without a lesson")
    ap.add_argument("--out", default=None, help="write the per-context summary as JSON here")
    args = ap.parse_args()

    from oel_engine.model.loader import load_language_model

    print(f"cpu: {cpu_line()}")
    lm = load_language_model(ModelConfig(adapter=args.adapter))
    game = GameConfig()
    seeds = [TRAIN_SEED + i for i in range(args.maps)]
    sampling = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=args.max_new_tokens)
    contexts = {} if args.no_plain else {"no lesson": None}
    for name in args.lessons:
        path = Path(name) if Path(name).is_file() else LESSONS / name
        contexts[path.name] = read_experience(path).strip()
    first_prompts = [training_start(game, seed) for seed in seeds]
    summary = {}
    for label, experience in contexts.items():
        rows = play_turns(lm, game, seeds, experience, sampling, args.samples)
        classes: dict[str, list[dict]] = {}
        for r in rows:
            classes.setdefault(r["class"], []).append(r)
        print(f"\n== {label}: {len(rows)} turns, {sum(r['tokens'] for r in rows) / len(rows):.1f} tokens per answer, "
              f"{sum(1 for r in rows if r['class'].startswith('valid'))} valid ==")
        for name, members in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            print(f"  {name}: {len(members)} ({len(members) / len(rows):.0%})")
            for r in members[: args.examples]:
                print(f"      {json.dumps(r['response'][:200])}")
        scores = short_answer_scores(lm, first_prompts, experience)
        print(f"  on the first-turn prompts: P(answer opens with '[') {scores['p_open_bracket']:.3f}; "
              f"P(end right after '[move]') {scores['p_end_after_move']:.3f}; "
              f"log p of the best short answer '[move]<end>' {scores['logp_best_short_answer']:.2f}")
        summary[label] = {"turns": len(rows), "classes": {k: len(v) for k, v in classes.items()},
                          "mean_tokens": sum(r["tokens"] for r in rows) / len(rows), **scores}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
