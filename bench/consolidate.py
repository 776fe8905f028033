"""Our consolidation step against TRL's SDFTTrainer, one configuration, side by side in one run.

Both sides: the same model (the embedded SmolLM2-135M unless --model), the same 8 prefixes (real
Frozen Lake turn prompts of about 450 tokens), the same privileged context (about 300 tokens of
lessons), LoRA r16 / alpha 32 on every projection, the student's top-256 support with the
reverse KL renormalised on it (TRL: distillation_alpha=1, no tail bucket; ours: renormalize=True;
tests/unit/test_trl_parity.py checks the two losses agree), 32 new tokens at temperature 0.7, one
optimizer step over all 8 prefixes per step. TRL's prompt limit is raised so nothing is cut.

Each side and precision runs in its own process (peak resident memory is per process), first
`--warmup` steps untimed, then `--steps` timed. Each side is reported at its faster precision
(float32 or bf16 autocast, both measured unless --precisions says otherwise). Our side also
counts the matmul FLOPs of its forward and backward passes (torch's FlopCounterMode) and
measures a matmul peak in the same process, for achieved_fraction_of_peak.

    python bench/consolidate.py --steps 2           # both sides, both precisions (~25 min)
    python bench/consolidate.py --precisions fp32   # float32 only

Prints seconds per step, tokens per second and peak memory per side, then
consolidate_speedup=X (TRL seconds per step / ours), peak_memory_ratio=Y (ours / TRL) and
achieved_fraction_of_peak=Z. Needs the [trl] extra. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from oel_engine.model.precision import cpu_description

if hasattr(sys.stdout, "reconfigure"):  # not when imported under a capture (bench/latency.py)
    sys.stdout.reconfigure(line_buffering=True)
ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "examples" / "lessons"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the shared inputs ------------------------------------------------------------------------------


def bench_inputs(tokenizer_count, prefixes: int, target_tokens: int, context_tokens: int):
    """`prefixes` real turn prompts (random-policy Frozen Lake games, the turns whose prompt
    length is closest to `target_tokens`, one per game) and a privileged context of about
    `context_tokens` tokens (the shipped Frozen Lake lessons, repeated whole items)."""
    from oel_engine.config import GameConfig
    from oel_engine.play.policies import RandomPolicy
    from oel_engine.play.rollout import play_episodes

    game = GameConfig(name="frozenlake", max_turns=12)
    episodes = play_episodes(game, list(range(64)), RandomPolicy(seed=0))
    candidates = []
    for e in episodes:
        best = min(e.turns, key=lambda t: abs(tokenizer_count(t.prompt) - target_tokens))
        candidates.append((abs(tokenizer_count(best.prompt) - target_tokens), e.seed, best.prompt))
    prompts = [p for _, _, p in sorted(candidates, key=lambda c: (c[0], c[1]))[:prefixes]]
    items = [line for line in (LESSONS / "frozenlake.txt").read_text().splitlines() if line.strip()]
    context_lines: list[str] = []
    while tokenizer_count([{"role": "user", "content": "\n".join(context_lines)}]) < context_tokens:
        context_lines.append(items[len(context_lines) % len(items)])
    return prompts, "\n".join(context_lines)


# -- matmul FLOPs and peak -----------------------------------------------------------------------


def matmul_peak_gflops(dtype, seconds: float = 6.0) -> tuple[float, str]:
    """The best GFLOP/s of square and model-shaped matmuls on this machine, now."""
    import torch

    best, shape_of_best = 0.0, ""
    shapes = [(2048, 2048, 2048), (4096, 576, 1536), (4096, 1536, 576), (3072, 3072, 3072)]
    budget = seconds / len(shapes)
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b  # warm up
        started, runs, fastest = time.perf_counter(), 0, float("inf")
        while time.perf_counter() - started < budget or runs < 3:
            t0 = time.perf_counter()
            a @ b
            fastest = min(fastest, time.perf_counter() - t0)
            runs += 1
        gflops = 2 * m * k * n / fastest / 1e9
        if gflops > best:
            best, shape_of_best = gflops, f"{m}x{k}x{n}"
    return best, shape_of_best


def train_pass(distiller, scored) -> None:
    """The forward and backward passes of one step, as `Distiller.step` runs them, without
    sampling or the optimizer."""
    distiller.peft.train()
    distiller.optimizer.zero_grad(set_to_none=True)
    distiller.accumulate_gradients(scored)
    distiller.optimizer.zero_grad(set_to_none=True)
    distiller.peft.eval()


# -- the two sides ----------------------------------------------------------------------------------


def run_ours(args, precision: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from oel_engine.config import ConsolidationConfig, ModelConfig
    from oel_engine.consolidation.trainer import Distiller, Prefix
    from oel_engine.model.loader import load_language_model

    lm = load_language_model(ModelConfig(model=args.model, batch_size=args.prefixes, dtype=args.ours_dtype))
    count = lambda messages: len(lm.encode_chat(messages))
    prompts, context = bench_inputs(count, args.prefixes, args.prompt_tokens, args.context_tokens)
    cfg = ConsolidationConfig(steps=args.warmup + args.steps, games_per_step=1, loss="topk", top_k=256,
                              renormalize=True, max_new_tokens=args.new_tokens, learning_rate=1e-4,
                              micro_batch=args.micro_batch, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
                              target_modules=TARGETS, gradient_checkpointing="off",
                              autocast="bf16" if precision == "bf16" else "off")
    distiller = Distiller(lm, cfg, seed=0)
    if distiller.precision.choice != {"fp32": "float32", "bf16": "bf16"}[precision]:
        raise SystemExit(f"ours: asked for {precision}, the distiller chose {distiller.precision.choice}")
    times, records = [], []
    for step in range(args.warmup + args.steps):
        prefixes = [Prefix(p, context, f"game{i}", sampling_seed=1000 * step + i) for i, p in enumerate(prompts)]
        started = time.perf_counter()
        record = distiller.step(prefixes)
        seconds = time.perf_counter() - started
        print(f"  ours {precision} step {step}: {seconds:.1f} s (sampling {record['sample_seconds']} s), "
              f"loss {record['loss']}", flush=True)
        if step >= args.warmup:
            times.append(seconds)
            records.append(record)
    # tokens a step runs through the model: student and teacher prompts, each with the response
    response = sum(r["mean_response_tokens"] for r in records) / len(records)
    student = sum(count(p) for p in prompts)
    from oel_engine.play.prompts import insert_experience
    teacher = sum(count(insert_experience(p, context)) for p in prompts)
    tokens_per_step = student + teacher + 2 * response * len(prompts)

    # achieved GFLOP/s of the forward and backward passes, against a matmul peak measured now
    responses = distiller.sample([Prefix(p, context, f"game{i}", 7 + i) for i, p in enumerate(prompts)])
    scored = distiller.build([Prefix(p, context, "x", 0) for p in prompts], responses)
    with FlopCounterMode(display=False) as counter:
        train_pass(distiller, scored)
    flops = counter.get_total_flops()
    pass_times = []
    for _ in range(2):
        started = time.perf_counter()
        train_pass(distiller, scored)
        pass_times.append(time.perf_counter() - started)
    achieved = flops / min(pass_times) / 1e9
    peak, peak_shape = matmul_peak_gflops(torch.bfloat16 if precision == "bf16" else torch.float32)
    return {
        "side": "ours", "precision": precision, "seconds_per_step": sum(times) / len(times), "step_times": times,
        "sample_seconds": sum(r["sample_seconds"] for r in records) / len(records),
        "tokens_per_step": tokens_per_step, "mean_response_tokens": response,
        "prompt_tokens": student / len(prompts), "teacher_prompt_tokens": teacher / len(prompts),
        "peak_memory_mb": peak_rss_mb(), "train_pass_gflop": flops / 1e9, "train_pass_seconds": min(pass_times),
        "achieved_gflops": achieved, "matmul_peak_gflops": peak, "matmul_peak_shape": peak_shape,
    }


def run_trl(args, precision: str) -> dict:
    import logging

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    from oel_engine.config import ModelConfig
    from oel_engine.model.loader import load_language_model

    logging.getLogger("transformers").setLevel(logging.ERROR)
    lm = load_language_model(ModelConfig(model=args.model, batch_size=args.prefixes))
    count = lambda messages: len(lm.encode_chat(messages))
    prompts, context = bench_inputs(count, args.prefixes, args.prompt_tokens, args.context_tokens)
    tokenizer = lm.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = Dataset.from_list([{"prompt": p, "privileged_context": context} for p in prompts])
    total_steps = args.warmup + args.steps
    per_device = args.trl_micro_batch or args.prefixes
    config = SDFTConfig(
        output_dir=str(Path(args.scratch) / "trl-out"), max_steps=total_steps, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=args.prefixes // per_device, num_generations=1,
        max_prompt_length=4096, max_completion_length=args.new_tokens, temperature=0.7, top_p=1.0, top_k=0,
        distillation_mode="topk_logits", distillation_topk=256, distillation_alpha=1.0, distillation_add_tail=False,
        distillation_is_clip=None, teacher_model_kind="base", learning_rate=1e-4, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.01, max_grad_norm=1.0, use_cpu=True, bf16=precision == "bf16",
        report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0, dataloader_num_workers=0,
    )
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(TARGETS), bias="none",
                             task_type="CAUSAL_LM")
    times: list[float] = []
    lengths: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.started)
            print(f"  trl {precision} step {len(times) - 1}: {times[-1]:.1f} s", flush=True)

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    trainer = SDFTTrainer(model=lm.model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=[Timer()])
    trainer.train()
    timed = times[args.warmup:]
    response = sum(lengths[args.warmup:]) / max(1, len(lengths[args.warmup:])) if lengths else float("nan")
    student = sum(count(p) for p in prompts)
    teacher_prompts = [[{"role": "user", "content": f"{p[-1]['content']}\n\n{context}"}] for p in prompts]
    teacher = sum(count(p) for p in teacher_prompts)
    return {
        "side": "trl", "precision": precision, "seconds_per_step": sum(timed) / len(timed), "step_times": timed,
        "tokens_per_step": student + teacher + 2 * response * len(prompts), "mean_response_tokens": response,
        "prompt_tokens": student / len(prompts), "teacher_prompt_tokens": teacher / len(prompts),
        "peak_memory_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads(),
    }


# -- the parent: every side and precision in its own process, then the ratios ------------------------


def child(args, side: str, precision: str) -> dict | None:
    cmd = [sys.executable, __file__, "--child", side, "--precision", precision, "--model", args.model,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--prefixes", str(args.prefixes),
           "--new-tokens", str(args.new_tokens), "--micro-batch", str(args.micro_batch),
           "--trl-micro-batch", str(args.trl_micro_batch), "--scratch", args.scratch, "--ours-dtype", args.ours_dtype]
    print(f"{side} ({precision}) ...", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        elif line.startswith("  "):
            print(line)
    if result is None:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        print(f"{side} ({precision}) failed (exit {proc.returncode}):\n{tail}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--prefixes", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=450)
    ap.add_argument("--context-tokens", type=int, default=300)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--micro-batch", type=int, default=2, help="ours: prefixes per forward/backward")
    ap.add_argument("--trl-micro-batch", type=int, default=0, help="TRL: per-device batch (0: all prefixes)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--ours-dtype", default="auto",
                    help="ours: the dtype the weights load in (bfloat16: the frozen base in bf16 under a float32 "
                         "adapter, as on a GPU; auto: float32 on a CPU)")
    ap.add_argument("--sides", default="ours,trl")
    ap.add_argument("--scratch", default="/tmp/oel-bench-consolidate")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--precision", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = (run_ours if args.child == "ours" else run_trl)(args, args.precision)
        print("RESULT " + json.dumps(result))
        return

    print(f"cpu: {cpu_description()}")
    print(f"model={args.model} prefixes={args.prefixes} new_tokens={args.new_tokens} "
          f"steps={args.steps} (+{args.warmup} warm-up)")
    results = []
    for side in args.sides.split(","):
        for precision in args.precisions.split(","):
            r = child(args, side, precision)
            if r is not None:
                results.append(r)
                print(f"{side:5s} {precision:5s} {r['seconds_per_step']:7.1f} s/step  "
                      f"{r['tokens_per_step'] / r['seconds_per_step']:7.1f} tokens/s  "
                      f"peak {r['peak_memory_mb'] / 1024:5.2f} GiB  "
                      f"(prompt {r['prompt_tokens']:.0f}, teacher prompt {r['teacher_prompt_tokens']:.0f}, "
                      f"response {r['mean_response_tokens']:.1f} tokens)")
    best = {}
    for r in results:
        if r["side"] not in best or r["seconds_per_step"] < best[r["side"]]["seconds_per_step"]:
            best[r["side"]] = r
    summary = {"cpu": cpu_description(), "results": results}
    if "ours" in best:
        o = best["ours"]
        z = o["achieved_gflops"] / o["matmul_peak_gflops"]
        print(f"ours ({o['precision']}): forward+backward {o['train_pass_gflop']:.0f} GFLOP in "
              f"{o['train_pass_seconds']:.1f} s = {o['achieved_gflops']:.1f} GFLOP/s; matmul peak "
              f"{o['matmul_peak_gflops']:.1f} GFLOP/s ({o['matmul_peak_shape']})")
        summary["achieved_fraction_of_peak"] = round(z, 3)
    if "ours" in best and "trl" in best:
        o, t = best["ours"], best["trl"]
        summary["consolidate_speedup"] = round(t["seconds_per_step"] / o["seconds_per_step"], 2)
        summary["peak_memory_ratio"] = round(o["peak_memory_mb"] / t["peak_memory_mb"], 3)
        print(f"best: ours {o['precision']}, TRL {t['precision']}")
        print(f"consolidate_speedup={summary['consolidate_speedup']:.2f}")
        print(f"peak_memory_ratio={summary['peak_memory_ratio']:.2f}")
    if "achieved_fraction_of_peak" in summary:
        print(f"achieved_fraction_of_peak={summary['achieved_fraction_of_peak']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
