"""Consolidation: T optimizer steps of on-policy context distillation, one unit per step.

The LoRA adapter lives only while the stage runs: finishing merges it into the weights (the
next round's policy and teacher); a stop or a failure drops it, so nothing half-trained stays
switched on for play or for the next stage.
"""

from __future__ import annotations

from ..consolidation.trainer import Distiller, Prefix
from ..events import MetricsRecorded
from ..fileio import log
from ..metrics import ConsolidateStep
from .collect import build_data
from .context import RoundContext
from .names import StageName
from .seeds import stream_seed
from .stage import Plan, Stage


class Consolidate(Stage):
    name = StageName.CONSOLIDATE
    needs = (StageName.EXTRACT, StageName.COLLECT)

    def plan(self, ctx: RoundContext, r: int) -> Plan:
        c = ctx.cfg.consolidation
        self.distiller = None
        if c.backend == "trl":  # one unit: TRL runs the T steps in one call (a stop restarts the stage)
            self.checkpoint = None
            return Plan(1, [0], f"TRL SDFTTrainer, {c.steps} steps, LoRA r{c.lora_rank}")
        self.checkpoint = ctx.art.load_checkpoint(r)
        start = self.checkpoint["step"] + 1 if self.checkpoint is not None else 0
        return Plan(c.steps, list(range(start, c.steps)), f"{c.loss} loss, LoRA r{c.lora_rank}")

    def begin(self, ctx: RoundContext, r: int) -> None:
        c = ctx.cfg.consolidation
        self.data = build_data(ctx, r)
        seed = stream_seed(ctx.cfg.seed, r, "lora-init")
        if c.backend == "trl":
            from ..consolidation.trl_backend import TrlDistiller

            self.distiller = TrlDistiller(ctx.lm, c, seed=seed)
        else:
            self.distiller = Distiller(ctx.lm, c, seed=seed)
        precision = self.distiller.precision
        precision.round = r
        ctx.store.add_metrics(precision)
        ctx.status(f"Consolidation precision: {precision.choice} ({precision.reason})")
        start = 0
        if self.checkpoint is not None:
            self.distiller.load_state(self.checkpoint)
            start = self.checkpoint["step"] + 1
        # steps after the checkpoint are recomputed: drop their records, no duplicates
        ctx.store.drop_metrics(lambda m: isinstance(m, ConsolidateStep) and m.round == r and m.step >= start)

    def run_unit(self, ctx: RoundContext, r: int, step: int) -> str:
        if ctx.cfg.consolidation.backend == "trl":
            return self._run_trl(ctx, r)
        rows = [d for d in self.data if d["step"] == step]
        prefixes = [Prefix(d["prompt"], d["privileged_context"], d["episode_id"],
                           stream_seed(ctx.cfg.seed, r, "student", step * 10_000 + i),
                           d.get("response"), d.get("response_ended", True)) for i, d in enumerate(rows)]
        metrics = self.distiller.step(prefixes, should_stop=ctx.stop.is_set) if prefixes else {"prefixes": 0}
        ctx.stop.check()  # a step cut short by a stop request is not recorded
        record = ConsolidateStep(round=r, step=step, **metrics)
        if record.skipped:
            log.warning("round %d step %d: non-finite gradient, optimizer step skipped", r, step)
        ctx.store.add_metrics(record)
        ctx.on_event(MetricsRecorded(self.name, record.to_dict()))
        c = ctx.cfg.consolidation
        if (step + 1) % c.checkpoint_every == 0 or step == c.steps - 1:
            ctx.art.save_checkpoint(r, step, self.distiller.state())
        return "skipped: non-finite gradient" if record.skipped else f"loss {record.loss or 0:.4f}"

    def _run_trl(self, ctx: RoundContext, r: int) -> str:
        def on_step(metrics: dict) -> None:
            record = ConsolidateStep(round=r, **metrics)
            ctx.store.add_metrics(record)
            ctx.on_event(MetricsRecorded(self.name, record.to_dict()))

        self.distiller.train(self.data, on_step, ctx.stop.is_set)
        ctx.stop.check()  # stopped between TRL's steps: the unit (the whole stage) is not done
        last = ctx.metrics().of(ConsolidateStep, round=r)
        return f"TRL: {len(last)} steps, last loss {last[-1].loss or 0:.4f}" if last else "TRL: no steps logged"

    def finish(self, ctx: RoundContext, r: int) -> dict:
        ctx.art.save_adapter(r, self.distiller.save_adapter)
        self.distiller.merge()
        ctx.lm.merged = (ctx.run_key, r + 1)
        skipped = sum(m.skipped for m in ctx.metrics().of(ConsolidateStep, round=r))
        return {"skipped_steps": skipped, "precision": self.distiller.precision.choice}

    def close(self, ctx: RoundContext, r: int, completed: bool) -> None:
        if self.distiller is not None and not completed:
            self.distiller.detach()
        self.distiller = None
