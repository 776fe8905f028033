"""The one place that knows the order of a round, and the one driver that runs a stage.

Round r: (round 0 only) evaluate the base model -> extract experience -> evaluate with the
experience in context -> collect deploy games -> consolidate -> evaluate the consolidated model,
which is round r+1's policy AND teacher. Every unit of work is saved when it completes; a stage
that is re-entered skips what is saved and replays the rest with the same random streams, so an
interrupted run ends with the same artifacts as an uninterrupted one.
"""

from __future__ import annotations

import ctypes
import gc
import time
from dataclasses import replace
from typing import Callable

from ..config import LoopConfig
from ..consolidation.trainer import peak_memory_mb
from ..errors import OelError
from ..events import EventSink, Progress, StageFinished, StageStarted, StopFlag, ignore
from ..metrics import EvalKind, StageTime
from ..model.lm import LanguageModel
from ..run.store import RunStore
from .collect import Collect
from .consolidate import Consolidate
from .context import RoundContext
from .evaluate import Evaluate
from .extract import Extract
from .stage import Stage

# The order of a round, written once. Stages keep per-run state, so each runner builds its own.
ROUND: tuple[Callable[[], Stage], ...] = (
    lambda: Evaluate(EvalKind.BASE), Extract, lambda: Evaluate(EvalKind.IN_CONTEXT), Collect, Consolidate,
    lambda: Evaluate(EvalKind.CONSOLIDATED),
)


def release_memory() -> None:
    """Hand freed memory back to the system between stages: glibc keeps what consolidation's
    activations used, and the next stage's peak would stack on top of it."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def stage_names() -> list[str]:
    return [make().name for make in ROUND]


class RoundRunner:
    """Runs the stages of a run's rounds with one loaded model."""

    def __init__(self, store: RunStore, config: LoopConfig, lm: LanguageModel, *,
                 on_event: EventSink = ignore, stop: StopFlag | None = None,
                 status: Callable[[str], None] | None = None):
        self.ctx = RoundContext(store, config, lm, on_event, stop or StopFlag(), status or (lambda _: None))
        self.stages = [make() for make in ROUND]

    @property
    def art(self):
        return self.ctx.art

    def run(self, rounds: int | None = None) -> None:
        todo = range(self.art.rounds_done(), rounds or self.ctx.cfg.rounds)
        if todo:
            self.note_sampling_precision(todo[0])
        for r in todo:
            self.run_round(r)

    def note_sampling_precision(self, r: int) -> None:
        """Which weights sample and probe (float32 or a bf16 copy) and why, in the run's metrics
        beside consolidation's choice: results depend on it, and so does the speed."""
        choice = replace(self.ctx.lm.inference_precision, round=r, use="sampling")
        self.ctx.store.add_metrics(choice)
        self.ctx.status(f"Sampling precision: {choice.choice} ({choice.reason})")

    def run_round(self, r: int) -> None:
        for stage in self.stages:
            self.run_stage(stage, r)

    def run_until(self, name: str, r: int) -> None:
        """Stage `name` of round r, after whatever earlier stages of the round are not done."""
        if name not in stage_names():
            raise OelError(f"unknown stage '{name}': choose one of {', '.join(stage_names())}")
        for stage in self.stages:
            self.run_stage(stage, r)
            if stage.name == name:
                return

    def run_stage(self, stage: Stage, r: int) -> None:
        ctx = self.ctx
        if not stage.applies(r):
            return
        done = ctx.art.stages_done(r)
        if stage.name in done:
            return
        missing = [n for n in stage.needs if n not in done]
        if missing:
            raise OelError(f"round {r}: {stage.name} needs {', '.join(missing)} first")
        ctx.stop.check()
        ctx.prepare_policy(stage.policy_round(r))
        plan = stage.plan(ctx, r)
        finished = plan.total - len(plan.pending)
        ctx.on_event(StageStarted(stage.name, plan.total, plan.detail))
        ctx.on_event(Progress(stage.name, finished, plan.total))
        started = time.perf_counter()

        def unit_done(detail: str) -> None:
            nonlocal finished
            finished += 1
            ctx.on_event(Progress(stage.name, finished, plan.total, detail))

        completed = False
        try:
            stage.begin(ctx, r)
            stage.run(ctx, r, plan.pending, unit_done)
            detail = stage.finish(ctx, r)
            completed = True
        finally:
            stage.close(ctx, r, completed)
            release_memory()
        seconds = time.perf_counter() - started
        ctx.on_event(StageFinished(stage.name, seconds))
        ctx.store.add_metrics(StageTime(round=r, stage=stage.name, seconds=round(seconds, 1),
                                        peak_memory_mb=round(peak_memory_mb(ctx.lm.device), 1), detail=detail))
        ctx.art.mark_done(r, stage.name)
