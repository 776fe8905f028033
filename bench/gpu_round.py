"""The GPU path, measured: a paper round's pieces on models with the exact shapes of Qwen3-1.7B and
Qwen3-4B, random weights (built from Qwen3Config, nothing downloaded), and a projection of one
paper round from them.

For each shape, on one device, in the paper preset's settings (float32 master weights, bf16
sampling copy and bf16 autocast on CUDA):
  decode      the engine's batched sampling (BatchGenerator) of `--batch` turn prompts, each
              answered with `--new-tokens` tokens (a random model rarely stops: the worst case);
              tokens/s and peak memory
  lora, full  one consolidation step (Distiller.step: the student samples, teacher and student
              score, one optimizer step) on `--prefixes` prefixes whose teacher reads a
              2048-token experience, with LoRA (r16) and with full fine-tuning (AdamW, the
              frozen teacher copy); seconds and peak memory of each
  round       the projected time of one round of the preset from those pieces (below)

The tokenizer is built in memory (tests/tiny.py); the model's vocabulary is padded to the real
one's 151,936 rows, so its logits, embedding and memory are the real model's.

    python bench/gpu_round.py --shape tiny                 # the CPU check (the suite runs this)
    python bench/gpu_round.py --shape qwen3-1.7b qwen3-4b  # on a CUDA machine: a few minutes

Writes bench/gpu_round.json (or --out). Projection, an upper bound since every answer is taken at
its full length: collection T x ceil(games/batch) x 5 turns x one decode batch; consolidation T x
(prefixes of a step / measured prefixes) x the measured step, a step's prefixes being
games x 5 turns; evaluation (base in round 0, in context over all K, consolidated) samples x
ceil(128 maps / batch) x 5 turns x one decode batch; extraction N steps x (5 game turns + one
extractor answer of the budget's length) with the K runs in one batch, each timed as one decode
batch per 1024 tokens.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "gpu_round.json"
VOCAB = 151_936
SHAPES = {  # Qwen3's config.json values; tiny is the CPU check
    "qwen3-1.7b": dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                       head_dim=128, intermediate_size=6144, vocab_size=VOCAB, tie_word_embeddings=True),
    "qwen3-4b": dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                     head_dim=128, intermediate_size=9728, vocab_size=VOCAB, tie_word_embeddings=True),
    "tiny": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 head_dim=8, intermediate_size=32, vocab_size=VOCAB, tie_word_embeddings=True),
}
PRESET = {"qwen3-1.7b": "paper-frozenlake", "qwen3-4b": "paper-sokoban", "tiny": "paper-frozenlake"}
TURNS = 5  # the presets' max_turns
MAPS = 128  # held-out maps


def build(shape: str, device):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from tests.support.tiny import build_tiny_tokenizer

    torch.manual_seed(0)
    config = Qwen3Config(**SHAPES[shape], max_position_embeddings=8192)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    model.eval()
    return model, build_tiny_tokenizer()


def filler(tokenizer, tokens: int, seed: int) -> str:
    """Text of about `tokens` tokens (words from the tokenizer's corpus, varied per seed)."""
    import random

    from tests.support.tiny import CORPUS

    rng = random.Random(seed)
    words = " ".join(CORPUS).split()
    text = []
    while len(tokenizer(" ".join(text), add_special_tokens=False)["input_ids"]) < tokens:
        text += rng.sample(words, 8)
    return " ".join(text)


def turn_prompt(tokenizer, tokens: int, seed: int) -> list[dict]:
    from oel_engine.play.prompts import SITUATION_MARKER

    return [{"role": "user", "content": filler(tokenizer, tokens, seed) + "\n" + SITUATION_MARKER + "\n[up] [down]"}]


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def measure_shape(shape: str, args, device) -> dict:
    from oel_engine.config import GameConfig, ModelConfig, SamplingConfig
    from oel_engine.consolidation.trainer import Distiller, Prefix
    from oel_engine.model.lm import LanguageModel
    from oel_engine.presets import build as preset

    config = preset(PRESET[shape], GameConfig(), ModelConfig(), 1)
    model, tokenizer = build(shape, device)
    params = sum(p.numel() for p in model.parameters())
    lm = LanguageModel(model, tokenizer, shape, replace(config.model, model=shape, batch_size=args.batch))
    result = {"shape": shape, "preset": PRESET[shape], "parameters": params,
              "vocab_rows": model.get_input_embeddings().weight.shape[0], "batch": args.batch,
              "new_tokens": args.new_tokens, "prompt_tokens": args.prompt_tokens,
              "sampling_precision": lm.inference_precision.choice}

    # decode: one batch of turn prompts, every answer at its full length
    prompts = [lm.encode_chat(turn_prompt(tokenizer, args.prompt_tokens, seed)) for seed in range(args.batch)]
    sampling = SamplingConfig(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=args.new_tokens)
    lm.generator.eos_ids = lm.generator.eos_ids[:0]  # never stop early: the worst case, every time
    lm.generator.generate(prompts[:2], replace(sampling, max_new_tokens=2))  # warm-up (kernels, copy)
    reset_peak(device)
    lm.generator.reset_cache()
    synchronize(device)
    started = time.perf_counter()
    outs = lm.generator.generate(prompts, sampling)
    synchronize(device)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.token_ids) for o in outs)
    result["decode"] = {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
                        "peak_gb": peak_gb(device)}
    print(f"{shape}: decode {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.0f} tokens/s "
          f"(batch {args.batch}, {args.new_tokens} new tokens), peak {result['decode']['peak_gb']} GB", flush=True)
    lm.generator.reset_cache()

    # one consolidation step, LoRA then full fine-tuning
    experience = filler(tokenizer, args.experience_tokens, seed=999)
    prefixes = [Prefix(turn_prompt(tokenizer, args.prompt_tokens, seed), experience, f"g{seed}", seed)
                for seed in range(args.prefixes)]
    for update in ("lora", "full"):
        cfg = replace(config.consolidation, update=update, max_new_tokens=args.new_tokens)
        if update == "lora":
            cfg = replace(cfg, learning_rate=1e-4)
        reset_peak(device)
        distiller = Distiller(lm, cfg, seed=0)
        metrics = distiller.step(prefixes)
        synchronize(device)
        distiller.detach()
        del distiller
        result[update] = {"prefixes": len(prefixes), "seconds": metrics["seconds"],
                          "sample_seconds": metrics["sample_seconds"], "train_seconds": metrics["train_seconds"],
                          "mean_response_tokens": metrics["mean_response_tokens"], "peak_gb": peak_gb(device)}
        print(f"{shape}: {update} step on {len(prefixes)} prefixes {metrics['seconds']:.1f} s "
              f"(sampling {metrics['sample_seconds']:.1f}, training {metrics['train_seconds']:.1f}), "
              f"peak {result[update]['peak_gb']} GB", flush=True)
    result["round"] = project(config, result, args)
    del lm, model
    reset_peak(device)
    return result


def project(config, r: dict, args) -> dict:
    """One round's hours from the measured pieces (see the module's docstring)."""
    c, x, ev = config.consolidation, config.extraction, config.evaluation
    batch_seconds = r["decode"]["seconds"] * 1024 / max(1, args.new_tokens)  # a full 1024-token batch
    per_prefix = {u: r[u]["seconds"] / r[u]["prefixes"] for u in ("lora", "full")}
    collection = c.steps * math.ceil(c.games_per_step / args.batch) * TURNS * batch_seconds
    consolidation = {u: c.steps * c.games_per_step * TURNS * per_prefix[u] for u in per_prefix}
    samples = ev.samples + math.ceil(ev.samples / x.runs) * x.runs + ev.samples  # base, in context (all K), consolidated
    evaluation = samples * math.ceil(MAPS / args.batch) * TURNS * batch_seconds
    extraction = x.use_step * (TURNS + x.max_new_tokens / 1024) * batch_seconds
    hours = lambda s: round(s / 3600, 2)
    return {"collection_h": hours(collection), "extraction_h": hours(extraction), "evaluation_h": hours(evaluation),
            "consolidation_lora_h": hours(consolidation["lora"]), "consolidation_full_h": hours(consolidation["full"]),
            "round_full_h": hours(collection + extraction + evaluation + consolidation["full"]),
            "round_lora_h": hours(collection + extraction + evaluation + consolidation["lora"])}


def main(argv=None) -> dict:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", nargs="+", default=["tiny"], choices=sorted(SHAPES))
    ap.add_argument("--device", default="auto", help="auto (cuda if there is one), cuda or cpu")
    ap.add_argument("--batch", type=int, default=None, help="games per decode batch (default 32 on CUDA, what `oel loop` runs without --batch; 4 on CPU)")
    ap.add_argument("--new-tokens", type=int, default=None, help="answer length (default 1024 on CUDA, 16 on CPU)")
    ap.add_argument("--prefixes", type=int, default=None, help="prefixes in the step (default 64 on CUDA, 3 on CPU)")
    ap.add_argument("--prompt-tokens", type=int, default=None, help="turn prompt length (default 450; 60 on CPU)")
    ap.add_argument("--experience-tokens", type=int, default=None, help="the teacher's experience (default 2048; 60 on CPU)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    for name, gpu, cpu in (("batch", 32, 4), ("new_tokens", 1024, 16), ("prefixes", 64, 3),
                           ("prompt_tokens", 450, 60), ("experience_tokens", 2048, 60)):
        if getattr(args, name) is None:
            setattr(args, name, gpu if cuda else cpu)
    machine = {"device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
               "torch": torch.__version__}
    if not cuda:
        from oel_engine.model.precision import cpu_description

        machine["device"] = cpu_description()
    print(f"device: {machine['device']}", flush=True)
    report = {"machine": machine, "shapes": [measure_shape(shape, args, device) for shape in args.shape]}
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for r in report["shapes"]:
        p = r["round"]
        print(f"{r['shape']} ({r['preset']}): one round projected {p['round_full_h']} h with full fine-tuning "
              f"({p['round_lora_h']} h with LoRA): collection {p['collection_h']}, extraction {p['extraction_h']}, "
              f"evaluation {p['evaluation_h']}, consolidation {p['consolidation_full_h']} (LoRA {p['consolidation_lora_h']})")
    return report


if __name__ == "__main__":
    main()
