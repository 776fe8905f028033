"""A decode step against this machine's floor, and against the engines a user could pick.

In one process, on an idle machine: the CPU's read bandwidth and matmul peak (float32 and bf16);
the floor of one decode step of the model at batch 16 and 64 (every weight read once at that
bandwidth, or every FLOP at that peak, whichever is longer); our step, timed on Frozen Lake
first-turn prompts in the precision the engine picks for sampling; and tokens/s of the same
prompts greedy through our batched sampler, a naive one-prompt `generate` loop, transformers'
continuous batching (`generate_batch`) and, when `llama_cpp` is installed and `--gguf FILE`
given, llama.cpp (a yardstick only: never a dependency). Prints the CPU first and
`decode_fraction_of_floor=X` (floor / measured step; 1.0 would be the floor itself).

    python bench/decode_floor.py                     # batch 16 and 64, 64 new tokens
    python bench/decode_floor.py --engines           # and the other engines' tokens/s
    python bench/decode_floor.py --compare forward unpacked   # and our step without this or that
    python bench/decode_floor.py --experience A.txt B.txt --compare unshared   # prompts as in-context
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig
from oel_engine.games import make_game
from oel_engine.model.generation import sample_next
from oel_engine.model.loader import load_language_model
from oel_engine.model.precision import cpu_description
from oel_engine.model.prefill import chunked_prefill
from oel_engine.play.prompts import turn_messages

# Our step without one of its speed-ups: ModelConfig changes, what the baseline is, and
# attributes of its generator changed.
BASELINES = {
    "forward": ({"fast_decode": False}, "the model's own forward, q/k/v and gate/up unfused (fast_decode=False)", {}),
    "unpacked": ({"pack_weights": False}, "the bf16 copy's weights not packed for oneDNN (pack_weights=False)", {}),
    "unshared": ({}, "cached positions rows hold alike (preamble, experience) read once per row, not once per step",
                 {"share_reads": False}),
}


GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=1)


def best_of(fn, repeats: int = 5) -> float:
    """Fastest of `repeats` timed calls, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def read_bandwidth(mib: int = 256) -> tuple[float, float]:
    """Bytes per second reading a buffer much larger than the caches (a sum), and copying it."""
    x = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    y = torch.empty_like(x)
    read = best_of(lambda: x.sum())
    copy = best_of(lambda: y.copy_(x))
    return x.numel() * 4 / read, 2 * x.numel() * 4 / copy


def matmul_peak(dtype: torch.dtype, m: int = 4096, k: int = 576, n: int = 1536) -> float:
    """FLOP/s of a large matmul in `dtype` (the model's hidden and MLP sizes)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    return 2 * m * k * n / best_of(lambda: a @ b)


def model_cost(model, batch: int, context: int, element_bytes: int) -> tuple[int, float]:
    """Bytes of weights one decode step reads at `element_bytes` per weight (tied weights once)
    and its FLOPs at `batch` rows over `context` cached positions (linear layers and attention
    scores/values). `model` is the plain model (the master weights), whatever layout sampling uses."""
    seen, count, linear = set(), 0, 0
    for p in model.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        count += p.numel()
        if p.dim() == 2:
            linear += p.numel()
    embed = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight.data_ptr() == embed.data_ptr()
    # the input embedding is a lookup, not a matmul; a tied head reads the same matrix as a matmul
    flops_params = linear if tied else linear - embed.numel()
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    attention = 2 * 2 * cfg.num_hidden_layers * heads * head_dim * context
    return count * element_bytes, batch * (2 * flops_params + attention)


def first_turn_prompts(lm, count: int, experiences: list[str] | None = None) -> list[list[int]]:
    """`count` first-turn prompts; with `experiences`, the rows split evenly among them, one
    experience after the other, as a round's in-context evaluation lays out its samples."""
    experiences = experiences or [None]
    per_experience = -(-count // len(experiences))
    prompts = []
    for row in range(count):
        game = make_game(GameConfig())
        game.reset(1_000_000 + row % per_experience)
        experience = experiences[row // per_experience]
        prompts.append(lm.encode_chat(turn_messages(game.player_description, game.messages, experience)))
    return prompts


@torch.no_grad()
def our_step_seconds(lm, prompts: list[list[int]], steps: int = 32) -> tuple[float, float]:
    """(prefill seconds, median seconds of one decode step) of our sampler at len(prompts) rows:
    the model forward over the cache plus the engine's greedy pick, every row kept alive."""
    gen = lm.generator
    gen.reset_cache()
    started = time.perf_counter()
    _, _, _, cache, mask, pos, input_ids = gen._prepare(prompts, [None] * len(prompts), steps + 1)
    with gen._eval_mode():
        logits = chunked_prefill(gen._forward, input_ids, mask, pos, cache)
        prefill = time.perf_counter() - started
        next_pos = pos[:, -1:] + 1
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            tokens = sample_next(logits, GREEDY)  # as the engine picks (a bf16 argmax is 5 ms slower at 64 rows)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = gen.decode_one(tokens, mask, next_pos, cache)
            next_pos = next_pos + 1
            times.append(time.perf_counter() - t0)
    return prefill, statistics.median(times[2:])


def ours_tokens_per_second(lm, prompts, new_tokens: int) -> float:
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=new_tokens)
    lm.generator.reset_cache()
    started = time.perf_counter()
    out = lm.generator.generate(prompts, sampling)
    return sum(len(g.token_ids) for g in out) / (time.perf_counter() - started)


@torch.no_grad()
def naive_tokens_per_second(lm, prompts, new_tokens: int) -> float:
    model, tokens, started = lm.inference_model(), 0, time.perf_counter()
    for p in prompts:
        ids = torch.tensor([p])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=lm.eos_token_ids(), pad_token_id=lm.generator.pad_id)
        tokens += out.shape[1] - ids.shape[1]
    return tokens / (time.perf_counter() - started)


@torch.no_grad()
def continuous_batching_tokens_per_second(lm, prompts, new_tokens: int) -> float | None:
    model = lm.inference_model()
    if not hasattr(model, "generate_batch"):
        return None
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=lm.eos_token_ids(),
                              pad_token_id=lm.generator.pad_id)
    started = time.perf_counter()
    out = model.generate_batch(inputs=prompts, generation_config=config, progress_bar=False)
    tokens = sum(len(r.generated_tokens) for r in out.values())
    return tokens / (time.perf_counter() - started)


def llama_cpp_tokens_per_second(gguf: Path, prompts, new_tokens: int, threads: int) -> float | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, n_batch=512, verbose=False)
    tokens, started = 0, time.perf_counter()
    for p in prompts:
        out = llm.create_completion(prompt=p, max_tokens=new_tokens, temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    return tokens / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--inference-dtype", default="auto", help="auto (the engine's measured pick), bf16 or float32")
    ap.add_argument("--engines", action="store_true", help="also the naive loop, continuous batching, llama.cpp")
    ap.add_argument("--gguf", type=Path, help="a GGUF of the same weights for llama.cpp (llama-cpp-python)")
    ap.add_argument("--compare", nargs="+", choices=sorted(BASELINES), default=[],
                    help="also time our step as it runs without one speed-up, in this process: "
                         + "; ".join(f"{k}: {v[1]}" for k, v in BASELINES.items()))
    ap.add_argument("--experience", type=Path, nargs="+", default=[],
                    help="experience files in the prompts (rows split among them, as in an in-context evaluation)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    print(cpu_description(), f"torch threads {torch.get_num_threads()}", flush=True)
    read, copy = read_bandwidth()
    peaks = {"float32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"read bandwidth {read / 1e9:.1f} GB/s (copy {copy / 1e9:.1f}); matmul peak float32 "
          f"{peaks['float32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    config = ModelConfig(model=args.model, device="cpu", inference_dtype=args.inference_dtype)
    lm = load_language_model(config, status=lambda s: print(s, flush=True))
    baselines = {}
    precision = lm.inference_precision.choice
    print(f"sampling precision: {precision} ({lm.inference_precision.reason})", flush=True)
    figures = {"cpu": cpu_description(), "read_gbps": read / 1e9, "peaks_gflops": {k: v / 1e9 for k, v in peaks.items()},
               "precision": precision, "batches": {}}
    for batch in args.batches:
        prompts = first_turn_prompts(lm, batch, [path.read_text() for path in args.experience])
        context = max(map(len, prompts)) + args.new_tokens // 2
        nbytes, flops = model_cost(lm.model, batch, context, 2 if precision == "bf16" else 4)
        floor = max(nbytes / read, flops / peaks[precision])
        prefill, step = our_step_seconds(lm, prompts)
        row = {"floor_ms": floor * 1e3, "weights_mb": nbytes / 2**20, "gflop": flops / 1e9, "step_ms": step * 1e3,
               "prefill_s": prefill, "decode_fraction_of_floor": floor / step}
        print(f"batch {batch}: floor {floor * 1e3:.1f} ms ({nbytes / 2**20:.0f} MiB read, {flops / 1e9:.1f} GFLOP), "
              f"our step {step * 1e3:.1f} ms, prefill {prefill:.2f} s", flush=True)
        print(f"decode_fraction_of_floor={floor / step:.3f} (batch {batch}, {precision})", flush=True)
        for name in args.compare:
            if name not in baselines:
                changes, _, generator_changes = BASELINES[name]
                baselines[name] = load_language_model(replace(config, **changes))
                for attribute, value in generator_changes.items():
                    setattr(baselines[name].generator, attribute, value)
            theirs = min(our_step_seconds(baselines[name], prompts)[1] for _ in range(2))
            ours = min(step, our_step_seconds(lm, prompts)[1])
            row[f"{name}_step_ms"] = theirs * 1e3
            print(f"{name}: step {theirs * 1e3:.1f} ms vs ours {ours * 1e3:.1f} ms "
                  f"(speedup_over_{name}={theirs / ours:.2f}x)", flush=True)
        if args.engines:
            row["tokens_per_s"] = speeds = {"ours": ours_tokens_per_second(lm, prompts, args.new_tokens),
                                            "naive_generate": naive_tokens_per_second(lm, prompts, args.new_tokens),
                                            "continuous_batching": continuous_batching_tokens_per_second(
                                                lm, prompts, args.new_tokens)}
            if args.gguf:
                speeds["llama_cpp"] = llama_cpp_tokens_per_second(args.gguf, prompts, args.new_tokens,
                                                                  torch.get_num_threads())
            print("tokens/s, greedy, " + ", ".join(f"{k} {'n/a' if v is None else f'{v:.0f}'}"
                                                   for k, v in speeds.items()), flush=True)
        figures["batches"][batch] = row
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
