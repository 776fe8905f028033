"""The move probe's cost: the answers' token tree against the single-token read it replaced.

Before 2026-12-07 the probe appended "[" to each prompt and read one next-token distribution
(which needs every move to be one token after "[": true of SmolLM2, not of Qwen). Now it reads
every spelling of every move, closed by "]", as a token tree after the prompt (`all`), or the four
bare words (`words`, the old numbers). The baseline is that old read, written out here, on the
same weights, prompts and batch, timed in the same process, rounds interleaved; medians printed.

    python bench/probe.py --maps 64 --batch 64                      # student prompts, Frozen Lake
    python bench/probe.py --maps 64 --batch 64 --experience examples/lessons/frozenlake-short.txt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from oel_engine.config import GameConfig, ModelConfig
from oel_engine.evaluation.move_probe import MoveProbe, start_states
from oel_engine.experience.items import read_experience
from oel_engine.games import MOVES
from oel_engine.model.loader import load_language_model
from oel_engine.model.precision import cpu_description
from oel_engine.play.prompts import insert_experience


def single_token_read(lm, prompts, batch: int) -> list[dict[str, float]]:
    """The probe as it was: "[" appended, one forward per batch of distinct prompts, the four move
    tokens renormalised."""
    encode = lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"]
    opening, move_ids = encode("["), [encode(m)[0] for m in MOVES]
    sequences = [tuple(lm.encode_chat(p) + opening) for p in prompts]
    distinct = list(dict.fromkeys(sequences))
    read = {}
    for start in range(0, len(distinct), batch):
        chunk = distinct[start:start + batch]
        on_moves = torch.softmax(lm.generator.next_token_logits(chunk), -1)[:, move_ids]
        for seq, row in zip(chunk, (on_moves / on_moves.sum(-1, keepdim=True)).tolist()):
            read[seq] = dict(zip(MOVES, row))
    return [read[s] for s in sequences]


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="frozenlake")
    ap.add_argument("--maps", type=int, default=64, help="held-out start states")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--experience", type=Path, default=None, help="read the teacher's prompts with this file")
    ap.add_argument("--inference-dtype", default="auto", help="auto, bf16 or float32")
    args = ap.parse_args()
    lm = load_language_model(ModelConfig(inference_dtype=args.inference_dtype, batch_size=args.batch))
    states = start_states(GameConfig(name=args.game), args.maps)
    experience = read_experience(args.experience) if args.experience else None
    prompts = [insert_experience(s.prompt, experience) for s in states]
    print(f"cpu: {cpu_description()}")
    print(f"model={lm.name} weights={lm.inference_precision.choice} game={args.game} states={len(states)} "
          f"distinct prompts={len({str(p) for p in prompts})} batch={args.batch} experience={args.experience}")
    probes = {"words": MoveProbe(lm, args.batch, "words"), "all": MoveProbe(lm, args.batch, "all")}
    for name, probe in probes.items():
        print(f"{name}: {len(probe.map.tree.tokens)} tree tokens after each prompt, {len(probe.map.columns)} columns read")
    sides = {"single-token": lambda: single_token_read(lm, prompts, args.batch),
             **{name: (lambda p=p: p.read(prompts)) for name, p in probes.items()}}
    for run in sides.values():  # warm every path once (a first call pays for kernels and the root cache)
        run()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, run in sides.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    base = statistics.median(seconds["single-token"])
    for name, times in seconds.items():
        print(f"{name:>12}: median {statistics.median(times):6.2f} s over {args.rounds} rounds "
              f"({', '.join(f'{t:.2f}' for t in times)}); ratio to single-token {statistics.median(times) / base:.2f}")


if __name__ == "__main__":
    main()
