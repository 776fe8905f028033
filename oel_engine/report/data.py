"""A finished (or running) run read for a report: its settings, metrics and teacher contexts.

Read-only and lock-free, so a report can be written while another process runs the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import LoopConfig
from ..errors import OelError
from ..fileio import read_jsonl
from ..metrics import (
    ConsolidateStep,
    EvalKind,
    EvalSummary,
    MetricsLog,
    OodSample,
    mean_sd,
)
from ..run.loop_config import read_config
from ..run.store import METRICS, RunStore
from .summaries import consolidation_steps, curve, eval_summaries


@dataclass
class RunData:
    name: str
    path: Path
    config: LoopConfig
    log: MetricsLog
    forked_from: dict | None = None
    contexts: dict[int, list[str]] = field(default_factory=dict)  # round -> the K teacher contexts
    context_source: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "RunData":
        path = Path(path)
        if not path.is_dir():
            raise OelError(f"no run folder {path}")
        with RunStore(path.parent, path.name, readonly=True) as store:
            config = read_config(store)
            meta = store.meta()
        if config is None:
            raise OelError(f"run '{path.name}' was not made by `oel loop`: it has no rounds to report")
        log = MetricsLog.from_dicts(read_jsonl(path / METRICS)[0])
        data = cls(path.name, path, config, log, meta.get("forked_from"))
        for file in sorted((path / "consolidation").glob("round-*.jsonl")):
            r = int(file.stem.split("-")[1])
            by_run = {}
            for row in read_jsonl(file)[0]:
                by_run.setdefault(row.get("experience_run", 0), row.get("privileged_context", ""))
                data.context_source[r] = row.get("experience_source", "")
            data.contexts[r] = [by_run[k] for k in sorted(by_run)]
        return data

    # -- what a report shows ---------------------------------------------------------------------

    def rounds(self) -> list[int]:
        return sorted({s.round for s in eval_summaries(self.log)})

    def evaluation(self, r: int, kind: str) -> EvalSummary | None:
        """Round r's evaluation of `kind`; round r's starting policy for kind "start" (the base
        model in round 0, the previous round's consolidated model after it)."""
        if kind == "start":
            return self.evaluation(0, EvalKind.BASE) if r == 0 else self.evaluation(r - 1, EvalKind.CONSOLIDATED)
        found = [s for s in eval_summaries(self.log) if s.round == r and s.kind == kind]
        return found[-1] if found else None

    def ood(self, r: int, kind: str) -> tuple[float, float, int] | None:
        """Instruction-probe accuracy (mean, sd over seeds, seeds) of round r's base or consolidated model."""
        if kind == "start":
            return self.ood(0, EvalKind.BASE) if r == 0 else self.ood(r - 1, EvalKind.CONSOLIDATED)
        latest = {o.sample: o.accuracy for o in self.log.of(OodSample, round=r, kind=kind)}  # a redone sample: the last
        values = list(latest.values())
        return (*mean_sd(values), len(values)) if values else None

    def curve(self, r: int) -> list[dict]:
        return curve(self.log, r)

    def steps(self) -> list[ConsolidateStep]:
        return consolidation_steps(self.log)

    def label(self) -> str:
        c = self.config
        parts = [c.game.label(), c.model.model, f"seed {c.seed}"]
        if c.consolidation.teacher_context != "experience":
            parts.append(f"teacher reads {c.consolidation.teacher_context}")
        if c.consolidation.loss != "topk":
            parts.append(f"{c.consolidation.loss} loss")
        files = sorted({s for s in self.context_source.values() if s.startswith("file ")})
        parts += [f"experience from the {s}" for s in files]
        return ", ".join(parts)
