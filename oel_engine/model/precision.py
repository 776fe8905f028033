"""Choosing bf16 autocast by measurement, never by assumption.

CPUs differ: one here with AMX-BF16 ran bf16 matmuls 1.5x faster than float32, an AVX2-only
AMD EPYC ran them ~50x slower (PyTorch's reference path). On a CPU, `auto` times a matmul the
shape of a small model's MLP, forward and backward, in both precisions (well under a second,
once per process) and picks bf16 only if it is clearly faster. CUDA always gets bf16.
"""

from __future__ import annotations

import functools
import os
import platform
import time

from ..metrics import PrecisionChoice

ROWS, HIDDEN, INTER = 128, 576, 1536  # SmolLM2-135M's MLP width; 128 tokens of a micro-batch
CLEARLY_FASTER = 1.1  # bf16 must beat float32 by this factor to be chosen


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_description() -> str:
    """The CPU model, core count and the flags that decide bf16 speed: the line every benchmark
    figure is printed with."""
    flags = set((_cpuinfo("flags") or "").split())
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{cpu_name()}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'none of avx2/avx512/amx'}"


def interleaved_best(time_fp32, time_bf16) -> tuple[float, float]:
    """Best of five for each, the two interleaved so that a burst of other work on the CPU hits
    both alike (timing all float32 tries first once let a busy moment pick bf16 on a CPU where
    it runs 10x slower); a bf16 far slower than float32 is not tried again (the slow path).
    Each runs once untimed first: a process's first bf16 call sets up its kernels (7.6 ms
    against 0.5 ms warm, measured right after a model load), and with the float32 kernels warm
    from the load that one call looked 7x slower and picked float32 for a whole run."""
    time_fp32(), time_bf16()
    fp32, bf16 = [], []
    for _ in range(5):
        fp32.append(time_fp32())
        if not bf16 or min(bf16) < 4 * min(fp32):
            bf16.append(time_bf16())
    return min(fp32), min(bf16)


def _time_step(autocast: bool) -> float:
    import torch

    x = torch.randn(ROWS, HIDDEN)
    w = torch.randn(HIDDEN, INTER, requires_grad=True)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    started = time.perf_counter()
    with context:
        y = x @ w
    y.float().sum().backward()
    return time.perf_counter() - started


@functools.lru_cache(maxsize=None)
def measure_cpu_bf16() -> PrecisionChoice:
    """float32 vs bf16 autocast for one matmul and its backward (`interleaved_best`)."""
    fp32, bf16 = interleaved_best(lambda: _time_step(False), lambda: _time_step(True))
    choice = "bf16" if fp32 / bf16 >= CLEARLY_FASTER else "float32"
    reason = f"measured: bf16 autocast {fp32 / bf16:.2f}x float32 speed on this CPU"
    return PrecisionChoice(device="cpu", cpu=cpu_name(), choice=choice, reason=reason,
                           float32_seconds=round(fp32, 5), bf16_seconds=round(bf16, 5))


def choose_autocast(setting: str, device) -> PrecisionChoice:
    """What `ConsolidationConfig.autocast` means on `device`: the choice and why."""
    if setting == "off":
        return PrecisionChoice(device=str(device), cpu=cpu_name(), choice="float32", reason="autocast off (setting)")
    if setting == "bf16":
        return PrecisionChoice(device=str(device), cpu=cpu_name(), choice="bf16", reason="bf16 forced (setting)")
    if getattr(device, "type", str(device)) == "cuda":
        return PrecisionChoice(device=str(device), cpu=cpu_name(), choice="bf16", reason="auto: bf16 on CUDA")
    return measure_cpu_bf16()


# -- sampling and probing -------------------------------------------------------------------------

DECODE_ROWS = 32  # a decode step of a full batch: one token per game


def _time_linear(dtype) -> float:
    import torch

    x, w = torch.randn(DECODE_ROWS, HIDDEN, dtype=dtype), torch.randn(INTER, HIDDEN, dtype=dtype)
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(4):
            torch.nn.functional.linear(x, w)
    return time.perf_counter() - started


@functools.lru_cache(maxsize=None)
def measure_cpu_bf16_inference() -> PrecisionChoice:
    """float32 vs bf16 weights for a decode-step linear (no autocast: the weights are bf16
    already; `interleaved_best`); bf16 only when it is clearly faster."""
    import torch

    fp32, bf16 = interleaved_best(lambda: _time_linear(torch.float32), lambda: _time_linear(torch.bfloat16))
    choice = "bf16" if fp32 / bf16 >= INFERENCE_CLEARLY_FASTER else "float32"
    reason = f"measured: bf16 weights {fp32 / bf16:.2f}x float32 speed for sampling on this CPU"
    return PrecisionChoice(device="cpu", cpu=cpu_name(), choice=choice, reason=reason,
                           float32_seconds=round(fp32, 5), bf16_seconds=round(bf16, 5))


INFERENCE_CLEARLY_FASTER = 1.25


def choose_inference(setting: str, device, model_dtype) -> PrecisionChoice:
    """What `ModelConfig.inference_dtype` means: sample and probe on a bf16 copy of float32
    weights (`bf16`), or on the weights as loaded (`float32`: whatever dtype they have)."""
    import torch

    if setting == "auto" and os.environ.get("OEL_INFERENCE_DTYPE"):
        setting = os.environ["OEL_INFERENCE_DTYPE"]  # e.g. float32 for bit-exact, batch-independent runs
    if setting not in ("auto", "bf16", "float32"):
        from ..errors import OelError

        raise OelError(f"unknown inference dtype '{setting}': use auto, bf16 or float32")
    name = str(device)
    if model_dtype != torch.float32:
        return PrecisionChoice(device=name, cpu=cpu_name(), choice=str(model_dtype).replace("torch.", ""),
                               reason="the weights are loaded in this dtype")
    if setting == "float32":
        return PrecisionChoice(device=name, cpu=cpu_name(), choice="float32", reason="float32 (setting)")
    if setting == "bf16":
        return PrecisionChoice(device=name, cpu=cpu_name(), choice="bf16", reason="bf16 forced (setting)")
    if getattr(device, "type", name) == "cuda":
        return PrecisionChoice(device=name, cpu=cpu_name(), choice="bf16", reason="auto: bf16 on CUDA")
    return measure_cpu_bf16_inference()
