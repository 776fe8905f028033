"""The app's key-to-screen latency while a consolidation step runs: the work in a thread of the
app (how rounds ran before) against the worker process (how they run now).

The same work both ways: our Distiller stepping on the embedded model (8 real Frozen Lake turn
prompts, ~300 tokens of lessons, 32 new tokens, LoRA r16), started from the Rounds screen with
`k`. Once the first step is under way, `t` (next chart tab) is pressed `--presses` times; each
latency is from the key press to the screen showing the new tab (Textual's headless pilot:
the key event, the handler, the compositor's refresh). Prints median and 95th percentile per
mode and `latency_ratio` (thread median / process median). Run it on an idle machine.

    python bench/latency.py [--presses 30] [--model embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tests.support.fake_engine import FakeEngine  # noqa: E402  (canned runs and screens; the work below is real)


class StepEngine(FakeEngine):
    """The fake app engine, but its stage is real consolidation on a real model."""

    model = os.environ.get("OEL_LATENCY_MODEL", "embedded")

    def run_stage(self, name, stage, on_event, stop, status=lambda _: None):
        from consolidate import bench_inputs

        from oel_engine.config import ConsolidationConfig, ModelConfig
        from oel_engine.consolidation.trainer import Distiller, Prefix
        from oel_engine.events import MetricsRecorded, StageStarted
        from oel_engine.model.loader import load_language_model

        lm = load_language_model(ModelConfig(model=self.model, batch_size=8))
        prompts, context = bench_inputs(lambda m: len(lm.encode_chat(m)), 8, 450, 300)
        cfg = ConsolidationConfig(steps=100, max_new_tokens=32, micro_batch=2, learning_rate=1e-4, lora_rank=16,
                                  lora_alpha=32)
        distiller = Distiller(lm, cfg, seed=0)
        marker = Path(self.saves) / "stepping"
        on_event(StageStarted("consolidate", cfg.steps, "latency bench"))
        for step in range(cfg.steps):
            marker.write_text(str(step))  # the bench measures once a step is under way
            distiller.step([Prefix(p, context, f"g{i}", 1000 * step + i) for i, p in enumerate(prompts)])
            on_event(MetricsRecorded("consolidate", {"phase": "consolidate", "round": 0, "step": step, "loss": 1.0}))
            stop.check()


def step_engine(saves):
    return StepEngine(saves)


async def measure(mode: str, presses: int) -> list[float]:
    from textual.widgets import TabbedContent

    from oel_engine.config import GameConfig
    from oel_tui.app import OelApp, Settings
    from oel_tui.worker_process import StageProcesses

    saves = Path(tempfile.mkdtemp(prefix=f"oel-latency-{mode}-"))
    stages = StageProcesses(saves, "latency:step_engine") if mode == "process" else None
    app = OelApp(engine=StepEngine(saves), settings=Settings(game=GameConfig(), run="demo"), stages=stages)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "bench")] + ([env_path] if env_path else []))
    latencies = []
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("4")
        await pilot.press("k")
        deadline = time.monotonic() + 600
        while not (saves / "stepping").exists():
            await pilot.pause(0.2)
            label = str(app.screen.query_one("#stage-label").render())
            if "failed" in label or time.monotonic() > deadline:
                raise SystemExit(f"{mode}: the consolidation did not start: {label}")
        await pilot.pause(3.0)  # into the step: sampling and training under way
        tabs = app.screen.query_one("#chart-tabs", TabbedContent)
        for _ in range(presses):
            before = tabs.active
            started = time.perf_counter()
            await pilot.press("t")
            while tabs.active == before:
                await pilot.pause(0.001)
            await pilot.pause()  # the refresh that shows it
            latencies.append(time.perf_counter() - started)
            await pilot.pause(0.2)
        app.jobs.stop.force()
        if stages is not None:
            stages.shutdown()
        await pilot.press("q")
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--modes", default="thread,process")
    args = ap.parse_args()
    os.environ["OEL_LATENCY_MODEL"] = StepEngine.model = args.model
    from oel_engine.model.precision import cpu_description

    print(f"cpu: {cpu_description()}; model {args.model}; {args.presses} presses per mode", flush=True)
    medians = {}
    for mode in args.modes.split(","):
        values = asyncio.run(measure(mode, args.presses))
        ordered = sorted(values)
        medians[mode] = statistics.median(values)
        print(f"{mode:8s} median {medians[mode] * 1000:7.1f} ms  p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:7.1f} ms"
              f"  max {ordered[-1] * 1000:7.1f} ms", flush=True)
    if {"thread", "process"} <= medians.keys():
        print(f"latency_ratio={medians['thread'] / medians['process']:.1f}")


if __name__ == "__main__":
    main()
