"""Batched rollout with prefix KV reuse vs a naive one-game-at-a-time `generate` loop.

Both play the same Frozen Lake seeds with the same sampling settings (greedy by default, so
both should produce the same moves) on the same weights: the precision the engine picks for
sampling (`--inference-dtype auto`: a bf16 copy where this CPU measures it faster), so the ratio
is the loop's, not the precision's. Prints the CPU, rollout_speedup=X.XX and tokens/s for each.

    python bench/rollout.py --games 16
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig
from oel_engine.model.loader import load_language_model
from oel_engine.play.policies import ModelPolicy, TurnReply
from oel_engine.model.precision import cpu_description
from oel_engine.play.rollout import play_episodes
from oel_engine.play.trajectory import PolicyInfo



class NaiveGeneratePolicy:
    """One prompt at a time through `model.generate`, full prefill every turn, no reuse."""

    def __init__(self, lm, sampling: SamplingConfig, seed: int):
        self.lm, self.sampling = lm, sampling
        self.info = PolicyInfo("model", lm.name)
        torch.manual_seed(seed)

    def act(self, requests):
        replies = []
        for r in requests:
            ids = torch.tensor([self.lm.encode_chat(r.prompt)], device=self.lm.device)
            kwargs = dict(do_sample=False) if self.sampling.temperature <= 0 else dict(
                do_sample=True, temperature=self.sampling.temperature, top_p=self.sampling.top_p, top_k=self.sampling.top_k)
            with torch.no_grad():
                out = self.lm.inference_model().generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.sampling.max_new_tokens,
                    eos_token_id=self.lm.eos_token_ids(), pad_token_id=self.lm.generator.pad_id, **kwargs)
            new = out[0, ids.shape[1]:].tolist()
            replies.append(TurnReply(self.lm.tokenizer.decode(new, skip_special_tokens=True), len(new), ids.shape[1]))
        return replies

    def episode_done(self, key):
        pass


def run(policy, game, seeds, concurrent):
    started = time.perf_counter()
    episodes = play_episodes(game, seeds, policy, concurrent=concurrent)
    seconds = time.perf_counter() - started
    tokens = sum(t.response_tokens for e in episodes for t in e.turns)
    turns = sum(len(e.turns) for e in episodes)
    return episodes, seconds, tokens, turns


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=16)
    ap.add_argument("--game", default="frozenlake")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--inference-dtype", default="auto", help="auto, bf16 or float32 (both loops)")
    args = ap.parse_args()
    sampling = SamplingConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    game = GameConfig(name=args.game)
    seeds = list(range(args.games))
    lm = load_language_model(ModelConfig(model=args.model, batch_size=args.batch, inference_dtype=args.inference_dtype))
    print(f"cpu: {cpu_description()}")
    print(f"model={lm.name} games={args.games} game={game.label()} sampling={sampling}")
    print(f"weights for sampling: {lm.inference_precision.choice} ({lm.inference_precision.reason})")

    naive_eps, naive_s, naive_tok, naive_turns = run(NaiveGeneratePolicy(lm, sampling, 0), game, seeds, 1)
    print(f"naive:   {naive_s:7.1f} s  {naive_turns} turns  {naive_tok} tokens  {naive_tok / naive_s:6.1f} tokens/s  {naive_s / naive_turns:.2f} s/turn")
    lm.generator.reset_cache()
    fast_eps, fast_s, fast_tok, fast_turns = run(ModelPolicy(lm, sampling, 0), game, seeds, args.batch)
    print(f"batched: {fast_s:7.1f} s  {fast_turns} turns  {fast_tok} tokens  {fast_tok / fast_s:6.1f} tokens/s  {fast_s / fast_turns:.2f} s/turn")
    store = lm.generator.store
    reuse = store.hit_tokens / max(1, store.hit_tokens + store.computed_tokens)
    same = sum(a.turns[i].response == b.turns[i].response for a, b in zip(naive_eps, fast_eps)
               for i in range(min(len(a.turns), len(b.turns))))
    print(f"prompt tokens reused from cache: {reuse:.1%}; identical responses: {same}/{naive_turns}")
    print(f"rollout_speedup={naive_s / fast_s:.2f}")
    print(f"tokens_per_s_naive={naive_tok / naive_s:.1f} tokens_per_s_batched={fast_tok / fast_s:.1f}")


if __name__ == "__main__":
    main()
