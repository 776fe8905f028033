"""What the tests share, in one place: tiny models, small configurations, solutions found by
search, ways to run the CLI, and the fakes (`fake_engine.py`, `worker_fakes.py`). No test file
imports another test file."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from oel_engine.config import (
    ConsolidationConfig,
    EvalConfig,
    ExtractionConfig,
    GameConfig,
    LoopConfig,
    ModelConfig,
    SamplingConfig,
)
from oel_engine.consolidation.trainer import Prefix
from oel_engine.events import Progress, StopFlag
from oel_engine.games import make_game
from oel_engine.model.lm import LanguageModel
from oel_engine.play.prompts import turn_messages
from oel_engine.round import RoundRunner
from oel_engine.run.loop_config import open_loop_run

from .solutions import frozenlake_solution, sokoban_solution
from .tiny import (
    CHAT_TEMPLATE,
    CORPUS,
    build_qwen_like_tokenizer,
    build_tiny_model,
    build_tiny_qwen3,
    build_tiny_tokenizer,
)

__all__ = ["CHAT_TEMPLATE", "CORPUS", "EXPERIENCE", "SMALL", "build_qwen_like_tokenizer", "build_tiny_model",
           "build_tiny_qwen3", "build_tiny_tokenizer",
           "distill_config", "folder_config", "frozenlake_solution", "last_json", "new_lm", "oel", "oel_many", "prefixes",
           "run_rounds", "sokoban_solution", "stop_at", "tiny_config", "turn_prompts"]

# -- small configurations and models ------------------------------------------------------------

SMALL = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=6)


def tiny_config(rounds=1):
    return LoopConfig(
        game=GameConfig(),
        model=ModelConfig(model="tiny", batch_size=8),
        deploy=SMALL,
        extraction=ExtractionConfig(runs=2, steps=2, budget_tokens=200, max_new_tokens=12, curve_every=1, curve_episodes=2,
                                    format="unstructured"),
        consolidation=ConsolidationConfig(steps=2, games_per_step=2, max_new_tokens=6, micro_batch=4, top_k=16,
                                          lora_rank=4, lora_alpha=8, learning_rate=1e-2,
                                          target_modules=("q_proj", "v_proj")),
        evaluation=EvalConfig(episodes=3, samples=2, sampling=SMALL),
        rounds=rounds,
        preset="custom",
    )


def new_lm(tokenizer, inference="float32"):
    # float32 sampling unless asked: `auto` would depend on the CPU the tests run on
    return LanguageModel(build_tiny_model(len(tokenizer), seed=3, init_range=0.2), tokenizer, "tiny",
                         ModelConfig(model="tiny", batch_size=8, inference_dtype=inference))


def folder_config(folder, rounds=2):
    return replace(tiny_config(rounds), model=ModelConfig(model=str(folder), batch_size=8, device="cpu"))


def run_rounds(root, name, tokenizer, config=None, rounds=1):
    store, config = open_loop_run(root, name, config)
    try:
        RoundRunner(store, config, new_lm(tokenizer)).run(rounds)
    finally:
        store.close()


def stop_at(stage, n):
    """An event sink that sets the returned flag at the n-th Progress event of `stage`."""
    stop, seen = StopFlag(), {"n": 0}

    def on_event(event):
        if isinstance(event, Progress) and event.stage == stage:
            seen["n"] += 1
            if seen["n"] == n:
                stop.set()

    return on_event, stop


# -- consolidation inputs -------------------------------------------------------------------------

EXPERIENCE = "- EXPERIENCE ITEM: Holes end the game; walk around them.\n- EXPERIENCE ITEM: The goal is bottom-right."


def prefixes(seeds, experience=EXPERIENCE, moves=(0, 1)):
    out = []
    for seed in seeds:
        game = make_game(GameConfig())
        game.reset(seed)
        path = frozenlake_solution(game.board())
        for n in moves:
            g = make_game(GameConfig())
            g.reset(seed)
            for move in path[:n]:
                g.step(f"[{move}]")
            out.append(Prefix(turn_messages(g.player_description, g.messages), experience, f"g{seed}", seed * 10 + n))
    return out


def distill_config(**kw):
    base = dict(steps=3, learning_rate=1e-2, max_new_tokens=8, micro_batch=3, top_k=32, lora_rank=8, lora_alpha=16,
                target_modules=("q_proj", "v_proj", "o_proj", "up_proj", "down_proj"))
    base.update(kw)
    return ConsolidationConfig(**base)


def turn_prompts(lm, seeds, moves_played=0):
    """Encoded turn prompts of several games, each after `moves_played` moves."""
    prompts = []
    for seed in seeds:
        game = make_game(GameConfig())
        game.reset(seed)
        for move in frozenlake_solution(game.board())[:moves_played]:
            game.step(f"[{move}]")
        prompts.append(lm.encode_chat(turn_messages(game.player_description, game.messages)))
    return prompts


# -- the CLI as a user runs it ----------------------------------------------------------------------

def oel(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "oel_engine.cli", *args], capture_output=True, text=True, timeout=timeout)


# several commands in one process: `main()` as the `oel` script runs it, each command's output apart
_MANY = """
import contextlib, io, json, sys
from oel_engine.cli.main import main
for args in json.loads(sys.stdin.read()):
    sys.argv = ["oel", *args]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
    print(json.dumps({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
"""


def oel_many(*commands: list[str], timeout=600) -> list[subprocess.CompletedProcess]:
    """`oel` commands run one after another in one Python process (torch and transformers are
    imported once: ~9 s a process here); one result each."""
    res = subprocess.run([sys.executable, "-c", _MANY], input=json.dumps([list(c) for c in commands]),
                         capture_output=True, text=True, timeout=timeout)
    results = [json.loads(line) for line in res.stdout.splitlines() if line.startswith('{"returncode"')]
    assert results, f"the commands did not run: {res.stderr[-2000:]}"
    return [subprocess.CompletedProcess(c, r["returncode"], r["stdout"], r["stderr"]) for c, r in zip(commands, results)]


def last_json(res):
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
