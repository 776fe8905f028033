"""What every stage of a round shares: the run, its config, the loaded model and the policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..config import LoopConfig, SamplingConfig
from ..errors import OelError
from ..events import EventSink, StopFlag, ignore
from ..experience.extraction import trajectories_context
from ..metrics import MetricsLog
from ..model.lm import LanguageModel
from ..play.policies import ModelPolicy
from ..run.artifacts import RunArtifacts
from ..run.store import RunStore
from .names import StageName
from .teacher import TeacherContexts, teacher_contexts


@dataclass
class RoundContext:
    store: RunStore
    cfg: LoopConfig
    lm: LanguageModel
    on_event: EventSink = ignore
    stop: StopFlag = field(default_factory=StopFlag)
    status: Callable[[str], None] = lambda _: None

    def __post_init__(self) -> None:
        self.art = RunArtifacts(self.store)

    @property
    def run_key(self) -> str:
        return str(self.store.path.resolve())

    def metrics(self) -> MetricsLog:
        return self.store.metrics()

    def prepare_policy(self, round_index: int) -> None:
        """Make the loaded weights round `round_index`'s starting policy: the base with this run's
        rounds 0..round_index-1 applied (`model/round_weights.py`)."""
        from ..model.round_weights import apply_rounds

        apply_rounds(self.lm, self.run_key, [self.art.adapter_dir(i) for i in range(round_index)], round_index,
                     self.status)

    def model_policy(self, sampling: SamplingConfig, seed: int) -> ModelPolicy:
        policy = ModelPolicy(self.lm, sampling, seed=seed)
        policy.should_stop = self.stop.is_set
        return policy

    def count_tokens(self, text: str) -> int:
        return len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def teacher(self, r: int) -> TeacherContexts:
        """Round r's teacher contexts and their source (`teacher.py`: the one read of them)."""
        return teacher_contexts(self.art.experience, self.cfg, r, raw_trajectories=lambda k: self.raw_trajectories(r, k))

    def raw_trajectories(self, r: int, run: int) -> str:
        """Extraction run `run`'s games up to the experience step, cut to the experience budget."""
        x = self.cfg.extraction
        step = x.consolidation_step
        games = self.store.episodes(where=lambda row: row.get("stage") == StageName.EXTRACT and row.get("round") == r
                                    and row.get("episode_id", "").startswith(f"r{r}-extract-run{run}-step"))
        games = sorted((e for e in games if 1 <= e.tags.get("step", 0) <= step), key=lambda e: e.tags["step"])
        if len(games) < step:
            raise OelError(f"round {r} has {len(games)} of {step} extraction games for run {run}: run extraction first")
        return trajectories_context(games, x.budget_tokens, self.count_tokens)

    def games_events(self, label: str) -> EventSink:
        """Events of the games inside a stage, under their own label (a second progress bar)."""
        name = f"{label} games"

        def forward(event) -> None:
            if hasattr(event, "stage"):
                event.stage = name
            self.on_event(event)

        return forward
