"""The out-of-distribution probe: instruction following, offline (our own IFEval-like prompts).

Prompt-level strict accuracy: the share of prompts whose every instruction the answer follows;
one value per sampling seed, so the spread over seeds says how much a difference can mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ...config import SamplingConfig
from ...errors import OelError
from ...events import StopFlag
from ...games.actions import strip_thinking
from .checks import CHECKS, follows

PROMPTS_FILE = Path(__file__).with_name("prompts.jsonl")
# The evaluation's sampling (method.md), with room for a few paragraphs.
OOD_SAMPLING = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=256)


@dataclass(frozen=True)
class OodPrompt:
    key: int
    prompt: str
    instructions: tuple[tuple[str, dict], ...]

    def score(self, response: str) -> list[bool]:
        """Which of the prompt's instructions the response follows."""
        return [follows(i, response, kwargs) for i, kwargs in self.instructions]


@dataclass
class OodScore:
    """One pass over the prompts with one sampling seed."""

    seed: int
    accuracy: float  # prompt level: every instruction followed
    instruction_accuracy: float
    prompts: int
    mean_response_tokens: float
    per_prompt: list[bool] = field(default_factory=list)


def load_prompts(path: Path = PROMPTS_FILE) -> list[OodPrompt]:
    """The prompts with their instruction ids and arguments; a bad line is one clear error."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            instructions = tuple((i["id"], dict(i.get("kwargs", {}))) for i in row["instructions"])
            prompt = OodPrompt(int(row["key"]), str(row["prompt"]), instructions)
        except (ValueError, KeyError, TypeError) as exc:
            raise OelError(f"{path}: line {n} is not a probe prompt ({exc})") from None
        unknown = [i for i, _ in instructions if i not in CHECKS]
        if unknown or not instructions:
            raise OelError(f"{path}: line {n} has unknown or no instructions {unknown}")
        out.append(prompt)
    return out


def score_answers(prompts: list[OodPrompt], answers: list[str], seed: int, tokens: list[int]) -> OodScore:
    followed = [p.score(strip_thinking(a)) for p, a in zip(prompts, answers)]
    per_prompt = [all(f) for f in followed]
    flat = [x for f in followed for x in f]
    return OodScore(seed=seed, accuracy=sum(per_prompt) / len(per_prompt), instruction_accuracy=sum(flat) / len(flat),
                    prompts=len(prompts), mean_response_tokens=sum(tokens) / max(1, len(tokens)), per_prompt=per_prompt)


def run_probe(lm, seeds: list[int], sampling: SamplingConfig = OOD_SAMPLING, prompts: list[OodPrompt] | None = None,
              stop: StopFlag | None = None, on_batch: Callable[[int, int], None] | None = None) -> list[OodScore]:
    """Answer every prompt once per seed (each prompt its own random stream) and score them.
    Thinking is off whatever the loaded settings say, as the reference runs IFEval."""
    prompts = prompts if prompts is not None else load_prompts()
    stop = stop or StopFlag()
    size = max(1, lm.config.batch_size)
    batches = (len(prompts) + size - 1) // size
    scores = []
    lm.generator.reset_cache()
    for s, seed in enumerate(seeds):
        answers, tokens = [], []
        for b, start in enumerate(range(0, len(prompts), size)):
            chunk = prompts[start:start + size]
            generators = [torch.Generator(device=lm.device).manual_seed(seed * 100_003 + p.key) for p in chunk]
            with lm.thinking(False):
                outs = lm.generate([[{"role": "user", "content": p.prompt}] for p in chunk], sampling,
                                   generator=generators, should_stop=stop.is_set)
            stop.check()  # a pass cut short is not scored
            answers += [o.text for o in outs]
            tokens += [len(o.token_ids) for o in outs]
            if on_batch:
                on_batch(s * batches + b + 1, len(seeds) * batches)
        scores.append(score_answers(prompts, answers, seed, tokens))
    return scores
